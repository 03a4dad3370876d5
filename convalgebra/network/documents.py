"""The documents a layer graph is read from and written as: its declarative spec (parsed
from JSON or YAML, with limits on the parsed document), and a networkx graph of plain
attributes.

:func:`graph_from_spec` checks and orders a spec's entries and builds the graph through its
public methods; :func:`graph_spec` writes the spec back; :func:`plain_networkx` is the
export networkx's JSON and GraphML writers take.

Examples
--------
>>> entries = spec_entries([{"kind": "relu", "name": "b", "inputs": "a"},
...                         {"kind": "relu", "name": "a", "inputs": "x"}], ["x"])
>>> [(name, reads) for name, _, reads, *_ in spec_order(entries, {"x"})]
[('a', ('x',)), ('b', ('a',))]
"""

from __future__ import annotations

import json
from collections.abc import Callable, Container, Mapping, Sequence
from typing import Any

import networkx as nx

from ..errors import ConvAlgebraError, GraphCycleError, shown
from .layers import Input, layer_from_dict
from .names import layer_label

__all__ = [
    "MAX_DOCUMENT_DEPTH",
    "MAX_DOCUMENT_VALUES",
    "checked_document",
    "graph_from_spec",
    "graph_spec",
    "load_document",
    "plain_networkx",
    "spec_entries",
    "spec_inputs",
    "spec_modules",
    "spec_order",
    "spec_reads",
]


def spec_inputs(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec's graph inputs, name -> shape list (``input``: one input named ``input``)."""
    inputs = spec.get("inputs") or {"input": spec.get("input")}
    if not isinstance(inputs, dict):
        raise ConvAlgebraError(
            f"'inputs' must map input names to shapes, got {type(inputs).__name__} {shown(inputs)}"
        )
    for name, shape in inputs.items():
        if not isinstance(shape, (list, tuple)):
            raise ConvAlgebraError(f"input {shown(name)} needs a shape list, got {shown(shape)}")
    return inputs


def spec_modules(modules: Any, graph: Container[str]) -> dict[str, list[str]]:
    """The ``modules`` entry of a spec: module path -> the output node of each call."""
    if modules is None:
        return {}
    if not isinstance(modules, dict) or not all(
        isinstance(k, str) and isinstance(v, list) and all(isinstance(n, str) for n in v)
        for k, v in modules.items()
    ):
        raise ConvAlgebraError(
            f"'modules' must map module paths to lists of node names, got {shown(modules)}"
        )
    for path, nodes in modules.items():
        for node in nodes:
            if node not in graph:
                raise ConvAlgebraError(
                    f"module {shown(path)} names node {shown(node)}, which is not in the graph"
                )
    return {k: list(v) for k, v in modules.items()}


def spec_reads(name: str, reads: Any) -> tuple[str, ...] | None:
    """The ``inputs`` entry of layer ``name``: None (the layer before), or node names."""
    if reads is None or isinstance(reads, str):
        return reads if reads is None else (reads,)
    if not isinstance(reads, list) or not all(isinstance(r, str) for r in reads):
        raise ConvAlgebraError(
            f"layer {shown(name)}: 'inputs' must be a node name or a list of "
            f"node names, got {shown(reads)}"
        )
    return tuple(reads)


def spec_entries(layers: list, inputs: list[str]) -> list[tuple]:
    """``(name, layer, reads, share, param_keys)`` per entry; a layer without ``inputs`` reads the
    entry before it (the last graph input for the first)."""
    entries: list[tuple] = []
    taken = set(inputs)
    for i, entry in enumerate(layers, start=len(inputs) + 1):
        if not isinstance(entry, dict):
            raise ConvAlgebraError(f"layer #{i} must be a mapping, got {shown(entry)}")
        entry = dict(entry)
        name, reads = entry.pop("name", None), entry.pop("inputs", None)
        share, keys = entry.pop("share", None), entry.pop("param_keys", None)
        tensors = entry.pop("tensors", None)
        label = name if name is not None else f"#{i}"
        try:
            layer = layer_from_dict(entry)
        except (ConvAlgebraError, TypeError) as exc:
            raise ConvAlgebraError(f"layer {shown(label)}: {exc}") from None
        name = f"{layer_label(layer)}{i - 1}" if name is None else name
        if not isinstance(name, str) or not name:
            raise ConvAlgebraError(
                f"layer #{i}: 'name' must be a non-empty string, got {shown(name)}"
            )
        if name in taken:
            raise ConvAlgebraError(f"a node named {shown(name)} is already in the graph")
        taken.add(name)
        reads = spec_reads(name, reads)
        if reads is None:
            previous = entries[-1][0] if entries else (inputs[-1] if inputs else None)
            reads = (previous,) if previous is not None and layer.arity[0] > 0 else ()
        if keys is not None and (
            not isinstance(keys, dict)
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in keys.items())
        ):
            raise ConvAlgebraError(
                f"layer {shown(name)}: 'param_keys' must map parameter names to "
                f"keys, got {str(keys)[:80]}"
            )
        entries.append((name, layer, reads, share, keys, tensors))
    return entries


def spec_order(entries: list[tuple], inputs: set[str]) -> list[tuple]:
    """The entries in an order where each reads only earlier nodes (the listed order when it
    already does); forward references are fine, a cycle raises :class:`GraphCycleError`."""
    position = {e[0]: k for k, e in enumerate(entries)}
    flow = nx.DiGraph()
    flow.add_nodes_from(position)
    for name, _, reads, *_ in entries:
        for src in reads:
            if src not in position and src not in inputs:
                raise ConvAlgebraError(
                    f"layer {shown(name)} reads {shown(src)}, which is not in the graph"
                )
            if src in position:
                flow.add_edge(src, name)
    try:
        order = list(nx.lexicographical_topological_sort(flow, key=position.get))
    except nx.NetworkXUnfeasible:
        cycle = [u for u, _ in nx.find_cycle(flow)]
        raise GraphCycleError(f"the graph has a cycle through {cycle}") from None
    return [entries[position[n]] for n in order]


#: Largest graph document: nesting depth and values (an alias counts at every use).
MAX_DOCUMENT_DEPTH = 64
MAX_DOCUMENT_VALUES = 1_000_000


def load_document(loads, text: str, kind: str):
    """``loads(text)``, its parse errors and runaway nesting as :class:`ConvAlgebraError`."""
    if not isinstance(text, (str, bytes)):
        raise TypeError(f"a {kind} document must be text, got {type(text).__name__} {shown(text)}")
    try:
        return loads(text)
    except RecursionError:
        raise ConvAlgebraError(
            f"the {kind} document is nested too deeply to read (a graph spec needs a few levels)"
        ) from None
    except ValueError as exc:  # json.JSONDecodeError, and bytes that are not text
        raise ConvAlgebraError(f"cannot parse the {kind} document: {exc}") from None


def checked_document(document: Any) -> Any:
    """``document`` if it is at most 64 levels deep and holds at most 1,000,000 values.

    Values reached through several references (YAML aliases) are counted at each, so a
    small file that expands to billions of values is refused before anything walks it.

    Examples
    --------
    >>> bomb = ["x"]
    >>> for _ in range(40):
    ...     bomb = [bomb, bomb]
    >>> checked_document(bomb)
    Traceback (most recent call last):
    ...
    convalgebra.errors.ConvAlgebraError: the graph document holds more than 1,000,000 values (counting each use of a YAML alias); a graph spec is much smaller
    """
    stack, seen = [(document, 0)], 0
    while stack:
        value, depth = stack.pop()
        seen += 1
        if seen > MAX_DOCUMENT_VALUES:
            raise ConvAlgebraError(
                f"the graph document holds more than {MAX_DOCUMENT_VALUES:,} values (counting "
                "each use of a YAML alias); a graph spec is much smaller"
            )
        if depth > MAX_DOCUMENT_DEPTH:
            raise ConvAlgebraError(
                f"the graph document is nested more than {MAX_DOCUMENT_DEPTH} levels deep; a "
                "graph spec needs a few"
            )
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in (*value.keys(), *value.values()))
        elif isinstance(value, (list, tuple)):
            stack.extend((v, depth + 1) for v in value)
    return document


def graph_from_spec(spec: Any, new_graph: Callable[[str], Any]) -> Any:
    """The graph a declarative spec describes (see
    :meth:`~convalgebra.network.graph.LayerGraph.from_spec`): ``new_graph(name)`` makes the
    empty graph, filled in through its public methods."""
    if not isinstance(spec, dict) or "layers" not in spec:
        raise ConvAlgebraError("a graph spec must be a mapping with a 'layers' list")
    if not isinstance(spec["layers"], list):
        raise ConvAlgebraError(
            f"'layers' must be a list of layer mappings, got "
            f"{type(spec['layers']).__name__} {shown(spec['layers'])}"
        )
    graph = new_graph(spec.get("name", "graph"))
    for name, shape in spec_inputs(spec).items():
        graph.add_input(name, shape)
    entries = spec_entries(spec["layers"], graph.nodes)
    for name, layer, reads, share, keys, tensors in spec_order(entries, set(graph.nodes)):
        graph.add(name, layer, reads, share=share, param_keys=keys, tensors=tensors)
    unused = spec.get("unused_parameters")
    if unused:
        if not isinstance(unused, dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in unused.values()
        ):
            raise ConvAlgebraError(
                f"'unused_parameters' must map parameter names to sizes, got {str(unused)[:80]}"
            )
        graph.graph_attrs["unused_parameter_sizes"] = dict(unused)
    graph.graph_attrs["modules"] = spec_modules(spec.get("modules"), graph)
    aliases = spec.get("aliases") or {}
    if not isinstance(aliases, dict):
        raise ConvAlgebraError(f"'aliases' must map names to node names, got {shown(aliases)}")
    for alias, node in spec_modules({k: [v] for k, v in aliases.items()}, graph).items():
        graph.alias(alias, node[0])
    return graph


def graph_spec(
    order: Sequence[str],
    attrs: Mapping[str, Mapping[str, Any]],
    meta: Mapping[str, Any],
    unused: Mapping[str, int],
) -> dict[str, Any]:
    """The declarative spec of the graph of nodes ``order`` (records ``attrs``, graph
    attributes ``meta``, ``unused`` parameters): what
    :meth:`~convalgebra.network.graph.LayerGraph.to_spec` returns."""
    layers, inputs = [], {}
    for node in order:
        data = attrs[node]
        if isinstance(data["layer"], Input):
            inputs[node] = list(data["layer"].shape)
            continue
        entry = {
            "name": node,
            "kind": data["layer"].kind,
            **data["layer"].config(),
            "inputs": list(data["inputs"]),
        }
        if data["tensors"] is not None:
            entry["tensors"] = {k: [size, t] for k, (size, t) in data["tensors"].items()}
        elif data["share"]:
            entry["share"] = data["share"]
        elif data["keys"] is not None:  # explicit keys (from_torch): sharing survives
            entry["param_keys"] = dict(data["keys"])
        layers.append(entry)
    spec = {"name": meta.get("name", "graph"), "inputs": inputs, "layers": layers}
    if unused:
        spec["unused_parameters"] = unused
    if meta.get("modules"):
        spec["modules"] = {k: list(v) for k, v in meta["modules"].items()}
    if meta.get("aliases"):
        spec["aliases"] = dict(meta["aliases"])
    return spec


def plain_networkx(
    name: str,
    order: Sequence[str],
    attrs: Mapping[str, Mapping[str, Any]],
    info: Callable[[str], Any],
) -> nx.DiGraph:
    """The graph as a DiGraph of plain attributes (see
    :meth:`~convalgebra.network.graph.LayerGraph.to_networkx`); ``info(node)`` is the
    node's :class:`~convalgebra.network.summary.NodeInfo`."""
    graph = nx.DiGraph(name=name)
    for node in order:
        report, layer = info(node), attrs[node]["layer"]
        plain: dict[str, Any] = {
            "kind": report.kind,
            "layer": json.dumps({"kind": layer.kind, **layer.config()}, default=str),
            "shape": "x".join(map(str, report.shape)),
            "params": report.params,
            "buffers": report.buffers,
            "macs": report.macs,
        }
        for a, record in enumerate(report.rf):
            plain.update((f"rf{a}_{k}", v) for k, v in record.to_dict().items() if k != "exact")
        graph.add_node(node, **plain)
    graph.add_edges_from(
        (src, node, {"port": port})
        for node in order
        for port, src in enumerate(attrs[node]["inputs"])
    )
    return graph
