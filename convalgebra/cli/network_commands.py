"""The network subcommands of ``convalgebra``: ``analyze``, ``rf`` and ``params``.

A network is a zoo name (:mod:`convalgebra.network.zoo`) or a JSON/YAML graph file
(:meth:`convalgebra.network.graph.LayerGraph.from_file`, safe loading only); ``rf`` and ``params``
also take a single layer given by the spec flags.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..errors import ConvAlgebraError, shown
from ..spec import ConvSpec
from .args import spec_from_args
from .common import (
    GRAPH_SUFFIXES,
    PICTURE_SUFFIXES,
    Result,
    check_suffix,
    library_module,
    load_model,
    model_names,
)

__all__ = ["DTYPE_BYTES", "analyze", "export", "params", "rf"]

DTYPE_BYTES = {
    "float32": 4,
    "float16": 2,
    "bfloat16": 2,
    "float64": 8,
    "int8": 1,
    "uint8": 1,
    "int32": 4,
    "int64": 8,
}


def _layer_graph(spec: ConvSpec):
    """A one-layer graph for a spec (the spec's flip and tile do not change its field)."""
    from ..network.layers import Conv

    LayerGraph = library_module("network.graph", "analyze").LayerGraph
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
        raise ConvAlgebraError(
            f"{command}: give a model (with --input SHAPE) or the layer flags "
            "(--in SHAPE -k K), not both"
        )
    if ns.model is not None:
        if ns.input_shape is not None and ns.input is not None and ns.input_shape != ns.input:
            raise ConvAlgebraError(
                f"{command}: --in and --input both give the model's input shape; give one"
            )
        shape = ns.input if ns.input is not None else ns.input_shape  # --in: the model's input
        return load_model(ns.model, shape), ns.model, None
    if not has_spec:
        raise ConvAlgebraError(
            f"{command} needs a model (e.g. resnet18, a .yaml file) or a layer (--in SHAPE -k K)"
        )
    if ns.input_shape is None or ns.kernel_size is None:
        raise ConvAlgebraError(f"{command}: a layer needs both --in SHAPE and -k K")
    spec = spec_from_args(ns)
    return _layer_graph(spec), spec.describe(), spec


# ---------------------------------------------------------------------------- analyze
def _megabytes(n: int) -> str:
    return f"{n / 1e6:,.2f} MB"


def _totals(graph, label: str, batch: int = 1, dtype: str = "float32") -> list[str]:
    total = graph.summary(dtype_bytes=DTYPE_BYTES[dtype], batch=batch)
    per = f" for a batch of {batch}" if batch > 1 else ""
    lines = [
        f"parameters: {total['params']:,} learnable"
        + (
            f" (+ {total['buffers']:,} buffers, e.g. batch-norm statistics)"
            if total["buffers"]
            else ""
        ),
        f"MACs{per}: {total['macs']:,} multiply-accumulates (FLOPs = 2 x MACs = {total['flops']:,})",
        f"memory ({dtype}{per}): activations of a forward pass "
        f"{_megabytes(total['activation_bytes'])}; forward/backward pass as torchinfo estimates "
        f"it {_megabytes(total['forward_backward_bytes'])}; input "
        f"{_megabytes(total['input_bytes'])}; parameters {_megabytes(total['param_bytes'])}",
    ]
    node = _default_node(graph)
    if node is not None:
        fields = graph.receptive_field(node)
        lines.append(
            f"receptive field of {shown(node)}: "
            + " x ".join(f.describe() for f in fields)
            + " (size/jump in input pixels)"
        )
        held = graph.receptive_field(node, gates="ignore")
        if held != fields:
            lines.append(
                "without its gates (held constant): " + " x ".join(f.describe() for f in held)
            )
    return lines


def analyze(ns: argparse.Namespace) -> Result:
    """``convalgebra analyze``: the per-layer table and the totals of a network."""
    listed = _list_models(ns)
    if listed:
        return listed
    ns.model = ns.model or "resnet18"
    graph = load_model(ns.model, ns.input)
    shape = _dims(graph.shape(graph.inputs[0])) if graph.inputs else "?"
    options = {
        "dtype_bytes": DTYPE_BYTES[ns.dtype],
        "batch": ns.batch,
        "depth": ns.depth,
        "percent": ns.percent,
        "fold": getattr(ns, "fold", False),
    }
    if ns.format == "json":
        document = {
            "model": ns.model,
            "input": shape,
            "batch": ns.batch,
            "dtype": ns.dtype,
            "totals": graph.summary(dtype_bytes=DTYPE_BYTES[ns.dtype], batch=ns.batch),
            "layers": json.loads(graph.table("json", **options)),
        }
        return Result(json.dumps(document, indent=1))
    table = graph.table(ns.format, **options)
    if ns.format == "csv":
        return Result(table)
    head = f"{ns.model} on input {shape}: {len(graph)} nodes"
    totals = _totals(graph, ns.model, ns.batch, ns.dtype)
    if ns.format == "markdown":
        return Result("\n".join([f"**{head}**", "", table, "", *(f"- {t}" for t in totals)]))
    return Result("\n".join([head, "", table, "", *totals]))


def export(ns: argparse.Namespace) -> Result:
    """``convalgebra export``: a network as a JSON/YAML graph file (or JSON on stdout)."""
    if ns.list:
        return Result("\n".join(model_names()))
    if ns.model is None:
        raise ConvAlgebraError(
            "export needs a model: a zoo name, a graph file, or "
            "path/to/file.py:factory with --in SHAPE"
        )
    if ns.output is not None:
        check_suffix(ns.output, GRAPH_SUFFIXES, "-o")
    graph = load_model(ns.model, ns.input)
    if ns.output is None:
        return Result(graph.to_text("json").rstrip("\n"))
    text = graph.to_text(ns.output.suffix.lstrip("."))
    return Result(f"wrote {ns.output} ({len(graph)} nodes)", {ns.output: text.encode()})


# --------------------------------------------------------------------------------- rf
def _default_node(graph) -> str | None:
    """``features`` (the zoo's last feature map), else the last feature map (one pass)."""
    return graph.default_node()


def _rf_rows(graph) -> list[dict[str, Any]]:
    rows = []
    for node in graph.nodes:
        fields = graph.receptive_field(node)
        join = lambda values: " x ".join(str(v) for v in values)  # noqa: E731
        rows.append(
            {
                "node": node,
                "kind": graph.info(node).kind,
                "output": graph.shape(node),
                "RF size": "global"
                if all(f.is_global for f in fields)
                else join(
                    "global" if f.is_global else f"{'' if f.exact else '~'}{f.size}" for f in fields
                ),
                "jump": join(f.jump if f.aligned else "|".join(map(str, f.jumps)) for f in fields),
                "start": join(f.start for f in fields),
                "padding": join(f.padding for f in fields),
                "RF w/o gates": " x ".join(
                    f.describe() for f in graph.receptive_field(node, gates="ignore")
                ),
            }
        )
    if all(
        r["RF w/o gates"] == " x ".join(f.describe() for f in graph.receptive_field(r["node"]))
        for r in rows
    ):
        for r in rows:
            del r["RF w/o gates"]
    return rows


def _unit_text(graph, node: str, unit, fmt: str = "text") -> str:
    field = graph.unit_receptive_field(node, unit)
    if fmt == "json":
        plain = lambda v: v if isinstance(v, (int, type(None))) else str(v)  # noqa: E731
        return json.dumps(
            {
                "node": node,
                "position": list(field.position),
                "box": [list(b) for b in field.box] if field.box else None,
                "size": list(field.size),
                "centre": [plain(c) for c in field.centre],
            }
        )
    where = f"unit {field.position} of {shown(node)} {_dims(graph.shape(node))}"
    if field.box is None:
        return f"{where} reads no input pixel"
    box = ", ".join(f"axis {a}: {lo}..{hi}" for a, (lo, hi) in enumerate(field.box))
    centre = ", ".join(str(c) for c in field.centre)
    return (
        f"{where} reads input box {box} (inclusive, clipped to the input), "
        f"size {_dims(field.size)}, centre ({centre})"
    )


def rf(ns: argparse.Namespace) -> Result:
    """``convalgebra rf``: receptive fields of a network's layers or of one unit."""
    listed = _list_models(ns)
    if listed:
        return listed
    check_suffix(ns.plot, PICTURE_SUFFIXES, "--plot")
    graph, label, spec = _model_or_spec(ns, "rf")
    node = ns.node or _default_node(graph)
    if node is None:
        raise ConvAlgebraError(f"{label} has no layer with a spatial output")
    if getattr(ns, "effective", False):
        return _effective(graph, node, ns, label)
    if getattr(ns, "weights", "uniform") != "uniform":
        raise ConvAlgebraError("--weights applies to --effective only")
    if ns.unit is not None:
        text = _unit_text(graph, node, ns.unit, ns.format)
    else:
        from ..network.tabulate import render

        rows = _rf_rows(graph)
        if ns.node is not None:
            node = graph.resolve(ns.node)  # a module path names its output node
            rows = [r for r in rows if r["node"] == node]
        text = render(rows, fmt=ns.format)
    files = {}
    if ns.plot is not None:
        from .. import plot

        if spec is not None:
            figure = plot.plot_receptive_field(spec, ns.unit)
        elif ns.unit is not None:
            figure = plot.plot_unit_field(graph, node, ns.unit, title=label)
        else:
            figure = plot.plot_rf_growth(graph, title=label)
        files[ns.plot] = plot.to_image(figure, plot.figure_format(ns.plot))
    return Result(text + "".join(f"\nwrote {p}" for p in files), files)


def _effective(graph, node: str, ns: argparse.Namespace, label: str) -> Result:
    """``rf --effective``: the effective receptive field of one unit, with its picture."""
    from ..effective import effective_receptive_field

    weights: Any = "uniform"
    if getattr(ns, "weights", "uniform") == "model":
        from .python_models import is_python_target, load_python_model_and_module

        if ns.model is None or not is_python_target(ns.model):
            raise ConvAlgebraError(
                "--weights model needs a PyTorch model given as "
                "path/to/file.py:attr or package.module:attr"
            )
        shape = graph.shape(graph.inputs[0])
        graph, module = load_python_model_and_module(ns.model, shape)
        weights = module.state_dict()
    field = effective_receptive_field(graph, node, ns.unit, weights=weights)
    if ns.format in ("json", "csv", "markdown"):
        row = {
            "node": field.node,
            "position": list(field.position),
            "effective_size": round(field.size, 6),
            "radius": round(field.radius, 6),
            "mass": field.mass,
            "centre": [round(c, 6) for c in field.centre],
            "theoretical_box": [list(b) for b in field.box] if field.box else None,
            "theoretical_size": list(field.theoretical_size),
        }
        if ns.format == "json":
            text = json.dumps(row)
        else:
            from ..network.tabulate import render

            text = render(
                [
                    {
                        k: tuple(v) if isinstance(v, list) else v
                        for k, v in row.items()
                        if k != "theoretical_box"
                    }
                ],
                fmt=ns.format,
            )
    else:
        text = field.describe()
    files = {}
    if ns.plot is not None:
        from .. import plot

        files[ns.plot] = plot.to_image(
            plot.plot_effective_field(field, title=label), plot.figure_format(ns.plot)
        )
    return Result(text + "".join(f"\nwrote {p}" for p in files), files)


# ----------------------------------------------------------------------------- params
def _spec_params(spec: ConvSpec, fmt: str) -> str:
    row = {
        "layer": spec.describe(),
        "weight shape": spec.weight_shape,
        "weights": spec.n_weights,
        "biases": spec.n_params - spec.n_weights,
        "params": spec.n_params,
        "MACs": spec.macs,
        "FLOPs": 2 * spec.macs,
    }
    if fmt != "text":
        from ..network.tabulate import render

        return render([row], fmt=fmt)
    return (
        f"{row['layer']}\n"
        f"weights: {spec.n_weights:,} ({_dims(spec.weight_shape)}) + biases: {row['biases']:,}"
        f" = {spec.n_params:,} parameters\n"
        f"MACs: {spec.macs:,} (FLOPs = 2 x MACs = {2 * spec.macs:,})"
    )


def params(ns: argparse.Namespace) -> Result:
    """``convalgebra params``: parameters and MACs of a layer or a network."""
    listed = _list_models(ns)
    if listed:
        return listed
    graph, label, spec = _model_or_spec(ns, "params")
    if spec is not None:
        return Result(_spec_params(spec, ns.format))
    from ..network.tabulate import render

    percent = getattr(ns, "percent", False)
    layers = json.loads(
        graph.table(
            "json",
            depth=getattr(ns, "depth", None),
            percent=percent,
            fold=getattr(ns, "fold", False),
        )
    )
    columns = [
        "node",
        "kind",
        "output",
        "params",
        *(["params %"] if percent else []),
        "buffers",
        "MACs",
        *(["MACs %"] if percent else []),
    ]
    rows = [
        {c: tuple(r[c]) if c == "output" and r[c] else r[c] for c in columns}
        for r in layers
        if r["node"] == "total" or r["params"] or r["buffers"] or r["MACs"]
    ]
    total = graph.summary()
    table = render(rows, fmt=ns.format)
    if ns.format in ("csv", "json"):
        return Result(table)
    if graph.unused_note():
        table += "\n\n" + graph.unused_note()
    return Result(
        "\n".join([f"{label}: {total['params']:,} parameters, {total['macs']:,} MACs", "", table])
    )
