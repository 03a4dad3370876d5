"""The network subcommands of ``convalgebra``: ``analyze``, ``rf`` and ``params``.

A network is a zoo name (:mod:`convalgebra.zoo`) or a JSON/YAML graph file
(:meth:`convalgebra.graph.LayerGraph.from_file`, safe loading only); ``rf`` and ``params``
also take a single layer given by the spec flags.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .cli_commands import Result, _check_suffix, _module
from .cli_args import spec_from_args
from .errors import ConvAlgebraError, shown
from .spec import ConvSpec

__all__ = ["load_model", "model_names", "analyze", "rf", "params"]

GRAPH_SUFFIXES = (".json", ".yaml", ".yml")


def _zoo():
    return _module("zoo", "analyze")


def model_names() -> list[str]:
    """Names of the built-in networks."""
    return list(_zoo().names())


def _graph_module():
    return _module("graph", "analyze")


def _read_graph_file(path: Path):
    LayerGraph = _graph_module().LayerGraph
    if not path.is_file():
        raise ConvAlgebraError(f"cannot read model file {shown(str(path))}: no such file")
    try:
        return LayerGraph.from_file(path)
    except OSError as exc:
        raise ConvAlgebraError(f"cannot read model file {shown(str(path))}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise ConvAlgebraError(f"cannot parse {shown(str(path))} as JSON: {exc}") from None
    except UnicodeDecodeError:
        raise ConvAlgebraError(f"cannot read model file {shown(str(path))}: not a text file") from None
    except Exception as exc:  # noqa: BLE001 - yaml's errors are not ValueErrors
        if type(exc).__module__.split(".")[0] != "yaml":
            raise
        problem = getattr(exc, "problem", None) or str(exc)
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConvAlgebraError(
            f"cannot load {shown(str(path))}{where}: {problem}; only plain YAML data is accepted "
            "(safe loading: no Python tags)"
        ) from None


def _with_input(graph, shape: tuple[int, ...], name: str):
    spec = graph.to_spec()
    if len(spec["inputs"]) != 1:
        raise ConvAlgebraError(f"--input needs a graph with one input; {name} has "
                               f"{len(spec['inputs'])}: {sorted(spec['inputs'])}")
    spec["inputs"] = {next(iter(spec["inputs"])): list(shape)}
    return type(graph).from_spec(spec)


def load_model(model: str, input_shape: tuple[int, ...] | None = None):
    """A LayerGraph from a zoo name or a graph file, optionally at another input shape."""
    path = Path(model)
    if path.suffix.lower() in GRAPH_SUFFIXES or path.exists():
        graph = _read_graph_file(path)
        return graph if input_shape is None else _with_input(graph, input_shape, path.name)
    zoo = _zoo()
    names = list(zoo.names())
    if model not in names:
        raise ConvAlgebraError(
            f"unknown model {shown(model)}: the built-in models are {', '.join(names)} "
            "(or give a .json/.yaml graph file)"
        )
    return zoo.get(model, input_shape)


def _layer_graph(spec: ConvSpec):
    """A one-layer graph for a spec (the spec's flip and tile do not change its field)."""
    from .layers import Conv

    LayerGraph = _graph_module().LayerGraph
    conv = Conv.from_spec(spec, field_only=True)
    return LayerGraph.sequential(spec.input_shape, [("conv", conv)], name="layer")


def _dims(shape) -> str:
    return "x".join(map(str, shape))


def _list_models(ns: argparse.Namespace) -> Result | None:
    if getattr(ns, "list", False):
        return Result("\n".join(model_names()))
    return None


def _model_or_spec(ns: argparse.Namespace, command: str):
    """(graph, label, spec or None) from a MODEL|FILE argument or the layer flags."""
    has_spec = ns.input_shape is not None or ns.kernel_size is not None
    if ns.model is not None and ns.kernel_size is not None:
        raise ConvAlgebraError(f"{command}: give a model (with --input SHAPE) or the layer flags "
                               "(--in SHAPE -k K), not both")
    if ns.model is not None:
        if ns.input_shape is not None and ns.input is not None and ns.input_shape != ns.input:
            raise ConvAlgebraError(f"{command}: --in and --input both give the model's input "
                                   "shape; give one")
        shape = ns.input if ns.input is not None else ns.input_shape  # --in: the model's input
        return load_model(ns.model, shape), ns.model, None
    if not has_spec:
        raise ConvAlgebraError(f"{command} needs a model (e.g. resnet18, a .yaml file) or a "
                               "layer (--in SHAPE -k K)")
    if ns.input_shape is None or ns.kernel_size is None:
        raise ConvAlgebraError(f"{command}: a layer needs both --in SHAPE and -k K")
    spec = spec_from_args(ns)
    return _layer_graph(spec), spec.describe(), spec


# ---------------------------------------------------------------------------- analyze
def _totals(graph, label: str) -> list[str]:
    total = graph.summary()
    lines = [
        f"parameters: {total['params']:,} learnable"
        + (f" (+ {total['buffers']:,} buffers, e.g. batch-norm statistics)" if total["buffers"] else ""),
        f"MACs: {total['macs']:,} multiply-accumulates (FLOPs = 2 x MACs = {total['flops']:,})",
    ]
    node = _default_node(graph)
    if node is not None:
        fields = graph.receptive_field(node)
        lines.append(f"receptive field of {node!r}: "
                     + " x ".join(f.describe() for f in fields) + " (size/jump in input pixels)")
    return lines


def analyze(ns: argparse.Namespace) -> Result:
    """``convalgebra analyze``: the per-layer table and the totals of a network."""
    listed = _list_models(ns)
    if listed:
        return listed
    ns.model = ns.model or "resnet18"
    graph = load_model(ns.model, ns.input)
    shape = _dims(graph.shape(graph.inputs[0])) if graph.inputs else "?"
    if ns.format == "json":
        document = {"model": ns.model, "input": shape, "totals": graph.summary(),
                    "layers": json.loads(graph.table("json"))}
        return Result(json.dumps(document, indent=1))
    table = graph.table(ns.format)
    if ns.format == "csv":
        return Result(table)
    head = f"{ns.model} on input {shape}: {len(graph)} nodes"
    totals = _totals(graph, ns.model)
    if ns.format == "markdown":
        return Result("\n".join([f"**{head}**", "", table, "", *(f"- {t}" for t in totals)]))
    return Result("\n".join([head, "", table, "", *totals]))


# --------------------------------------------------------------------------------- rf
def _default_node(graph) -> str | None:
    """``features`` (the zoo's last feature map), else the last node with a spatial output."""
    if "features" in graph:
        return "features"
    n = graph.spatial_ndim
    spatial = [v for v in graph.nodes if len(graph.shape(v)) == n + 1 and v not in graph.inputs]
    return spatial[-1] if spatial and n else None


def _rf_rows(graph) -> list[dict[str, Any]]:
    rows = []
    for node in graph.nodes:
        fields = graph.receptive_field(node)
        join = lambda values: " x ".join(str(v) for v in values)  # noqa: E731
        rows.append({
            "node": node, "kind": graph.info(node).kind, "output": graph.shape(node),
            "RF size": "global" if all(f.is_global for f in fields) else join(
                "global" if f.is_global else f"{'' if f.exact else '~'}{f.size}"
                for f in fields),
            "jump": join(f.jump if f.aligned else "|".join(map(str, f.jumps)) for f in fields),
            "start": join(f.start for f in fields),
            "padding": join(f.padding for f in fields),
        })
    return rows


def _unit_text(graph, node: str, unit, fmt: str = "text") -> str:
    field = graph.unit_receptive_field(node, unit)
    if fmt == "json":
        plain = lambda v: v if isinstance(v, (int, type(None))) else str(v)  # noqa: E731
        return json.dumps({"node": node, "position": list(field.position),
                           "box": [list(b) for b in field.box] if field.box else None,
                           "size": list(field.size), "centre": [plain(c) for c in field.centre]})
    where = f"unit {field.position} of {node!r} {_dims(graph.shape(node))}"
    if field.box is None:
        return f"{where} reads no input pixel"
    box = ", ".join(f"axis {a}: {lo}..{hi}" for a, (lo, hi) in enumerate(field.box))
    centre = ", ".join(str(c) for c in field.centre)
    return (f"{where} reads input box {box} (inclusive, clipped to the input), "
            f"size {_dims(field.size)}, centre ({centre})")


def rf(ns: argparse.Namespace) -> Result:
    """``convalgebra rf``: receptive fields of a network's layers or of one unit."""
    listed = _list_models(ns)
    if listed:
        return listed
    _check_suffix(ns.plot, (".png",), "--plot")
    graph, label, spec = _model_or_spec(ns, "rf")
    node = ns.node or _default_node(graph)
    if node is None:
        raise ConvAlgebraError(f"{label} has no layer with a spatial output")
    if ns.unit is not None:
        text = _unit_text(graph, node, ns.unit, ns.format)
    else:
        from .tables import render

        rows = _rf_rows(graph)
        if ns.node is not None:
            graph.shape(ns.node)  # an unknown node is an error naming it
            rows = [r for r in rows if r["node"] == ns.node]
        text = render(rows, fmt=ns.format)
    files = {}
    if ns.plot is not None:
        from . import plot

        if spec is not None:
            figure = plot.plot_receptive_field(spec, ns.unit)
        elif ns.unit is not None:
            figure = plot.plot_unit_field(graph, node, ns.unit, title=label)
        else:
            figure = plot.plot_rf_growth(graph, title=label)
        files[ns.plot] = plot.to_png(figure)
    return Result(text + "".join(f"\nwrote {p}" for p in files), files)


# ----------------------------------------------------------------------------- params
def _spec_params(spec: ConvSpec, fmt: str) -> str:
    row = {"layer": spec.describe(), "weight shape": spec.weight_shape, "weights": spec.n_weights,
           "biases": spec.n_params - spec.n_weights, "params": spec.n_params, "MACs": spec.macs,
           "FLOPs": 2 * spec.macs}
    if fmt != "text":
        from .tables import render

        return render([row], fmt=fmt)
    return (f"{row['layer']}\n"
            f"weights: {spec.n_weights:,} ({_dims(spec.weight_shape)}) + biases: {row['biases']:,}"
            f" = {spec.n_params:,} parameters\n"
            f"MACs: {spec.macs:,} (FLOPs = 2 x MACs = {2 * spec.macs:,})")


def params(ns: argparse.Namespace) -> Result:
    """``convalgebra params``: parameters and MACs of a layer or a network."""
    listed = _list_models(ns)
    if listed:
        return listed
    graph, label, spec = _model_or_spec(ns, "params")
    if spec is not None:
        return Result(_spec_params(spec, ns.format))
    from .tables import render

    rows = []
    for node in graph.nodes:
        info = graph.info(node)
        if info.params or info.buffers or info.macs:
            rows.append({"node": node, "kind": info.kind, "output": info.shape,
                         "params": info.params, "buffers": info.buffers, "MACs": info.macs})
    total = graph.summary()
    rows.append({"node": "total", "params": total["params"], "buffers": total["buffers"],
                 "MACs": total["macs"]})
    table = render(rows, fmt=ns.format)
    if ns.format in ("csv", "json"):
        return Result(table)
    if graph.unused_note():
        table += "\n\n" + graph.unused_note()
    return Result("\n".join([f"{label}: {total['params']:,} parameters, {total['macs']:,} MACs",
                             "", table]))
