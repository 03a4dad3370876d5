"""Effective receptive fields (Luo, Li, Urtasun & Zemel, NeurIPS 2016), exactly.

The theoretical receptive field says which input pixels *can* reach a unit; the effective one
says how much each does: the gradient of the unit with respect to the input, for the network
taken as linear. :func:`effective_receptive_field` computes it exactly by one backward pass
through the graph's own axis maps (:mod:`convalgebra.network.receptive`), with uniform weights:

- a convolution or linear layer has every weight equal to ``1 / fan_in`` and no bias (as
  PyTorch's fan-in: ``C_in / groups`` times the kernel volume), so it averages its inputs;
- activations, dropout and normalisation layers are the identity;
- a max pool averages its window like ``avg_pool(count_include_pad=False)`` (a dilated one:
  the mean of its ``k`` taps, padding counted as zeros); adaptive pools average;
- a multiplicative gate from a globally pooled branch (squeeze-and-excitation) is held at 1.

With these weights every channel of a layer carries the same gradient, so the pass runs on
the spatial axes alone, one small matrix per axis (the layers act on each axis separately):
it costs about what one forward pass of a one-channel image costs. With the model's own
weights (``weights=model.state_dict()``) the pass carries every channel and goes through each
convolution's matrix-free operator transposed. The *effective size* is
the diameter ``2 r`` of the smallest disc around the field's centre of mass holding ``mass``
(95 %) of the absolute gradient.

Notes
-----
For a layer ``y = A x`` (per axis ``A_a``, a channel gain ``γ``), the backward pass is
``g_x = γ (A_1ᵀ ⊗ ... ⊗ A_nᵀ) g_y``; a convolution with uniform weights has
``γ = (C_out / groups) / fan_in`` and ``A_a[o, i]`` = number of taps of unit ``o`` landing on
``i`` (padding modes mapped as PyTorch does); branches add their gradients.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from . import budget
from .budget import DEFAULT_ARRAY_BYTES, require_array
from .display import short_repr, summary_html
from .errors import ConvAlgebraError
from .network.receptive import Broadcast, Local, Resample, Scatter, Window

__all__ = ["EffectiveField", "effective_receptive_field"]

_IDENTITY_KINDS = ("activation", "dropout", "identity", "batch_norm", "layer_norm", "group_norm")


@dataclass(frozen=True)
class EffectiveField:
    """The effective receptive field of one unit (see :func:`effective_receptive_field`).

    Attributes
    ----------
    node, position : the unit (spatial position, 0-based)
    gradient : ndarray
        ``d unit / d input`` for the linearised network, shape of the graph input
        ``(C, *spatial)``; the unit is the sum of the node's channels at ``position``.
    weights : ndarray
        The absolute gradient summed over channels, normalised to sum 1 (spatial shape).
    box : tuple of (first, last) pairs
        The theoretical field of the unit, clipped to the input.
    centre : tuple of float
        Centre of mass of ``weights``.
    radius : float
        Smallest distance from ``centre`` within which the pixels hold ``mass`` of the weight.
    mass : float
    """

    node: str
    position: tuple[int, ...]
    gradient: np.ndarray
    weights: np.ndarray
    box: tuple[tuple[int, int], ...] | None
    centre: tuple[float, ...]
    radius: float
    mass: float

    @property
    def size(self) -> float:
        """Effective size: the diameter ``2 * radius``."""
        return 2 * self.radius

    @property
    def theoretical_size(self) -> tuple[int, ...]:
        """Extent of the theoretical (clipped) box per axis."""
        return tuple(b - a + 1 for a, b in self.box) if self.box else ()

    def __repr__(self) -> str:
        return short_repr("EffectiveField", self.describe(), limit=400)

    def _repr_html_(self) -> str:
        box = "x".join(map(str, self.theoretical_size)) or "none"
        return summary_html(
            f"EffectiveField of unit {self.position} of {self.node!r}",
            {
                "effective size (diameter of the disc holding "
                f"{self.mass:.0%} of the weight)": f"{self.size:.2f} px",
                "centre": ", ".join(f"{c:.2f}" for c in self.centre),
                "theoretical box": f"{box} {self.box}",
                "weights": f"array of shape {self.weights.shape}",
            },
        )

    def _repr_png_(self) -> bytes | None:
        """The picture of :func:`~convalgebra.plot.plot_effective_field` (None without
        matplotlib: the notebook then shows the HTML summary)."""
        try:
            from .plot import plot_effective_field, to_png

            return to_png(plot_effective_field(self), dpi=80)
        except ImportError:  # MissingExtraError, or matplotlib's own modules absent
            return None

    def describe(self) -> str:
        """One line: effective size against the theoretical box."""
        box = "x".join(map(str, self.theoretical_size)) or "none"
        return (
            f"unit {self.position} of {self.node!r}: effective size {self.size:.2f} px "
            f"(radius {self.radius:.2f} around ({', '.join(f'{c:.2f}' for c in self.centre)})"
            f" holds {self.mass:.0%} of the weight); theoretical box {box}"
        )


def effective_receptive_field(
    graph: Any,
    node: str | None = None,
    position: Any = None,
    *,
    weights: str = "uniform",
    mass: float = 0.95,
) -> EffectiveField:
    """The exact effective receptive field of one unit of ``node`` (Luo et al., 2016).

    Parameters
    ----------
    graph : LayerGraph
        The network.
    node : str, optional
        Default: ``graph.default_node()`` (``"features"``, else the last feature map).
    position : sequence of int, optional
        The unit's spatial position (default: the central unit).
    weights : "uniform" or mapping
        ``"uniform"``: every convolution and linear layer averages its inputs (weights
        ``1 / fan_in``). A mapping from parameter names to arrays (a model's
        ``state_dict()``; names as the graph keys them, ``"<node>.weight"`` for a graph
        built by hand) uses the model's own convolution weights through the layers'
        matrix-free operators (:func:`~convalgebra.operators.conv_operator`, its
        ``rmatvec``), its linear weights, and its batch norms as the inference affine maps
        ``γ / sqrt(running_var + eps)``; biases do not change a gradient. Layers it does not
        name keep uniform weights.
    mass : float
        The share of the weight the effective radius must hold (default 0.95).

    Returns
    -------
    EffectiveField
        ``gradient`` (``d unit / d input``), ``weights`` (its absolute value summed over
        channels, normalised to sum 1), ``box`` (the theoretical field, clipped), ``centre``
        (of mass) and ``radius`` (holding ``mass`` of the weight).

    Raises
    ------
    ConvAlgebraError
        An ancestor of ``node`` is not linear once linearised (a product of two feature maps,
        an opaque op, a flatten that is not the identity, a concatenation along a spatial
        axis), a given weight has the wrong shape, or the arguments are out of range.

    Notes
    -----
    Two 3-tap averages give the triangle ``[1, 2, 3, 2, 1] / 9``: the weight concentrates
    at the centre as layers are stacked (a Gaussian in the limit), while the theoretical
    field grows linearly.

    Examples
    --------
    >>> from convalgebra.network.graph import LayerGraph
    >>> from convalgebra.network.layers import Conv
    >>> g = LayerGraph.sequential((1, 9), [Conv(1, 3), Conv(1, 3)])
    >>> f = effective_receptive_field(g, "conv2", (2,))
    >>> (f.weights * 9).tolist()
    [0.0, 0.0, 1.0, 2.0, 3.0, 2.0, 1.0, 0.0, 0.0]
    >>> f.box, f.radius
    (((2, 6),), 2.0)
    """
    own = _own_weights(weights)
    if not 0 < mass <= 1:
        raise ConvAlgebraError(f"mass must be in (0, 1], got {mass!r}")
    if node is None:
        node = graph.default_node()
        if node is None:
            raise ConvAlgebraError(f"{graph!r} has no node with a spatial output")
    node = graph.resolve(node)  # a module path or an alias names its output node
    shape, n = graph.shape(node), graph.spatial_ndim
    if len(shape) != n + 1 or not n:
        raise ConvAlgebraError(f"node {node!r} of shape {shape} has no spatial axes")
    unit = graph.unit_receptive_field(node, position, gates="ignore")
    grads = _backward(graph, node, unit.position, own)
    return _summarise(graph, node, unit, grads, mass)


def _own_weights(weights: Any) -> dict | None:
    if isinstance(weights, str):
        if weights != "uniform":
            raise ConvAlgebraError(
                f"weights must be 'uniform' or a mapping of parameter names "
                f"to arrays (e.g. a state_dict), got {weights!r}"
            )
        return None
    if not hasattr(weights, "items"):
        raise TypeError(
            f"weights must be 'uniform' or a mapping of parameter names to arrays, "
            f"got {type(weights).__name__}"
        )
    return {str(k): v for k, v in weights.items()}


def _backward(
    graph: Any, node: str, position: tuple[int, ...], own: dict | None
) -> dict[str, np.ndarray]:
    """The gradient of every ancestor, ``(C, *spatial)`` (``C = 1`` with uniform weights:
    every channel carries the same gradient), and the graph inputs'."""
    channels = graph.shape(node)[0] if own is not None else 1
    start = budget.zeros((channels, *graph.shape(node)[1:]), what="the unit's gradient")
    index: tuple[Any, ...] = (slice(None), *(int(p) for p in position))
    start[index] = 1.0
    grads: dict[str, np.ndarray] = {node: start}
    inputs: dict[str, np.ndarray] = {}
    for v in reversed(graph.nodes):
        g = grads.pop(v, None)
        if g is None:
            continue
        srcs = graph.nx.nodes[v]["inputs"]
        if not srcs:
            inputs[v] = g
            continue
        for src, back in _layer_backward(graph, v, g, own):
            grads[src] = grads[src] + back if src in grads else back
    return inputs


def _layer_backward(
    graph: Any, v: str, g: np.ndarray, own: dict | None
) -> list[tuple[str, np.ndarray]]:
    data = graph.nx.nodes[v]
    layer, srcs = data["layer"], data["inputs"]
    kind = layer.kind
    if kind == "batch_norm" and own is not None:
        return [(srcs[0], g * _bn_scale(graph, v, own))]
    if kind == "squeeze_excite" or kind in _IDENTITY_KINDS and _same(graph, v, srcs[0]):
        return [(srcs[0], g)]
    if kind == "mul":
        gates = graph.gate_ports(v)
        kept = [p for p in range(len(srcs)) if p not in gates]
        if len(kept) != 1:
            raise ConvAlgebraError(
                f"node {v!r} multiplies {len(kept)} feature maps: the "
                "product is not linear, no effective receptive field"
            )
        return [(srcs[kept[0]], _apply(graph, v, kept[0], g, own))]
    if kind in (
        "add",
        "concat",
        "pad",
        "crop",
        "upsample",
        "adaptive_pool",
        "max_pool",
        "avg_pool",
        "mean",
        "conv",
        "linear",
        "flatten",
    ):
        return [(src, _apply(graph, v, port, g, own)) for port, src in enumerate(srcs)]
    raise ConvAlgebraError(
        f"node {v!r} ({kind}) has no linear form: no effective receptive field through it"
    )


def _same(graph: Any, v: str, src: str) -> bool:
    return graph.shape(v) == graph.shape(src)


def _param(graph: Any, v: str, name: str, own: dict, shape: tuple) -> np.ndarray | None:
    """The array the model gives for parameter ``name`` of node ``v`` (None: not given)."""
    keys = graph.nx.nodes[v].get("keys") or {}
    key = keys.get(name, f"{v}.{name}")
    if key not in own:
        return None
    value = own[key]
    value = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
    if tuple(value.shape) != tuple(shape):
        raise ConvAlgebraError(
            f"weights[{key!r}] has shape {tuple(value.shape)}, node {v!r} needs {tuple(shape)}"
        )
    return value.astype(np.float64)


def _bn_scale(graph: Any, v: str, own: dict) -> np.ndarray:
    """Inference batch norm ``γ / sqrt(running_var + eps)`` per channel (1 where not given)."""
    layer, c = graph.layer(v), graph.shape(v)[0]
    gamma = _param(graph, v, "weight", own, (c,)) if layer.affine else None
    var = _param(graph, v, "running_var", own, (c,)) if layer.track_running_stats else None
    scale = budget.ones(c) if gamma is None else gamma
    if var is not None:
        scale = scale / np.sqrt(var + layer.eps)
    return scale.reshape((c,) + (1,) * (len(graph.shape(v)) - 1))


def _conv_backward(graph: Any, v: str, g: np.ndarray, own: dict) -> np.ndarray:
    """``M(θ)ᵀ g`` through the layer's matrix-free operator (uniform θ when not given)."""
    from .operators import conv_operator

    spec = graph.facts(v).spec
    w = _param(graph, v, "weight", own, spec.weight_shape)
    if w is None:
        w = budget.full(spec.weight_shape, 1.0 / math.prod(spec.weight_shape[1:]))
        if spec.transposed:  # PyTorch's fan-in of a transposed weight (C_in, C_out/g, *k)
            w[:] = 1.0 / (spec.in_channels / spec.groups * math.prod(spec.kernel_size))
    return conv_operator(spec, w).rmatvec(g.ravel()).reshape(spec.input_shape)


def _apply(graph: Any, v: str, port: int, g: np.ndarray, own: dict | None) -> np.ndarray:
    """``γ (⊗ A_aᵀ) g`` for input ``port`` of node ``v`` (the channel axis first)."""
    data = graph.nx.nodes[v]
    facts, src = data["facts"], data["inputs"][port]
    in_shape, out_shape = graph.shape(src), facts.shape
    n = graph.spatial_ndim
    kind = data["layer"].kind
    if len(in_shape) != n + 1 or len(out_shape) != n + 1 or facts.maps is None:
        raise ConvAlgebraError(
            f"node {v!r} ({kind}) does not keep the spatial axes of "
            f"{src!r}: no effective receptive field through it"
        )
    if kind == "concat" and data["layer"].dim % len(out_shape) != 0:
        raise ConvAlgebraError(
            f"node {v!r} concatenates along a spatial axis: no effective receptive field through it"
        )
    if kind == "conv" and own is not None:
        return _conv_backward(graph, v, g, own)
    gain = 1.0
    for a, amap in enumerate(facts.maps[port]):
        matrix, axis_gain = _axis_matrix(data["layer"], amap, a, in_shape[1 + a], out_shape[1 + a])
        if kind == "linear" and own is not None and a == n - 1:
            given = _param(graph, v, "weight", own, (out_shape[-1], in_shape[-1]))
            matrix = matrix if given is None else given
        g = np.moveaxis(np.tensordot(matrix, g, axes=([0], [1 + a])), 0, 1 + a)
        gain *= axis_gain
    return _channels(graph, v, port, g * gain, in_shape, out_shape, own)


def _channels(
    graph: Any,
    v: str,
    port: int,
    g: np.ndarray,
    in_shape: tuple,
    out_shape: tuple,
    own: dict | None,
) -> np.ndarray:
    """The channel step: a gain for the channel-constant gradient, or the routing of the
    channels themselves (concatenation, broadcast, mean over channels)."""
    layer, facts = graph.layer(v), graph.facts(v)
    if own is None:
        gain = _channel_gain(layer, facts, in_shape, out_shape)
        if layer.kind in ("add", "mul") and in_shape[0] == 1 < out_shape[0]:
            gain *= out_shape[0]  # one channel broadcast to all: their gradients add
        return g * gain
    if layer.kind == "concat":
        offset = sum(graph.shape(s)[0] for s in graph.nx.nodes[v]["inputs"][:port])
        return g[offset : offset + in_shape[0]]
    if layer.kind in ("add", "mul") and in_shape[0] == 1 < out_shape[0]:
        return g.sum(0, keepdims=True)
    if layer.kind == "mean" and 0 in _dims(layer.dims, len(in_shape)):
        return np.repeat(g / in_shape[0], in_shape[0], axis=0)
    return g


def _channel_gain(layer: Any, facts: Any, in_shape: tuple, out_shape: tuple) -> float:
    if layer.kind == "conv":  # (C_out / groups) outputs read each input, each with 1/fan_in
        spec = facts.spec
        return (spec.out_channels / spec.groups) / (
            spec.in_channels / spec.groups * math.prod(spec.kernel_size)
        )
    if layer.kind == "mean" and 0 in _dims(layer.dims, len(in_shape)):
        return 1 / in_shape[0]
    return 1.0


def _dims(dims: Any, rank: int) -> set[int]:
    return {d % rank for d in ((dims,) if isinstance(dims, int) else dims)}


def _axis_matrix(
    layer: Any, amap: Any, axis: int, n_in: int, n_out: int
) -> tuple[np.ndarray, float]:
    """``A[o, i]`` of one spatial axis (and a scalar gain), for ``y = A x`` along it."""
    require_array(  # the matrix and a temporary as large
        f"the axis-{axis} matrix of the effective receptive field ({n_out:,} x {n_in:,}, dense, "
        "with a temporary)",
        2 * n_out * n_in,
        8,
        DEFAULT_ARRAY_BYTES,
        "use a smaller input (a unit's field depends on the layers, not on the input size)",
    )
    out = np.arange(n_out)
    if isinstance(amap, Local):
        src = out[:, None] * amap.stride + np.asarray(amap.taps)[None, :]
        mapped = _pad_index(src, n_in, amap.mode)
        keep = mapped >= 0
        matrix = budget.zeros((n_out, n_in))
        np.add.at(matrix, (np.broadcast_to(out[:, None], src.shape)[keep], mapped[keep]), 1.0)
        return _pool_weights(layer, matrix, amap, axis, n_in, n_out), 1.0
    if isinstance(amap, Scatter):
        dst = np.arange(n_in)[:, None] * amap.stride + np.asarray(amap.taps)[None, :]
        keep = (dst >= 0) & (dst < n_out)
        matrix = budget.zeros((n_out, n_in))
        np.add.at(
            matrix, (dst[keep], np.broadcast_to(np.arange(n_in)[:, None], dst.shape)[keep]), 1.0
        )
        return matrix, 1.0
    if isinstance(amap, Window):
        starts, ends = out * n_in // n_out, -((-(out + 1) * n_in) // n_out)
        cols = np.arange(n_in)
        inside = (cols[None, :] >= starts[:, None]) & (cols[None, :] < ends[:, None])
        return inside / (ends - starts)[:, None], 1.0
    if isinstance(amap, Resample):
        return _resample_matrix(amap, n_in, n_out), 1.0
    if isinstance(amap, Broadcast):
        return budget.ones((n_out, 1)), 1.0
    if layer.kind == "mean":  # a mean over this axis
        return budget.full((n_out, n_in), 1.0 / n_in), 1.0
    if layer.kind == "linear":  # the last axis, weights 1 / in_features
        return budget.full((n_out, n_in), 1.0 / n_in), 1.0
    raise ConvAlgebraError(
        f"{layer.kind} mixes spatial axis {axis} in a way the effective "
        "receptive field does not model"
    )


def _pad_index(index: np.ndarray, n: int, mode: str) -> np.ndarray:
    """Input position read at ``index`` under PyTorch's padding ``mode`` (-1: a zero)."""
    if mode == "circular":
        return index % n
    if mode == "replicate":
        return np.clip(index, 0, n - 1)
    if mode == "reflect":
        period = 2 * (n - 1) if n > 1 else 1
        folded = np.abs(index) % period
        return np.where(folded >= n, period - folded, folded)
    return np.where((index >= 0) & (index < n), index, -1)


def _pool_weights(
    layer: Any, matrix: np.ndarray, amap: Local, axis: int, n_in: int, n_out: int
) -> np.ndarray:
    """Row weights of a pooling window along one axis (a convolution keeps its counts)."""
    if layer is None or layer.kind not in ("max_pool", "avg_pool"):
        return matrix
    k = len(amap.taps)
    dilation = (layer.dilation,) if isinstance(layer.dilation, int) else layer.dilation
    if layer.kind == "max_pool" and any(d != 1 for d in dilation):
        return matrix / k  # dilated: the mean of the k taps, padding counted as zeros
    pad = -amap.taps[0]
    start = np.arange(n_out) * amap.stride - pad
    end = np.minimum(start + k, n_in + pad)
    if layer.kind == "avg_pool" and layer.count_include_pad:
        count = end - start
    else:
        count = np.minimum(end, n_in) - np.maximum(start, 0)
    return matrix / count[:, None]


def _resample_matrix(amap: Resample, n_in: int, n_out: int) -> np.ndarray:
    """PyTorch's nearest or linear interpolation along one axis, as a matrix."""
    out = np.arange(n_out)
    matrix = budget.zeros((n_out, n_in))
    ratio = Fraction(amap.ratio)
    if not amap.linear:
        src = np.floor(out.astype(np.float32) * np.float32(float(ratio))).astype(np.int64)
        matrix[out, np.minimum(src, n_in - 1)] = 1.0
        return matrix
    if amap.align_corners:
        src = out * float(ratio)
    else:
        src = np.maximum((out + 0.5) * float(ratio) - 0.5, 0.0)
    low = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    high = np.minimum(low + 1, n_in - 1)
    frac = src - low
    np.add.at(matrix, (out, low), 1.0 - frac)
    np.add.at(matrix, (out, high), frac)
    return matrix


def _summarise(graph: Any, node: str, unit: Any, grads: dict, mass: float) -> EffectiveField:
    name = graph.inputs[0]
    shape = graph.shape(name)
    gradient = np.broadcast_to(grads.get(name, budget.zeros((1, *shape[1:]))), shape).copy()
    weights = np.abs(gradient).sum(0)
    total = weights.sum()
    if total == 0:
        return EffectiveField(
            node, unit.position, gradient, weights, unit.box, (math.nan,) * weights.ndim, 0.0, mass
        )
    weights = weights / total
    grid = np.indices(weights.shape).reshape(weights.ndim, -1).astype(float)
    flat = weights.ravel()
    centre = grid @ flat
    distance = np.sqrt(((grid - centre[:, None]) ** 2).sum(0))
    order = np.argsort(distance, kind="stable")
    held = np.cumsum(flat[order])
    radius = float(distance[order][np.searchsorted(held, mass - 1e-9)])  # float sums
    return EffectiveField(
        node,
        unit.position,
        gradient,
        weights,
        unit.box,
        tuple(float(c) for c in centre),
        radius,
        mass,
    )
