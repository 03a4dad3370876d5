"""The layer graph: shapes, receptive fields, parameters and MACs of a whole network.

A :class:`LayerGraph` wraps a :class:`networkx.DiGraph` (``graph.nx``) whose nodes are named
layers (:mod:`convalgebra.network.layers`) and whose edges are data flow. Everything is computed
statically from the layer arithmetic, in one pass over the nodes in topological order.

Examples
--------
>>> from convalgebra.network.layers import Conv, MaxPool, Activation
>>> g = LayerGraph.sequential((3, 32, 32), [Conv(12, 3, padding="same"), Activation("relu"),
...                                          MaxPool(2)])
>>> g.shape("max_pool3")
(12, 16, 16)
>>> param_count(g), macs(g)
(336, 331776)
>>> [(rf.size, rf.jump) for rf in receptive_field(g, "max_pool3")]
[(4, 2), (4, 2)]
"""

from __future__ import annotations

import difflib
import json
import math
import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
from networkx import DiGraph

from ..display import Table
from ..errors import ConvAlgebraError, GraphCycleError, require, shown
from ..files import read_text, write_file
from ..spec import MAX_SIZE
from .counts import (
    checked_tensors,
    key_users,
    register_keys,
    register_tensors,
    total_macs,
    totals,
)
from .counts import positive as _positive
from .documents import MAX_DOCUMENT_DEPTH as MAX_DOCUMENT_DEPTH
from .documents import MAX_DOCUMENT_VALUES as MAX_DOCUMENT_VALUES
from .documents import (
    checked_document,
    graph_from_spec,
    graph_spec,
    load_document,
    plain_networkx,
)
from .fields import ALL, exact_fields, field_pass, gate_inputs, input_box, spatial_sizes
from .layers import Facts, Input, Layer, Parameter, layer_from_dict
from .names import in_scope, layer_label, printable_name, scopes
from .receptive import AxisRF
from .summary import NodeInfo, node_info, table_rows, unused_note
from .support import PRODUCTS, nonzero_masks

__all__ = [
    "LayerGraph",
    "NodeInfo",
    "UnitField",
    "receptive_field",
    "unit_receptive_field",
    "param_count",
    "buffer_count",
    "macs",
    "flops",
]

# facts of (layer, input shapes), shared by repeated blocks and graphs (read-only records)
_FACTS: dict[Any, Facts] = {}
_FACTS_MAX = 20_000


@dataclass(frozen=True)
class UnitField:
    """The exact input region read by one output position of a node (all its channels).

    ``box`` holds one inclusive ``(first, last)`` pair per spatial axis, clipped to the
    input; ``None`` when the unit reads no input at all (e.g. a transposed convolution whose
    stride exceeds its kernel). ``centre`` is the unclipped centre from the recurrences.
    """

    node: str
    position: tuple[int, ...]
    box: tuple[tuple[int, int], ...] | None
    centre: tuple

    @property
    def size(self) -> tuple[int, ...]:
        """Clipped extent per axis."""
        return tuple(b - a + 1 for a, b in self.box) if self.box else (0,) * len(self.centre)


_TOO_LARGE = "a size reaches 2**62: sizes this large cannot be indexed (use smaller sizes)"


def _check_sizes(facts: Facts) -> None:
    """A layer's output shape, element count and parameter count: integers below 2**62, as
    :class:`~convalgebra.spec.ConvSpec` requires of its sizes."""
    shape = facts.shape
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
        raise ConvAlgebraError(f"output shape {shown(shape)} must hold non-negative integers")
    counts = {
        "output shape": tuple(shape),
        "output elements": (math.prod(shape),),
        "parameters": (sum(facts.params.values()) + sum(facts.buffers.values()),),
    }
    for what, values in counts.items():
        if max(values, default=0) >= MAX_SIZE:
            raise ConvAlgebraError(f"{what} {shown(values)} {_TOO_LARGE[len('a size ') :]}")


class LayerGraph:
    """A network as a DAG of named layers, with shapes validated along every edge.

    Build it with :meth:`add_input`/:meth:`add`, :meth:`sequential`, :meth:`from_nx`,
    :meth:`from_spec`, :meth:`from_json`, :meth:`from_yaml` or :meth:`from_file`.

    Parameters
    ----------
    name : str, default "graph"
        The network's name, shown in tables and reports (printable text).

    Attributes
    ----------
    nx : networkx.DiGraph
        Node keys are the layer names (str); node attributes ``layer``, ``facts``, ``inputs``
        and ``share``; edge attribute ``port`` (the position among the node's inputs). After
        editing it directly, rebuild with ``LayerGraph.from_nx(graph.nx)``.

    Examples
    --------
    >>> from convalgebra.network.layers import Conv, Add
    >>> g = LayerGraph()
    >>> g.add_input("x", (8, 16, 16))
    'x'
    >>> g.add("a", Conv(8, 3, padding=1), "x")
    'a'
    >>> g.add("b", Conv(8, 3, padding=2, dilation=2), "x")
    'b'
    >>> g.add("sum", Add(), ["a", "b"])
    'sum'
    >>> g.receptive_field("sum")[0]
    AxisRF(size=5, jump=1, start=0, is_global=False, jumps=(1,), exact=True)
    >>> g.unit_receptive_field("sum", (0, 7)).box
    ((0, 2), (5, 9))
    """

    def __init__(self, name: str = "graph") -> None:
        self._meta: dict[str, Any] = {"name": printable_name("the graph's name", name)}
        self._nx: nx.DiGraph | None = None  # built on first access of .nx
        self._order: list[str] = []
        self._inputs: list[str] = []  # the Input nodes, in order (kept: queried per node)
        self._attrs: dict[str, dict] = {}  # node -> attributes (layer, facts, inputs, ...)
        self._params: dict[str, int] = {}  # parameter key -> size (shared keys once)
        self._buffers: dict[str, int] = {}
        self._own = [0, 0]  # parameters and buffers of the nodes that share nothing
        self._cache: dict[str, Any] | None = None

    # ------------------------------------------------------------------ building
    def add_input(self, name: str, shape: Sequence[int]) -> str:
        """Add a graph input of shape ``(C, *spatial)``; returns its name."""
        return self.add(name, Input(tuple(shape)), [])

    def add(
        self,
        name: str,
        layer: Layer | dict,
        inputs: str | Iterable[str] | None = None,
        *,
        share: str | None = None,
        param_keys: dict[str, str] | None = None,
        tensors: Mapping[str, Sequence] | None = None,
    ) -> str:
        """Add a layer reading ``inputs`` (default: the last node added); returns its name.

        ``share`` names a parameter set used by several nodes (counted once); ``param_keys``
        maps parameter names to global keys explicitly. ``tensors`` lists the stored tensors
        the node reads, ``{key: (size, learnable)}`` (a module's parameters and buffers, used
        by :func:`from_torch`): they replace the layer's own parameter count, so a weight
        computed from several tensors (or a buffer used as a weight) counts what is stored;
        a key read by several nodes is counted once.
        """
        if not isinstance(name, str) or not name:
            raise TypeError(f"node names must be non-empty strings, got {shown(name)}")
        printable_name("node names", name)
        if name in self._attrs:
            raise ConvAlgebraError(f"a node named {shown(name)} is already in the graph")
        layer = layer_from_dict(layer) if isinstance(layer, dict) else layer
        if not isinstance(layer, Layer):
            raise TypeError(
                f"layer {shown(name)} must be a Layer or a dict, got {type(layer).__name__}"
            )
        inputs = self._resolve_inputs(name, layer, inputs)
        facts = self._facts(name, layer, inputs)
        keys = None  # parameters keyed "<name>.<param>", owned by this node alone
        if tensors is not None:
            tensors = checked_tensors(name, tensors)
            register_tensors(name, tensors, self._params, self._buffers)
        elif share is not None or param_keys:
            keys = {
                p: (param_keys or {}).get(p, f"{share or name}.{p}")
                for p in (*facts.params, *facts.buffers)
            }
            register_keys(name, keys, facts.params, self._params)
            register_keys(name, keys, facts.buffers, self._buffers)
        elif facts.params or facts.buffers:
            self._own[0] += sum(facts.params.values())
            self._own[1] += sum(facts.buffers.values())
        self._attrs[name] = {
            "layer": layer,
            "facts": facts,
            "inputs": inputs,
            "share": share,
            "keys": keys,
            "tensors": tensors,
        }
        self._order.append(name)
        if isinstance(layer, Input):
            self._inputs.append(name)
        self._cache = self._nx = None
        return name

    @property
    def nx(self) -> nx.DiGraph:
        """The graph as a networkx DiGraph (built on first access after a change)."""
        if self._nx is None:
            graph = nx.DiGraph()
            graph.graph = self._meta
            graph.add_nodes_from(self._attrs.items())
            graph.add_edges_from(
                (src, node, {"port": port})
                for node in self._order
                for port, src in enumerate(self._attrs[node]["inputs"])
            )
            self._nx = graph
        return self._nx

    @property
    def graph_attrs(self) -> dict[str, Any]:
        """The graph-level attributes (``name``, ``modules``, ``aliases``...): the same dict
        as ``graph.nx.graph``, without building the networkx graph.

        Examples
        --------
        >>> g = LayerGraph("net")
        >>> g.graph_attrs["note"] = "imported"
        >>> g.nx.graph["note"], g.graph_attrs is g.nx.graph
        ('imported', True)
        """
        return self._meta

    def to_networkx(self, *, plain: bool = True) -> DiGraph:
        """A copy of the graph as a networkx DiGraph.

        ``plain=True``: every attribute is a string, number or boolean, so
        ``nx.node_link_data`` and ``nx.write_graphml`` take it: per node ``kind``, ``layer``
        (the layer's configuration as JSON), ``shape`` (``"64x56x56"``), ``params``,
        ``buffers``, ``macs`` and per spatial axis ``rf<axis>_size``, ``_jump``, ``_start``,
        ``_global``; per edge ``port``; the graph's ``name``. ``plain=False``: :attr:`nx`
        (layer objects as attributes).

        Examples
        --------
        >>> import io, networkx as nx
        >>> from convalgebra.network.layers import Conv
        >>> g = LayerGraph.sequential((3, 8, 8), [Conv(4, 3, stride=2)])
        >>> plain = g.to_networkx()
        >>> plain.nodes["conv1"]["shape"], plain.nodes["conv1"]["rf0_jump"]
        ('4x3x3', 2)
        >>> nx.write_graphml(plain, io.BytesIO())
        """
        if not plain:
            return self.nx.copy()
        return plain_networkx(
            str(self._meta.get("name", "graph")), self._order, self._attrs, self.info
        )

    def _resolve_inputs(self, name: str, layer: Layer, inputs: Any) -> tuple[str, ...]:
        if inputs is None:
            inputs = (self._order[-1],) if self._order and layer.arity[0] > 0 else ()
        elif isinstance(inputs, str):
            inputs = (inputs,)
        inputs = tuple(inputs)
        for src in inputs:
            if src not in self._attrs:
                raise ConvAlgebraError(
                    f"layer {shown(name)} reads {shown(src)}, which is not in the graph"
                )
        low, high = layer.arity
        if len(inputs) < low or (high is not None and len(inputs) > high):
            want = f"{low}" if low == high else f"at least {low}"
            raise ConvAlgebraError(
                f"layer {shown(name)} ({layer.kind}) takes {want} input(s), got {len(inputs)}"
            )
        return inputs

    def _facts(self, name: str, layer: Layer, inputs: tuple[str, ...]) -> Facts:
        shapes = [self._attrs[src]["facts"].shape for src in inputs]
        try:  # unhashable configs skip the cache
            key = (layer, *shapes)
            cached = _FACTS.get(key)
        except TypeError:
            key, cached = None, None
        if cached is not None:
            return cached
        try:
            facts = layer.facts(shapes)
            _check_sizes(facts)
        except (ConvAlgebraError, TypeError, OverflowError, MemoryError) as exc:
            # e.g. kernel_size "3" from a spec file, or a size of 10**4000
            why = exc if isinstance(exc, (ConvAlgebraError, TypeError)) else _TOO_LARGE
            branches = ", ".join(f"{shown(s)} {shown(sh)}" for s, sh in zip(inputs, shapes))
            raise ConvAlgebraError(
                f"layer {shown(name)} ({layer.kind}) on input(s) {branches or 'none'}: {why}"
            ) from None
        if key is not None:
            if len(_FACTS) >= _FACTS_MAX:
                _FACTS.clear()
            _FACTS[key] = facts
        return facts

    @classmethod
    def sequential(
        cls, input_shape: Sequence[int], layers: Iterable[Any], *, name: str = "sequential"
    ) -> LayerGraph:
        """A chain from a list of layers, dicts or ``(name, layer)`` pairs.

        Unnamed layers are called ``<kind><position>`` (``conv1``, ``relu2``...).
        """
        graph = cls(name)
        graph.add_input("input", input_shape)
        for i, entry in enumerate(layers, start=1):
            label, layer = entry if isinstance(entry, tuple) else (None, entry)
            if isinstance(layer, dict):
                layer = dict(layer)
                label = layer.pop("name", label)
                layer = layer_from_dict(layer)
            graph.add(label or f"{layer_label(layer)}{i}", layer)
        return graph

    @classmethod
    def from_nx(cls, graph: Any) -> LayerGraph:
        """Rebuild from a DiGraph whose nodes carry ``layer`` (a Layer or dict) attributes.

        Edges give the data flow; their ``port`` attribute orders the inputs of a node.
        """
        try:
            order = list(nx.topological_sort(graph))
        except nx.NetworkXUnfeasible:
            cycle = [u for u, _ in nx.find_cycle(graph)]
            raise GraphCycleError(f"the graph has a cycle through {cycle}") from None
        out = cls(graph.graph.get("name", "graph"))
        out._meta.update(graph.graph)
        for node in order:
            data = graph.nodes[node]
            if "layer" not in data:
                raise ConvAlgebraError(f"node {shown(node)} has no 'layer' attribute")
            preds = sorted(
                graph.predecessors(node), key=lambda u: graph.edges[u, node].get("port", 0)
            )
            out.add(
                str(node),
                data["layer"],
                [str(p) for p in preds],
                share=data.get("share"),
                param_keys=data.get("param_keys") or data.get("keys"),
                tensors=data.get("tensors"),
            )
        modules = {
            k: [n for n in v if n in out] for k, v in (out._meta.get("modules") or {}).items()
        }
        out._meta["modules"] = {k: v for k, v in modules.items() if v}
        aliases = (out._meta.get("aliases") or {}).items()
        out._meta["aliases"] = {k: v for k, v in aliases if v in out}
        return out

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> LayerGraph:
        """Build from a declarative spec (the parsed JSON/YAML document).

        ``{"name": str, "input": shape | "inputs": {name: shape}, "layers": [{"name", "kind",
        "inputs", "share", "param_keys", "tensors", **fields}], "unused_parameters": {name:
        size}, "modules": {path: [node, ...]}, "aliases": {name: node}}``; a layer without
        ``inputs`` reads the previous one; ``param_keys`` maps a layer's parameter names to
        global keys (layers naming the same key share it); ``tensors`` lists the stored
        tensors a layer reads, ``{key: [size, learnable]}`` (see :meth:`add`); ``modules``
        gives the output node of each call of a module path, ``aliases`` other names of nodes
        (see :meth:`resolve`).

        Examples
        --------
        >>> g = LayerGraph.from_spec({"input": [1, 28, 28], "layers": [
        ...     {"kind": "conv", "out_channels": 6, "kernel_size": 5, "padding": 2},
        ...     {"kind": "sigmoid"}, {"name": "pool", "kind": "avg_pool", "kernel_size": 2}]})
        >>> g.shape("pool"), param_count(g)
        ((6, 14, 14), 156)
        """
        return graph_from_spec(spec, cls)

    @classmethod
    def from_json(cls, text: str) -> LayerGraph:
        """Build from a JSON document (see :meth:`from_spec`); see :func:`checked_document`."""
        return cls.from_spec(checked_document(load_document(json.loads, text, "JSON")))

    @classmethod
    def from_yaml(cls, text: str) -> LayerGraph:
        """Build from a YAML document, parsed with ``yaml.safe_load`` only (no Python tags);
        aliases count once per use, so an alias bomb is refused (:func:`checked_document`)."""
        return cls.from_spec(
            checked_document(load_document(require("yaml", "yaml").safe_load, text, "YAML"))
        )

    @classmethod
    def from_file(cls, path: str | Path) -> LayerGraph:
        """Build from a ``.json``, ``.yaml`` or ``.yml`` file (a regular file of at most
        :data:`~convalgebra.files.MAX_READ_BYTES`; a FIFO or a device is refused unread)."""
        path = Path(path)
        text = read_text(path, "a graph file")
        if path.suffix.lower() in (".yaml", ".yml"):
            return cls.from_yaml(text)
        if path.suffix.lower() == ".json":
            return cls.from_json(text)
        raise ConvAlgebraError(
            f"unknown graph file type {shown(path.suffix)}: use .json, .yaml or .yml"
        )

    def to_spec(self) -> dict[str, Any]:
        """The declarative spec of this graph (``from_spec(g.to_spec())`` rebuilds it)."""
        return graph_spec(self._order, self._attrs, self._meta, self.unused_parameters())

    def to_file(self, path: str | Path) -> Path:
        """Write the graph's spec (:meth:`to_spec`) as ``.json``, ``.yaml`` or ``.yml``;
        :meth:`from_file` reads it back. Returns the path.

        The file is written by :func:`convalgebra.files.write_file`: atomically, replacing a
        regular file, never following a symbolic link nor writing into a FIFO or a device.

        Examples
        --------
        >>> import tempfile, os
        >>> from convalgebra.network.layers import Conv
        >>> g = LayerGraph.sequential((3, 16, 16), [Conv(8, 3, stride=2)])
        >>> path = g.to_file(os.path.join(tempfile.mkdtemp(), "net.json"))
        >>> LayerGraph.from_file(path).shape("conv1")
        (8, 7, 7)
        """
        path = Path(path)
        return write_file(path, self.to_text(path.suffix.lstrip(".") or "?").encode("utf-8"))

    def to_text(self, fmt: str = "json") -> str:
        """The graph's spec as a JSON (``fmt="json"``) or YAML (``"yaml"``/``"yml"``) document."""
        fmt = fmt.lower()
        if fmt == "json":
            return json.dumps(self.to_spec(), indent=1) + "\n"
        if fmt in ("yaml", "yml"):
            return require("yaml", "yaml").safe_dump(self.to_spec(), sort_keys=False)
        raise ConvAlgebraError(f"unknown graph file type {shown(fmt)}: use json, yaml or yml")

    # ------------------------------------------------------------------ queries
    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, node: object) -> bool:
        return node in self._attrs

    def _repr_html_(self) -> str:
        from .htmlreport import graph_summary_html

        return graph_summary_html(self, str(self._meta.get("name")))

    def to_html(self, path: str | Path | None = None, **options: Any) -> str:
        """A self-contained interactive HTML report (see :func:`.htmlreport.graph_html`);
        written to ``path`` when given (a regular file), returned as text."""
        from .htmlreport import graph_html

        return graph_html(self, path, **{"name": str(self._meta.get("name")), **options})

    def __repr__(self) -> str:
        return f"<LayerGraph {self._meta.get('name')!r}: {len(self)} nodes>"

    @property
    def nodes(self) -> list[str]:
        """Node names in topological (insertion) order."""
        return list(self._order)

    @property
    def inputs(self) -> list[str]:
        """The graph's input nodes, in insertion order."""
        return list(self._inputs)

    @property
    def outputs(self) -> list[str]:
        """Nodes no other node reads."""
        read = {src for n in self._order for src in self._attrs[n]["inputs"]}
        return [n for n in self._order if n not in read]

    def _node(self, node: str) -> dict:
        return self._attrs[self.resolve(node)]

    def resolve(self, name: str) -> str:
        """The node a name stands for: a node name, or a module path naming its output.

        A module path (``layer3``, ``layer3.1``, ``features.7``) names the output of the
        module's last call: the graph's record of module outputs (:func:`from_torch` keeps
        one for every module its forward calls) or an alias (:meth:`alias`), else the last
        node of the scope (:meth:`nodes_of`). An unknown name is an error listing the
        closest names.

        Examples
        --------
        >>> from convalgebra.network.layers import Conv, Activation
        >>> g = LayerGraph.sequential((3, 8, 8), [("block.conv", Conv(4, 3)),
        ...                                       ("block.relu", Activation("relu"))])
        >>> g.resolve("block"), g.resolve("block.conv")
        ('block.relu', 'block.conv')
        >>> g.resolve("blok")
        Traceback (most recent call last):
        ...
        convalgebra.errors.ConvAlgebraError: no node named 'blok' in the graph; close matches: 'block'
        """
        if not isinstance(name, str):
            raise TypeError(
                f"node must be a node name (str), got {type(name).__name__} {shown(name)}"
            )
        if name in self._attrs:
            return name
        named = self.module_outputs()
        if name in named:
            return named[name]
        inside = self.nodes_of(name)
        if inside:
            return inside[-1]
        known = dict.fromkeys([*self._attrs, *named, *scopes(self._order)])
        close = difflib.get_close_matches(name, list(known), 5)
        hint = "; close matches: " + ", ".join(shown(c) for c in close) if close else ""
        raise ConvAlgebraError(f"no node named {shown(name)} in the graph{hint}")

    def alias(self, name: str, node: str) -> None:
        """Let ``name`` stand for ``node`` in every query (e.g. ``"features"``)."""
        if name in self._attrs:
            raise ConvAlgebraError(f"{shown(name)} is already a node of the graph")
        self._meta.setdefault("aliases", {})[name] = self.resolve(node)

    def module_outputs(self) -> dict[str, str]:
        """Module path (or alias) -> the node holding the output of its last call.

        :func:`~convalgebra.interop.torch.from_torch` records every module its forward
        calls (``graph.nx.graph["modules"]`` keeps the output node of each call, in order).
        """
        calls = self._meta.get("modules") or {}
        return {**{k: v[-1] for k, v in calls.items() if v}, **(self._meta.get("aliases") or {})}

    def nodes_of(self, path: str) -> list[str]:
        """Every node a module produced: named ``path``, ``path#k`` (its earlier calls) or
        inside its scope (``path.<...>``), in order; the recorded outputs of ``path`` when
        no node carries its name.

        Examples
        --------
        >>> from convalgebra import zoo
        >>> zoo.resnet18().nodes_of("layer1.0")[:4]
        ['layer1.0.conv1', 'layer1.0.bn1', 'layer1.0.relu#1', 'layer1.0.conv2']
        """
        inside = [n for n in self._order if in_scope(n, path)]
        if inside:
            return inside
        return list(dict.fromkeys((self._meta.get("modules") or {}).get(path, [])))

    def layer(self, node: str) -> Layer:
        return self._node(node)["layer"]

    def shape(self, node: str) -> tuple[int, ...]:
        """Output shape ``(C, *spatial)`` of a node (or of the output of a module path)."""
        return self._node(node)["facts"].shape

    def facts(self, node: str) -> Facts:
        return self._node(node)["facts"]

    @property
    def spatial_ndim(self) -> int:
        """Number of spatial axes of the graph input(s)."""
        shapes = [self.shape(n) for n in self.inputs]
        return max((len(s) - 1 for s in shapes), default=0)

    @property
    def extent(self) -> tuple[int, ...]:
        """Spatial size of the input(s) along each axis (the largest over inputs)."""
        n = self.spatial_ndim
        shapes = [self.shape(i) for i in self.inputs if len(self.shape(i)) == n + 1]
        return tuple(max(s[1 + a] for s in shapes) for a in range(n))

    def default_node(self) -> str | None:
        """The node a network's receptive field is quoted at: the last feature map.

        ``"features"`` when the graph has a node or alias of that name (the zoo's last
        feature map); else the last node (in order) that still carries every spatial axis of
        the input (:meth:`axes`, so channels-last ``(H, W, C)`` maps count) with more than
        one position, i.e. the map before global pooling or flattening; when every map has
        shrunk to one position, the last node carrying the spatial axes whose field is not
        global; ``None`` when no node carries them.

        Examples
        --------
        >>> from convalgebra.network.layers import Conv, AdaptivePool, Flatten, LayerNorm, Permute
        >>> g = LayerGraph.sequential((3, 16, 16), [Conv(4, 3), AdaptivePool(1), Flatten()])
        >>> g.default_node()
        'conv1'

        A channels-last head (pooled ``(1, 1, C)`` map, then a norm) is not a feature map:

        >>> last = [Permute((1, 2, 0)), LayerNorm(4)]
        >>> g = LayerGraph.sequential((3, 16, 16), [Conv(4, 3), *last, Permute((2, 0, 1)),
        ...                                          AdaptivePool(1), *last])
        >>> g.default_node(), g.shape("layer_norm7")
        ('permute4', (1, 1, 4))
        """
        if "features" in self._attrs or "features" in (self._meta.get("aliases") or {}):
            return "features"
        if not self.spatial_ndim:
            return None
        carried = [
            v
            for v in reversed(self._order)
            if v not in self._inputs
            and not isinstance(self._attrs[v]["layer"], Parameter)
            and self._spatial_sizes(v) is not None
        ]
        wide = (v for v in carried if math.prod(self._spatial_sizes(v) or ()) > 1)
        local = (v for v in carried if not any(f.is_global for f in self._fields("keep")[v]))
        return next(wide, None) or next(local, None) or next(iter(carried), None)

    def _resolve_node(self, node: str | None) -> str:
        if node is None:
            found = self.default_node()
            if found is None:
                raise ConvAlgebraError(
                    f"{self!r} has no node with a spatial output: name the "
                    "node whose receptive field you want"
                )
            return self.resolve(found)
        return self.resolve(node)

    # ------------------------------------------------------------------ analysis
    def _analysis(self) -> dict[str, Any]:
        if self._cache is None:
            self._cache = {"plan": {}}
            self._cache["rf"] = self._receptive_fields()
        return self._cache

    def _fields(self, gates: str) -> dict[str, tuple[AxisRF, ...]]:
        if gates not in ("keep", "ignore"):
            raise ConvAlgebraError(f"gates must be 'keep' or 'ignore', got {shown(gates)}")
        analysis = self._analysis()
        if gates == "keep":
            return analysis["rf"]
        if "rf_ignore" not in analysis:  # the same fields when no node can be gated
            gated = any(
                self._attrs[v]["layer"].kind in ("mul", "squeeze_excite") for v in self._order
            )
            analysis["rf_ignore"] = self._receptive_fields(True) if gated else analysis["rf"]
        return analysis["rf_ignore"]

    def gate_ports(self, node: str) -> tuple[int, ...]:
        """Input ports of ``node`` that are multiplicative gates from a globally pooled branch.

        A port of a ``mul`` node is a gate when its value has size 1 along every spatial
        axis while the product does not (it is broadcast over every position, as the
        output of squeeze-and-excitation's pool, convolutions and sigmoid is); a
        ``squeeze_excite`` node gates its single input internally and reports ``()``.
        When every input of a product is such a branch, none is a gate.

        Examples
        --------
        >>> from convalgebra.network.layers import Conv, AdaptivePool, Mul
        >>> g = LayerGraph()
        >>> g.add_input("x", (4, 8, 8))
        'x'
        >>> g.add("pool", AdaptivePool(1), "x")
        'pool'
        >>> g.add("scale", Mul(), ["x", "pool"])
        'scale'
        >>> g.gate_ports("scale")
        (1,)
        """
        node = self.resolve(node)
        data = self._attrs[node]
        if data["layer"].kind != "mul":
            return ()
        shapes = [self._attrs[s]["facts"].shape for s in data["inputs"]]
        return gate_inputs(shapes, data["facts"].shape, self.spatial_ndim)

    def _receptive_fields(self, ignore_gates: bool = False) -> dict[str, tuple[AxisRF, ...]]:
        assert self._cache is not None
        plans, fields = field_pass(
            self._order,
            self._attrs,
            self.spatial_ndim,
            self.extent,
            self.gate_ports if ignore_gates else None,
        )
        self._cache["plan"] = plans
        return fields

    def axes(self, node: str) -> tuple[int | None, ...]:
        """Where each spatial axis of the graph input sits in ``node``'s output.

        One output axis index per spatial axis (``None``: merged away as the inner part of
        a reshape or flatten),
        ``(1, 2)`` for a ``(C, H, W)`` node, ``(0, 1)`` for a channels-last ``(H, W, C)``
        node; ``()`` for a parameter or a value computed from parameters alone.

        Examples
        --------
        >>> from convalgebra.network.layers import Conv, Permute, Flatten
        >>> g = LayerGraph.sequential((3, 8, 8), [Conv(4, 3), Permute((1, 2, 0)), Flatten()])
        >>> g.axes("conv1"), g.axes("permute2"), g.axes("flatten3")
        ((1, 2), (0, 1), (0, None))

        Flattening ``(H, W, C)`` keeps ``H`` as the outer part of the flat axis (unit ``j``
        reads row ``j // (W C)``); ``W`` is merged away.
        """
        node = self.resolve(node)
        self._analysis()
        assert self._cache is not None
        return self._cache["plan"][node][0] or ()

    def receptive_field(
        self, node: str | None = None, *, exact: bool = False, gates: str = "keep"
    ) -> tuple[AxisRF, ...]:
        """Receptive field of ``node``'s units, one :class:`AxisRF` per spatial axis.

        ``node`` defaults to :meth:`default_node` (``"features"``, else the last feature
        map). With ``exact=True``, an axis whose record is not exact (phase-dependent reach
        after a strided transposed convolution or upsampling) gets the largest unclipped
        extent over one period of units (see ``unit_receptive_field(..., clip=False)``).
        With ``gates="ignore"``, every multiplicative gate computed from a globally pooled
        branch (:meth:`gate_ports`, squeeze-and-excitation) is held constant: the field of
        the non-gate path, the one papers quote for networks with such gates.

        Examples
        --------
        >>> from convalgebra.network.layers import Conv
        >>> g = LayerGraph.sequential((1, 32), [("down", Conv(1, 3, stride=2)),
        ...                                     ("up", Conv(1, 3, stride=2, transposed=True))])
        >>> g.receptive_field("up")[0].describe(), g.receptive_field("up", exact=True)[0].size
        ('~5/1', 5)
        """
        node = self._resolve_node(node)
        fields = self._fields(gates)[node]
        if exact and not all((f.exact and f.aligned) or f.is_global for f in fields):
            fields = self._exact_fields(node, fields, gates)
        return fields

    def _exact_fields(
        self, node: str, fields: tuple[AxisRF, ...], gates: str = "keep"
    ) -> tuple[AxisRF, ...]:
        rf = self._fields(gates)
        return exact_fields(
            fields,
            (rf[a] for a in nx.ancestors(self.nx, node)),
            self._spatial_sizes(node) or (),
            partial(self._box, node, clip=False, gates=gates),
        )

    def unit_receptive_field(
        self,
        node: str,
        position: Sequence[int] | None = None,
        *,
        clip: bool = True,
        gates: str = "keep",
    ) -> UnitField:
        """The exact input box read by the unit at spatial ``position`` of ``node``.

        The union over the node's channels and over every path of the DAG, clipped to the
        input; positions are 0-based, one per spatial axis of the graph's input, in the
        input's order (a node whose axes a permute moved is addressed in that order too;
        default: the central unit). With
        ``clip=False`` every layer reads as if its input extended forever (padding never
        drops a tap): the box is then the unit's unclipped field, possibly outside the input.
        ``gates="ignore"`` holds gates constant (see :meth:`receptive_field`).
        """
        node = self.resolve(node)
        shape, n = self.shape(node), self.spatial_ndim
        sizes = self._spatial_sizes(node)
        spatial = sizes is not None and n > 0
        if position is None:
            position = tuple((s - 1) // 2 for s in sizes) if sizes and spatial else ()
        try:
            position = tuple(operator.index(p) for p in position)
        except TypeError:
            raise TypeError(
                f"position must be a tuple of integers, got {shown(position)}"
            ) from None
        if (
            sizes
            and spatial
            and (len(position) != n or any(not 0 <= p < s for p, s in zip(position, sizes)))
        ):
            raise ConvAlgebraError(
                f"position {shown(position)} is outside node {shown(node)} of shape {shape}: "
                f"one 0-based index per spatial axis of the input, in its order, below "
                f"{tuple(sizes)}"
            )
        box = self._box(
            node, tuple(np.array([p]) for p in position) if spatial else ALL, clip, gates
        )
        rf = self.receptive_field(node, gates=gates)
        centre = tuple(
            f.start + p * f.jump
            if f.aligned and not f.is_global and spatial
            else ((box[a][0] + box[a][1]) / 2 if box else None)
            for a, (f, p) in enumerate(zip(rf, position or (0,) * n))
        )
        return UnitField(node, position, box, centre)

    def _box(self, node: str, request: Any, clip: bool, gates: str = "keep") -> tuple | None:
        """Bounding box of the input positions read by ``request`` (per-axis positions)."""
        self._fields(gates)  # validates ``gates``
        assert self._cache is not None
        return input_box(
            self._order,
            self._attrs,
            self._cache["plan"],
            node,
            request,
            clip,
            self.gate_ports if gates == "ignore" else None,
            self._product_zeros() if clip else None,  # unclipped: no padding, no zeros
        )

    def _product_zeros(self) -> dict[str, Any] | None:
        """Product node -> its positions that may be non-zero (see :mod:`.support`)."""
        assert self._cache is not None
        if "zeros" not in self._cache:
            products = [v for v in self._order if self._attrs[v]["layer"].kind in PRODUCTS]
            masks = nonzero_masks(self._order, self._attrs, self._cache["plan"]) if products else {}
            found = {v: masks[v] for v in products if masks[v] is not None}
            self._cache["zeros"] = found or None
        return self._cache["zeros"]

    def _spatial_sizes(self, node: str) -> tuple[int, ...] | None:
        """Size of ``node``'s output along each spatial axis (None: some axis is merged)."""
        return spatial_sizes(self.axes(node), self.shape(node))

    # ------------------------------------------------------------- params & cost
    def _key_users(self) -> dict[str, int]:
        """How many nodes read each explicitly keyed parameter or buffer (sharing > 1)."""
        analysis = self._analysis()
        if "key_users" not in analysis:
            analysis["key_users"] = key_users(self._attrs.values())
        return analysis["key_users"]

    def param_count(self, *, trainable: bool = True) -> int:
        """Learnable parameters (``trainable=True``) or buffers, shared ones counted once."""
        shared = self._params if trainable else self._buffers
        return self._own[0 if trainable else 1] + sum(shared.values())

    def macs(self) -> int:
        """Multiply-accumulates of convolution and linear layers (one forward pass)."""
        return total_macs(self._order, self._attrs)

    def info(self, node: str, *, _seen: set | None = None) -> NodeInfo:
        """The full report of one node (parameters, cost, memory, receptive field, flags)."""
        node = self.resolve(node)
        return node_info(
            node, self._attrs[node], self.receptive_field(node), self._key_users(), _seen
        )

    def table(
        self,
        fmt: str = "text",
        *,
        dtype_bytes: int = 4,
        batch: int = 1,
        depth: int | None = None,
        percent: bool = False,
        fold: bool = False,
    ) -> Table:
        """A per-node table with a totals row: ``fmt`` is text, markdown, csv or json.

        The result is the rendered text (a ``str``) holding the rows as data: ``.rows``,
        ``to_records()``, ``to_pandas()`` and an HTML table in notebooks
        (:class:`~convalgebra.display.Table`).

        Columns: node, kind, output shape, params (shared ones counted at first use),
        buffers, MACs, receptive field per axis (``size/jump`` or ``global``; CSV and JSON
        add the numbers, ``rf<axis>_size``, ``_jump``, ``_start`` and ``_global``; with an
        ``RF w/o gates`` column beside it when holding the gates constant changes some
        node's field, see :meth:`receptive_field`), activation memory in bytes of ``batch``
        samples at ``dtype_bytes`` per element (``act_bytes``), and flags; MACs are for the
        whole batch too. ``depth=K``
        folds the nodes whose dotted module path shares its first ``K`` parts into one row
        (sums of params, buffers, MACs and memory; shape and field of the group's last
        node); ``percent=True`` adds each row's share of the total params, MACs and memory.
        ``fold=True`` lists layers instead of nodes: a batch normalisation, an elementwise
        activation or a dropout joins the row of the layer it follows (named
        ``conv1 + BN + ReLU``; see :func:`~convalgebra.network.tabulate.fold_layer_rows`).
        """
        from .tabulate import add_percentages, fold_layer_rows, fold_rows, format_cell, render

        rows = self._rows(dtype_bytes, _positive(batch, "batch"), numeric=fmt in ("csv", "json"))
        if not isinstance(fold, bool):
            raise TypeError(f"fold must be True or False, got {shown(fold)}")
        if fold and depth is not None:
            raise ConvAlgebraError(
                f"fold and depth fold rows two ways; give one, got fold=True and depth={shown(depth)}"
            )
        if fold:
            rows = fold_layer_rows(self, rows)
        if depth is not None:
            rows = fold_rows(rows, _positive(depth, "depth"))
        total = self.summary(dtype_bytes=dtype_bytes, batch=batch)
        rows.append(
            {
                "node": "total",
                "params": total["params"],
                "buffers": total["buffers"],
                "MACs": total["macs"],
                "act_bytes": total["activation_bytes"],
            }
        )
        if percent:
            rows = add_percentages(rows, ("params", "MACs", "act_bytes"))
        note = self.unused_note()
        text = render(rows, fmt=fmt)
        if note and fmt in ("text", "markdown"):
            text += "\n\n" + note
        return Table(text, rows, list(rows[0]), format_cell)

    def _rows(self, dtype_bytes: int, batch: int, numeric: bool = False) -> list[dict[str, Any]]:
        ignored = partial(self.receptive_field, gates="ignore")
        return table_rows(
            self._order,
            lambda v, seen: self.info(v, _seen=seen),
            ignored if self._gates_change_fields() else None,
            self.spatial_ndim,
            dtype_bytes=dtype_bytes,
            batch=batch,
            numeric=numeric,
        )

    def _gates_change_fields(self) -> bool:
        """Whether holding the gates constant changes the field of some node."""
        return self._fields("ignore") != self._fields("keep")

    def unused_parameters(self) -> dict[str, int]:
        """Parameters the graph holds no node for (name -> size), not counted anywhere.

        :func:`~convalgebra.interop.torch.from_torch` records the parameters of modules
        that ``forward`` never calls here.
        """
        return dict(self._meta.get("unused_parameter_sizes") or {})

    def unused_note(self, shown: int = 6) -> str | None:
        """``"not used in forward: a.weight, a.bias (12 parameters, not counted)"`` or None."""
        return unused_note(self.unused_parameters(), shown)

    def summary(self, *, dtype_bytes: int = 4, batch: int = 1) -> dict[str, int]:
        """Totals: params, buffers, MACs, FLOPs (= 2 MACs), other ops, memory, and the
        parameters of an imported module that its forward never uses (``unused_params``,
        not counted in ``params``).

        Memory is for ``batch`` samples at ``dtype_bytes`` per element: ``activation_bytes``
        holds every node's output (one forward pass keeping everything);
        ``forward_backward_bytes`` is torchinfo's "forward/backward pass size", twice the
        outputs of the nodes with parameters (each parameter set's first use only);
        ``input_bytes`` and ``param_bytes`` (parameters and buffers) complete its total.
        MACs, FLOPs and other ops are for the whole batch.

        Examples
        --------
        >>> from convalgebra.network.layers import Conv, Activation
        >>> g = LayerGraph.sequential((3, 8, 8), [Conv(4, 3, padding=1), Activation("relu")])
        >>> s = g.summary(batch=2)
        >>> s["activation_bytes"], s["forward_backward_bytes"], s["macs"]
        (5632, 4096, 13824)
        """
        counts = (
            self.param_count(),
            self.param_count(trainable=False),
            sum(self.unused_parameters().values()),
        )
        return totals(
            self._order,
            self._attrs,
            self._inputs,
            counts,
            dtype_bytes=dtype_bytes,
            batch=_positive(batch, "batch"),
        )


def receptive_field(
    graph: LayerGraph, node: str | None = None, *, exact: bool = False, gates: str = "keep"
) -> tuple[AxisRF, ...]:
    """Receptive field of ``node`` in ``graph``: one record per spatial axis.

    ``node`` defaults to ``graph.default_node()`` (``"features"``, else the last feature
    map); ``gates="ignore"`` gives the field of the non-gate path (see
    :meth:`LayerGraph.receptive_field`).

    Parameters
    ----------
    graph : LayerGraph
        The network.
    node : str, optional
        The layer whose units' field is asked for.
    exact : bool, default False
        Where an axis's field depends on the unit (after a strided transposed convolution or
        upsampling), give the largest unclipped extent over one period of units.
    gates : {"keep", "ignore"}
        ``"ignore"`` holds multiplicative gates computed from a globally pooled branch
        constant (squeeze-and-excitation).

    Returns
    -------
    tuple of AxisRF
        Per spatial axis: ``size`` (input pixels), ``jump`` (input pixels between
        neighbouring units), ``start`` (centre of the first unit's field), ``is_global``,
        ``exact``.

    Examples
    --------
    >>> from convalgebra.network.layers import Conv
    >>> g = LayerGraph.sequential((1, 32, 32), [Conv(1, 3)] * 3)
    >>> [receptive_field(g, n)[0].size for n in ("conv1", "conv2", "conv3")]
    [3, 5, 7]
    >>> receptive_field(g)[0].size
    7
    """
    return _graph(graph, "receptive_field").receptive_field(
        _node(graph, node), exact=exact, gates=gates
    )


def _graph(graph: Any, func: str) -> LayerGraph:
    """``graph`` itself when it is a :class:`LayerGraph`; else a TypeError saying what to pass."""
    if isinstance(graph, LayerGraph):
        return graph
    from ..spec import ConvSpec

    hint = (
        "; for a single ConvSpec use spec.n_params / spec.macs, or "
        "LayerGraph.sequential(spec.input_shape, [layer])"
        if isinstance(graph, ConvSpec)
        else "; for a model by name use convalgebra.network.zoo.get(name)"
        if isinstance(graph, str)
        else ""
    )
    raise TypeError(
        f"{func}: graph must be a LayerGraph, got {type(graph).__name__} {shown(graph)}{hint}"
    )


def _node(graph: LayerGraph, node: Any) -> str | None:
    if node is not None and not isinstance(node, str):
        raise TypeError(f"node must be a node name (str), got {type(node).__name__} {shown(node)}")
    return node


def unit_receptive_field(
    graph: LayerGraph,
    node: str,
    position: Sequence[int] | None = None,
    *,
    clip: bool = True,
    gates: str = "keep",
) -> UnitField:
    """The exact input box of one unit (see :meth:`LayerGraph.unit_receptive_field`).

    The union over the node's channels and over every path of the network.

    Parameters
    ----------
    graph : LayerGraph
        The network.
    node : str
        The layer.
    position : sequence of int, optional
        The unit's spatial position, 0-based per axis; default the central unit.
    clip : bool, default True
        Clip the box to the input; ``False``: every layer reads as if its input extended
        forever, and the box may reach outside the input.
    gates : {"keep", "ignore"}
        ``"ignore"`` holds gates computed from a globally pooled branch constant.

    Returns
    -------
    UnitField
        ``box``: one inclusive ``(first, last)`` input interval per spatial axis;
        ``centre``: the input position the unit is centred on.

    Examples
    --------
    Two 3x3 "same" convolutions: the corner unit reads 5x5 pixels, three of each five in
    the image:

    >>> from convalgebra.network.layers import Conv
    >>> g = LayerGraph.sequential((1, 8, 8), [Conv(1, 3, padding=1)] * 2)
    >>> unit_receptive_field(g, "conv2", (0, 0)).box
    ((0, 2), (0, 2))
    >>> unit_receptive_field(g, "conv2", (0, 0), clip=False).box
    ((-2, 2), (-2, 2))
    """
    name = _node(graph, node)
    if name is None:
        raise TypeError("unit_receptive_field: node must be a node name (str), got None")
    return _graph(graph, "unit_receptive_field").unit_receptive_field(
        name, position, clip=clip, gates=gates
    )


def param_count(graph: LayerGraph, *, trainable: bool = True) -> int:
    """Learnable parameters of ``graph``, parameters shared by several nodes counted once.

    Parameters
    ----------
    graph : LayerGraph
        The network.
    trainable : bool, default True
        ``False`` counts the buffers instead (e.g. batch-norm running statistics).

    Returns
    -------
    int
        The count.

    Examples
    --------
    A 3x3 convolution to 4 channels (36 weights, 4 biases), then a linear layer from
    4x6x6 features to 10 outputs (1,440 weights, 10 biases):

    >>> from convalgebra.network.layers import Conv, Flatten, Linear
    >>> g = LayerGraph.sequential((1, 8, 8), [Conv(4, 3), Flatten(), Linear(10)])
    >>> param_count(g)
    1490
    """
    return _graph(graph, "param_count").param_count(trainable=trainable)


def buffer_count(graph: LayerGraph) -> int:
    """Non-learnable state (e.g. batch-norm running statistics), shared ones counted once."""
    return _graph(graph, "buffer_count").param_count(trainable=False)


def macs(graph: LayerGraph) -> int:
    """Multiply-accumulates of the convolution and linear layers of ``graph``.

    One forward pass of one example; floating-point operations are twice as many.

    Parameters
    ----------
    graph : LayerGraph
        The network.

    Returns
    -------
    int
        The count.

    Examples
    --------
    A 3x3 convolution to 4 channels of 6x6 (4 x 36 x 9 = 1,296), then a linear layer of
    144 x 10 = 1,440:

    >>> from convalgebra.network.layers import Conv, Flatten, Linear
    >>> g = LayerGraph.sequential((1, 8, 8), [Conv(4, 3), Flatten(), Linear(10)])
    >>> macs(g)
    2736
    """
    return _graph(graph, "macs").macs()


def flops(graph: LayerGraph) -> int:
    """Floating-point operations of the convolution and linear layers: ``2 * macs(graph)``."""
    return 2 * _graph(graph, "flops").macs()
