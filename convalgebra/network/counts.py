"""Parameters, buffers, MACs, operations and memory of a layer graph, from its node records.

A node record (``graph.nx.nodes[node]``) holds the layer's ``facts`` and where its stored
tensors come from: ``tensors`` (``{key: (size, learnable)}``, what an imported module
stores), else ``keys`` (parameter name -> global key, for shared parameters), else nothing
(the node owns ``<node>.<param>``). A key read by several nodes is counted once.

Examples
--------
>>> from convalgebra.network.graph import LayerGraph
>>> from convalgebra.network.layers import Conv
>>> g = LayerGraph()
>>> g.add_input("x", (3, 8, 8))
'x'
>>> g.add("a", Conv(4, 3), "x", share="conv")
'a'
>>> g.add("b", Conv(4, 3), "x", share="conv")
'b'
>>> param_keys("b", g.nx.nodes["b"])
{'conv.weight': 108, 'conv.bias': 4}
>>> key_users(g.nx.nodes[n] for n in g.nodes)["conv.weight"]
2
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..errors import ConvAlgebraError, shown
from .layers import Parameter

__all__ = ["positive", "param_keys", "node_keys", "key_users", "total_macs", "totals"]


def positive(value: Any, name: str) -> int:
    """``value`` when it is a positive integer (not a bool), else an error naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConvAlgebraError(f"{name} must be a positive integer, got {shown(value)}")
    return value


def param_keys(node: str, data: Mapping[str, Any], buffers: bool = False) -> dict[str, int]:
    """Global key -> size of the parameters (or ``buffers``) node ``node`` reads."""
    if data["tensors"] is not None:
        return {k: size for k, (size, t) in data["tensors"].items() if t is not buffers}
    sizes = data["facts"].buffers if buffers else data["facts"].params
    keys = data["keys"]
    if keys is None:
        return {f"{node}.{p}": size for p, size in sizes.items()}
    return {keys[p]: size for p, size in sizes.items()}


def node_keys(data: Mapping[str, Any]) -> set[str]:
    """The explicit keys of the parameters and buffers a node reads."""
    if data["tensors"] is not None:
        return set(data["tensors"])
    return set((data["keys"] or {}).values())


def key_users(records: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """How many nodes read each explicitly keyed parameter or buffer (sharing > 1)."""
    users: dict[str, int] = {}
    for data in records:
        for key in node_keys(data):
            users[key] = users.get(key, 0) + 1
    return users


def total_macs(order: Iterable[str], attrs: Mapping[str, Mapping[str, Any]]) -> int:
    """Multiply-accumulates of the nodes ``order`` (one forward pass of one example)."""
    return sum(attrs[n]["facts"].macs for n in order)


def totals(
    order: Sequence[str],
    attrs: Mapping[str, Mapping[str, Any]],
    inputs: Iterable[str],
    counts: tuple[int, int, int],
    *,
    dtype_bytes: int,
    batch: int,
) -> dict[str, int]:
    """The totals of :meth:`~convalgebra.network.graph.LayerGraph.summary`.

    ``counts`` holds the graph's parameters, buffers (shared ones counted once) and unused
    parameters; ``batch`` must be a positive integer (:func:`positive`).

    Notes
    -----
    ``forward_backward_bytes`` is ``2 * batch * dtype_bytes * sum(prod(shape))`` over the
    nodes reading some parameter not read by an earlier node (torchinfo's rule).
    """
    params, buffers, unused = counts
    macs = total_macs(order, attrs) * batch
    elements = batch * sum(
        math.prod(attrs[n]["facts"].shape)
        for n in order
        if not isinstance(attrs[n]["layer"], Parameter)
    )  # activations
    trained, seen = 0, set[str]()
    for node in order:  # torchinfo: output x 2 for the layers with parameters
        keys = set(param_keys(node, attrs[node]))
        if keys and not keys <= seen:
            trained += math.prod(attrs[node]["facts"].shape)
        seen |= keys
    input_elements = sum(math.prod(attrs[i]["facts"].shape) for i in inputs)
    return {
        "nodes": len(order),
        "params": params,
        "buffers": buffers,
        "macs": macs,
        "flops": 2 * macs,
        "other_ops": sum(attrs[n]["facts"].ops for n in order) * batch,
        "batch": batch,
        "activations": elements,
        "activation_bytes": elements * dtype_bytes,
        "forward_backward_bytes": 2 * trained * batch * dtype_bytes,
        "input_bytes": input_elements * batch * dtype_bytes,
        "param_bytes": (params + buffers) * dtype_bytes,
        "unused_params": unused,
    }
