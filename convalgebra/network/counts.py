"""Parameters, buffers, MACs, operations and memory of a layer graph, from its node records.

A node record (``graph.nx.nodes[node]``) holds the layer's ``facts`` and where its stored
tensors come from: ``tensors`` (``{key: (size, learnable)}``, what an imported module
stores), else ``keys`` (parameter name -> global key, for shared parameters), else nothing
(the node owns ``<node>.<param>``). A key read by several nodes is counted once: the graph
keeps one registry of keyed parameters and one of keyed buffers (key -> size), which
:func:`register_tensors` and :func:`register_keys` fill.

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
from typing import Any, NoReturn

from ..errors import ConvAlgebraError, shown
from .layers import Parameter

__all__ = [
    "positive",
    "checked_tensors",
    "shared_conflict",
    "register_tensors",
    "register_keys",
    "param_keys",
    "node_keys",
    "key_users",
    "total_macs",
    "totals",
]


def positive(value: Any, name: str) -> int:
    """``value`` when it is a positive integer (not a bool), else an error naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConvAlgebraError(f"{name} must be a positive integer, got {shown(value)}")
    return value


def shared_conflict(name: str, key: str, known: int, size: int) -> NoReturn:
    raise ConvAlgebraError(
        f"layer {shown(name)} shares parameter {shown(key)} with {known} entries, but needs {size}"
    )


def checked_tensors(name: str, tensors: Any) -> dict[str, tuple[int, bool]]:
    """``{key: (size, learnable)}`` with non-negative integer sizes, or an error naming it."""
    if type(tensors) is not dict and not isinstance(tensors, Mapping):
        raise ConvAlgebraError(
            f"layer {shown(name)}: 'tensors' must map keys to [size, learnable], "
            f"got {shown(tensors)}"
        )
    out = {}
    for key, value in tensors.items():
        if (  # the common well-formed entry, on exact types
            type(value) is tuple
            and len(value) == 2
            and type(key) is str
            and type(value[0]) is int
            and value[0] >= 0
            and type(value[1]) is bool
        ):
            out[key] = value
            continue
        ok = isinstance(key, str) and isinstance(value, (list, tuple)) and len(value) == 2
        size, learnable = value if ok else (None, None)
        if not (
            ok
            and isinstance(size, int)
            and not isinstance(size, bool)
            and size >= 0
            and isinstance(learnable, bool)
        ):
            raise ConvAlgebraError(
                f"layer {shown(name)}: tensor {shown(key)} must be [size, learnable] "
                f"(a non-negative int and a bool), got {shown(value)}"
            )
        out[key] = (size, learnable)
    return out


def register_tensors(
    name: str,
    tensors: Mapping[str, tuple[int, bool]],
    params: dict[str, int],
    buffers: dict[str, int],
) -> None:
    """Enter the stored tensors node ``name`` reads (``{key: (size, learnable)}``) in the
    registries of parameters and buffers (key -> size); a known key must keep its size."""
    for key, (size, learnable) in tensors.items():
        registry = params if learnable else buffers
        if registry.setdefault(key, size) != size:
            shared_conflict(name, key, registry[key], size)


def register_keys(
    name: str, keys: Mapping[str, str], sizes: Mapping[str, int], registry: dict[str, int]
) -> None:
    """Enter node ``name``'s parameters (name -> size), under their global ``keys``, in
    ``registry`` (key -> size); a known key must keep its size."""
    for p, size in sizes.items():
        key = keys[p]
        known = registry.setdefault(key, size)
        if known != size:
            shared_conflict(name, key, known, size)


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
