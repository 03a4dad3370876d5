"""Where a node is structurally zero: the positions at which a product reads nothing.

A position of a node is *structurally zero* when its value is the constant 0 for every input
and every parameter value: a position of constant padding with value 0, or one computed from
such positions only by layers that map 0 to 0 (convolutions without bias, pooling,
resampling, cropping, ReLU-like activations, sums of zeros). A product ``a * b`` is the
constant 0 wherever one factor is: it depends on no input there, so its field is empty, even
when ``b`` reads the whole input (a squeeze-and-excitation gate). Everywhere else a product
reads what its factors read, as a sum does.

:func:`nonzero_masks` gives, per node and per spatial axis, a boolean mask of the positions
that may be non-zero; a position of the node is non-zero when it is marked along every axis
(the layers act on each axis separately, so the set is a product of per-axis sets). A node
whose layer may add a constant (a bias, a padding value other than 0, a normalisation, an
activation with ``f(0) != 0`` such as the sigmoid) may be non-zero everywhere: its mask is
``None``. The masks never mark a position zero that is not: a layer not known to map 0 to 0
is non-zero everywhere. Channels are not told apart: a position is non-zero when some channel
may be.

Examples
--------
>>> from convalgebra.network.graph import LayerGraph
>>> from convalgebra.network.layers import Pad, Conv
>>> g = LayerGraph.sequential((1, 4), [Pad(((1, 2),)), Conv(1, 3, padding=1, bias=False)])
>>> from convalgebra.network.fields import field_pass
>>> plans, _ = field_pass(g.nodes, g.nx.nodes, 1, (4,))
>>> masks = nonzero_masks(g.nodes, g.nx.nodes, plans)
>>> masks["pad1"][0].astype(int), masks["conv2"][0].astype(int)
(array([0, 1, 1, 1, 1, 0, 0]), array([1, 1, 1, 1, 1, 1, 0]))

Notes
-----
Along one axis, output unit ``o`` of a layer reading its input through axis map ``m`` may be
non-zero when ``m.back({o})`` meets the input's non-zero positions; for several inputs, a
product needs every factor non-zero (the intersection), a sum one term (the union).

A ``mul`` node is taken as a product and an ``add`` node as a sum only when its
``keeps_zero`` is set; the PyTorch importer clears it for every op that may be non-zero
where all its operands are 0 or is not a plain product or sum (``eq``, ``ge``, ``pow``, a
quotient, ``fmod``...), and such a node counts as non-zero everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from .. import budget
from ..taps import map_padded
from .fields import Plan, spatial_sizes
from .layers import Activation, Add, Conv, Layer, Mul, Pad
from .receptive import Broadcast, Global, Local, Scatter

__all__ = ["PRODUCTS", "nonzero_masks", "keeps_zeros"]

#: Layer kinds whose output is the product of their inputs (zero where a factor is zero).
PRODUCTS = frozenset({"mul", "squeeze_excite"})

# layers that map the constant 0 to 0 whatever their parameters (and have no constant term)
_KEEP = frozenset(
    {
        "add",
        "max_pool",
        "avg_pool",
        "adaptive_pool",
        "upsample",
        "crop",
        "slice",
        "select",
        "take",
        "permute",
        "reshape",
        "flatten",
        "identity",
        "dropout",
        "concat",
        *PRODUCTS,
    }
)
_ZERO_AT_ZERO = frozenset(
    {"relu", "relu6", "tanh", "gelu", "silu", "hardswish", "leaky_relu", "elu", "mish", "scale"}
)

Mask = tuple[np.ndarray, ...] | None


def keeps_zeros(layer: Layer) -> bool:
    """Whether ``layer`` maps inputs that are 0 at every position it reads to 0.

    Examples
    --------
    >>> from convalgebra.network.layers import Conv, Activation, Pad
    >>> keeps_zeros(Conv(4, 3, bias=False)), keeps_zeros(Conv(4, 3))
    (True, False)
    >>> keeps_zeros(Activation("relu")), keeps_zeros(Activation("sigmoid"))
    (True, False)
    >>> keeps_zeros(Pad(1)), keeps_zeros(Pad(1, value=0.5)), keeps_zeros(Pad(1, "reflect"))
    (True, False, True)
    """
    if isinstance(layer, Conv):
        return not layer.bias
    if isinstance(layer, Pad):
        return layer.mode != "constant" or layer.value == 0
    if isinstance(layer, Activation):
        return layer.fn in _ZERO_AT_ZERO
    if isinstance(layer, (Add, Mul)):
        return layer.keeps_zero
    return layer.kind in _KEEP


def _axis_forward(amap: Any, mask: np.ndarray | None, n_in: int, n_out: int) -> np.ndarray | None:
    """Output units along one axis that read a non-zero input position (None: all)."""
    if isinstance(amap, (Broadcast, Global)):
        return None if mask is None or mask.any() else budget.zeros(n_out, dtype=bool)
    if isinstance(amap, Local):
        if mask is None and amap.mode not in ("zeros", "constant"):
            return None  # every tap maps inside the input
        budget.require_array("the padded reads of one axis", (n_out, len(amap.taps)))
        read = np.arange(n_out)[:, None] * amap.stride + np.asarray(amap.taps)[None, :]
        mapped = map_padded(read, n_in, {"constant": "zeros"}.get(amap.mode, amap.mode))
        hit = mapped >= 0
        if mask is not None:
            hit &= mask[np.where(hit, mapped, 0)]
        out: np.ndarray = np.any(hit, axis=1)
    elif isinstance(amap, Scatter):  # a transposed convolution may leave outputs unwritten
        budget.require_array("the scattered reads of one axis", (n_out, len(amap.taps)))
        offset = np.arange(n_out)[:, None] - np.asarray(amap.taps)[None, :]
        src = offset // amap.stride
        hit = (offset % amap.stride == 0) & (src >= 0) & (src < n_in)
        if mask is not None:
            hit &= mask[np.where(hit, src, 0)]
        out = hit.any(axis=1)
    elif mask is None:
        return None  # resampling and adaptive windows read at least one position each
    else:  # resampling, adaptive windows: one unit at a time, through the map's own rule
        budget.require_steps("the non-zero units of one axis", n_out, unit="units")
        out = budget.zeros(n_out, dtype=bool)
        for o in range(n_out):
            out[o] = bool(mask[amap.back(np.array([o]), n_in)].any())
    return None if out.all() else out


def _port_mask(
    mask: Mask, port: tuple, in_sizes: tuple[int, ...], out_sizes: tuple[int, ...]
) -> Mask:
    """The output positions that read a non-zero position of one input."""
    axes = [
        _axis_forward(
            Global() if pm is None else pm[1], None if mask is None else mask[a], n_in, n_out
        )
        for a, (pm, n_in, n_out) in enumerate(zip(port, in_sizes, out_sizes))
    ]
    if all(m is None for m in axes):
        return None
    return tuple(budget.ones(n, dtype=bool) if m is None else m for m, n in zip(axes, out_sizes))


def _combine(masks: list[Mask], product: bool) -> Mask:
    """Intersection (a product) or union (a sum) of per-input masks; None is everywhere."""
    known = [m for m in masks if m is not None]
    if not known or (not product and len(known) < len(masks)):
        return None
    if not product:  # an input zero everywhere adds nothing (its other axes do not count)
        known = [m for m in known if all(a.any() for a in m)] or known[:1]
    reduce = np.logical_and.reduce if product else np.logical_or.reduce
    out = tuple(reduce(axis) for axis in zip(*known))
    return None if all(a.all() for a in out) else out


def _node_mask(
    v: str, attrs: Mapping[str, Mapping[str, Any]], plans: Mapping[str, Plan], masks: dict
) -> Mask:
    data = attrs[v]
    layer, srcs = data["layer"], data["inputs"]
    sizes = spatial_sizes(plans[v][0], data["facts"].shape)
    if sizes is None or not srcs or not keeps_zeros(layer):
        return None
    if layer.kind == "squeeze_excite":  # x * gate(x): the gate is never structurally zero
        mask = masks[srcs[0]]
        return (
            mask
            if spatial_sizes(plans[srcs[0]][0], attrs[srcs[0]]["facts"].shape) == sizes
            else None
        )
    per_input: list[Mask] = []
    for src, port in zip(srcs, plans[v][1] or ()):
        in_sizes = spatial_sizes(plans[src][0], attrs[src]["facts"].shape)
        if port is None or in_sizes is None:  # a parameter, or axes merged away: anything
            per_input.append(None)
            continue
        per_input.append(_port_mask(masks[src], port, in_sizes, sizes))
    return _combine(per_input, layer.kind in PRODUCTS)


def nonzero_masks(
    order: Iterable[str], attrs: Mapping[str, Mapping[str, Any]], plans: Mapping[str, Plan]
) -> dict[str, Mask]:
    """Per node, per spatial axis, the positions that may be non-zero (None: every one).

    Parameters
    ----------
    order : iterable of str
        The node names in topological order.
    attrs : mapping
        Node name -> its attributes ``layer``, ``facts`` and ``inputs`` (``LayerGraph.nx.nodes``).
    plans : mapping
        Node -> ``(axes, ports)`` as :func:`~convalgebra.network.fields.field_pass` returns.

    Returns
    -------
    dict
        Node -> one boolean array per spatial axis of the graph input (the node's size along
        it), or None when every position may be non-zero (or some axis is merged away).
    """
    masks: dict[str, Mask] = {}
    for v in order:
        masks[v] = _node_mask(v, attrs, plans, masks)
    return masks
