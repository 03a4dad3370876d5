"""The network taken as linear: the backward pass behind the effective receptive field.

Each layer is linearised with uniform weights (see :mod:`convalgebra.effective`): a
convolution or linear layer averages its inputs, activations and normalisations are the
identity, a max pool averages its window, a multiplicative gate from a globally pooled branch
is held at 1. Every channel then carries the same gradient, so each (node, input port) is one
matrix per spatial axis and a scalar gain: :func:`linear_steps` lists them, and
:func:`input_gradients` contracts them (or, with a model's own weights, goes through each
convolution's matrix-free operator).

Notes
-----
For a layer ``y = A x`` (per axis ``A_a``, a channel gain ``γ``), the backward pass is
``g_x = γ (A_1ᵀ ⊗ ... ⊗ A_nᵀ) g_y``; branches add their gradients.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from .. import budget
from ..budget import DEFAULT_ARRAY_BYTES, require_array
from ..errors import ConvAlgebraError
from .receptive import Broadcast, Local, Resample, Scatter, Window

__all__ = ["LinearStep", "node_steps", "linear_steps", "input_gradients"]

_IDENTITY_KINDS = ("activation", "dropout", "identity", "batch_norm", "layer_norm", "group_norm")


@dataclass(frozen=True)
class LinearStep:
    """One input port of one node, taken as linear with uniform weights.

    Attributes
    ----------
    node, source : str
        The node and the node feeding the port.
    matrices : tuple of ndarray, or None
        ``A_a`` of each spatial axis (``y = A x`` along it, shape ``(n_out, n_in)``);
        None: the identity (the port passes its input through).
    gain : float
        The scalar the channels add (``γ``).
    """

    node: str
    source: str
    matrices: tuple[np.ndarray, ...] | None
    gain: float


def linear_steps(graph: Any, node: str) -> list[LinearStep]:
    """The steps of the backward pass from ``node`` to the graph's inputs, in reverse
    topological order (uniform weights).

    Raises
    ------
    ConvAlgebraError
        An ancestor of ``node`` has no linear form (see :func:`input_gradients`).

    Examples
    --------
    >>> from convalgebra.network.graph import LayerGraph
    >>> from convalgebra.network.layers import Conv
    >>> g = LayerGraph.sequential((1, 4), [Conv(1, 3)])
    >>> [(s.node, s.source, s.gain, s.matrices[0].tolist()) for s in linear_steps(g, "conv1")]
    [('conv1', 'input', 0.3333333333333333, [[1.0, 1.0, 1.0, 0.0], [0.0, 1.0, 1.0, 1.0]])]
    """
    reached, steps = {node}, []
    for v in reversed(graph.nodes):
        if v not in reached or not graph.nx.nodes[v]["inputs"]:
            continue
        for step in node_steps(graph, v):
            steps.append(step)
            reached.add(step.source)
    return steps


def node_steps(graph: Any, node: str) -> list[LinearStep]:
    """The steps of ``node``'s own input ports (uniform weights): one per port the gradient
    flows back through; none for a graph input.

    Raises
    ------
    ConvAlgebraError
        ``node`` has no linear form (a product of two feature maps, an opaque op, a layer
        that does not keep the spatial axes, a concatenation along a spatial axis).
    """
    if not graph.nx.nodes[node]["inputs"]:
        return []
    return [_uniform_step(graph, node, port, src) for port, src in _ports(graph, node)]


def input_gradients(
    graph: Any, node: str, position: tuple[int, ...], own: dict | None
) -> dict[str, np.ndarray]:
    """The gradient of unit ``position`` of ``node`` at each graph input, ``(C, *spatial)``
    (``C = 1`` with uniform weights, ``own=None``: every channel carries the same gradient).

    ``own`` maps parameter names to a model's arrays (see
    :func:`convalgebra.effective.effective_receptive_field`).
    """
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
        if not graph.nx.nodes[v]["inputs"]:
            inputs[v] = g
            continue
        for src, back in _layer_backward(graph, v, g, own):
            grads[src] = grads[src] + back if src in grads else back
    return inputs


def _ports(graph: Any, v: str) -> list[tuple[int, str]]:
    """The input ports of ``v`` its gradient flows back through (a gate's does not)."""
    data = graph.nx.nodes[v]
    kind, srcs = data["layer"].kind, data["inputs"]
    if _passes(graph, v) or kind == "batch_norm":
        return [(0, srcs[0])]
    if kind == "mul":
        gates = graph.gate_ports(v)
        kept = [p for p in range(len(srcs)) if p not in gates]
        if len(kept) != 1:
            raise ConvAlgebraError(
                f"node {v!r} multiplies {len(kept)} feature maps: the "
                "product is not linear, no effective receptive field"
            )
        return [(kept[0], srcs[kept[0]])]
    if kind in _LINEAR_KINDS:
        return list(enumerate(srcs))
    raise ConvAlgebraError(
        f"node {v!r} ({kind}) has no linear form: no effective receptive field through it"
    )


_LINEAR_KINDS = (
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
)


def _passes(graph: Any, v: str) -> bool:
    """The node passes its (first) input's gradient through unchanged."""
    data = graph.nx.nodes[v]
    kind = data["layer"].kind
    return (
        kind == "squeeze_excite" or kind in _IDENTITY_KINDS and _same(graph, v, data["inputs"][0])
    )


def _uniform_step(graph: Any, v: str, port: int, src: str) -> LinearStep:
    if _passes(graph, v):
        return LinearStep(v, src, None, 1.0)
    matrices = _axis_matrices(graph, v, port, None)
    in_shape, out_shape = graph.shape(src), graph.facts(v).shape
    return LinearStep(v, src, tuple(matrices), _uniform_gain(graph, v, in_shape, out_shape))


def _layer_backward(
    graph: Any, v: str, g: np.ndarray, own: dict | None
) -> list[tuple[str, np.ndarray]]:
    if graph.layer(v).kind == "batch_norm" and own is not None:
        return [(graph.nx.nodes[v]["inputs"][0], g * _bn_scale(graph, v, own))]
    if _passes(graph, v):
        return [(graph.nx.nodes[v]["inputs"][0], g)]
    return [(src, _apply(graph, v, port, g, own)) for port, src in _ports(graph, v)]


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
    from ..operators import conv_operator

    spec = graph.facts(v).spec
    w = _param(graph, v, "weight", own, spec.weight_shape)
    if w is None:
        w = budget.full(spec.weight_shape, 1.0 / math.prod(spec.weight_shape[1:]))
        if spec.transposed:  # PyTorch's fan-in of a transposed weight (C_in, C_out/g, *k)
            w[:] = 1.0 / (spec.in_channels / spec.groups * math.prod(spec.kernel_size))
    return conv_operator(spec, w).rmatvec(g.ravel()).reshape(spec.input_shape)


def _axis_matrices(graph: Any, v: str, port: int, own: dict | None) -> list[np.ndarray]:
    """``A_a`` of each spatial axis for input ``port`` of node ``v`` (the model's own
    weight for the last axis of a linear layer when ``own`` gives it)."""
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
    matrices = []
    for a, amap in enumerate(facts.maps[port]):
        matrix = _axis_matrix(data["layer"], amap, a, in_shape[1 + a], out_shape[1 + a])
        if kind == "linear" and own is not None and a == n - 1:
            given = _param(graph, v, "weight", own, (out_shape[-1], in_shape[-1]))
            matrix = matrix if given is None else given
        matrices.append(matrix)
    return matrices


def _apply(graph: Any, v: str, port: int, g: np.ndarray, own: dict | None) -> np.ndarray:
    """``γ (⊗ A_aᵀ) g`` for input ``port`` of node ``v`` (the channel axis first)."""
    data = graph.nx.nodes[v]
    if data["layer"].kind == "conv" and own is not None:
        _axis_matrices(graph, v, port, own)  # the same refusals as without weights
        return _conv_backward(graph, v, g, own)
    for a, matrix in enumerate(_axis_matrices(graph, v, port, own)):
        g = np.moveaxis(np.tensordot(matrix, g, axes=([0], [1 + a])), 0, 1 + a)
    in_shape = graph.shape(data["inputs"][port])
    return _channels(graph, v, port, g, in_shape, data["facts"].shape, own)


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
    layer = graph.layer(v)
    if own is None:
        return g * _uniform_gain(graph, v, in_shape, out_shape)
    if layer.kind == "concat":
        offset = sum(graph.shape(s)[0] for s in graph.nx.nodes[v]["inputs"][:port])
        return g[offset : offset + in_shape[0]]
    if layer.kind in ("add", "mul") and in_shape[0] == 1 < out_shape[0]:
        return g.sum(0, keepdims=True)
    if layer.kind == "mean" and 0 in _dims(layer.dims, len(in_shape)):
        return np.repeat(g / in_shape[0], in_shape[0], axis=0)
    return g


def _uniform_gain(graph: Any, v: str, in_shape: tuple, out_shape: tuple) -> float:
    """The channel gain of a channel-constant gradient (uniform weights)."""
    layer = graph.layer(v)
    gain = _channel_gain(layer, graph.facts(v), in_shape, out_shape)
    if layer.kind in ("add", "mul") and in_shape[0] == 1 < out_shape[0]:
        gain *= out_shape[0]  # one channel broadcast to all: their gradients add
    return gain


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


def _axis_matrix(layer: Any, amap: Any, axis: int, n_in: int, n_out: int) -> np.ndarray:
    """``A[o, i]`` of one spatial axis, for ``y = A x`` along it."""
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
        return _pool_weights(layer, matrix, amap, axis, n_in, n_out)
    if isinstance(amap, Scatter):
        dst = np.arange(n_in)[:, None] * amap.stride + np.asarray(amap.taps)[None, :]
        keep = (dst >= 0) & (dst < n_out)
        matrix = budget.zeros((n_out, n_in))
        np.add.at(
            matrix, (dst[keep], np.broadcast_to(np.arange(n_in)[:, None], dst.shape)[keep]), 1.0
        )
        return matrix
    if isinstance(amap, Window):
        starts, ends = out * n_in // n_out, -((-(out + 1) * n_in) // n_out)
        cols = np.arange(n_in)
        inside = (cols[None, :] >= starts[:, None]) & (cols[None, :] < ends[:, None])
        return inside / (ends - starts)[:, None]
    if isinstance(amap, Resample):
        return _resample_matrix(amap, n_in, n_out)
    if isinstance(amap, Broadcast):
        return budget.ones((n_out, 1))
    if layer.kind == "mean":  # a mean over this axis
        return budget.full((n_out, n_in), 1.0 / n_in)
    if layer.kind == "linear":  # the last axis, weights 1 / in_features
        return budget.full((n_out, n_in), 1.0 / n_in)
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
