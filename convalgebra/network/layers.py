"""The layer kinds a :class:`~convalgebra.network.graph.LayerGraph` holds.

A layer is a frozen dataclass holding its configuration (never the input shape: the graph
supplies it). :meth:`Layer.facts` turns the shapes of its inputs into everything the graph
reports: the output shape, the parameters and buffers by name, multiply-accumulates, other
elementwise work, and the per-axis maps that receptive fields are computed from. Shapes are
channels first without a batch axis, as in :class:`~convalgebra.spec.ConvSpec`.

Examples
--------
>>> f = Conv(16, 3, stride=2, padding=1).facts([(3, 32, 32)])
>>> f.shape, f.params, f.macs
((16, 16, 16), {'weight': 432, 'bias': 16}, 110592)
>>> MaxPool(3, 2, ceil_mode=True).facts([(8, 10, 10)]).shape
(8, 5, 5)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from fractions import Fraction
from typing import Any, ClassVar

from ..errors import ConvAlgebraError, shown
from ..spec import ConvSpec, normalize_tuple, pool_output_size, pool_stride
from ..taps import tap_offsets
from .receptive import IDENTITY, Broadcast, Global, Local, Resample, Scatter, Window

__all__ = [
    "Facts",
    "tf_same_padding",
    "Layer",
    "Input",
    "Conv",
    "MaxPool",
    "AvgPool",
    "AdaptivePool",
    "Linear",
    "Flatten",
    "BatchNorm",
    "LayerNorm",
    "GroupNorm",
    "Activation",
    "Dropout",
    "Upsample",
    "Pad",
    "Crop",
    "Add",
    "Mul",
    "Concat",
    "SqueezeExcite",
    "Mean",
    "Identity",
    "Opaque",
    "Reshape",
    "Permute",
    "Slice",
    "Select",
    "Take",
    "Einsum",
    "Attention",
    "Parameter",
    "KINDS",
    "layer_from_dict",
]

Shape = tuple[int, ...]


@dataclass(slots=True)
class Facts:
    """What a layer does to given input shapes.

    ``maps`` holds, per input port, one axis map per output axis after the first (the
    spatial axes of a ``(C, *spatial)`` tensor, see :mod:`convalgebra.network.receptive`); ``None``
    means global reach (every output reads everything). ``lead`` holds, per port, the map of
    output axis 0 (``None``: axis 0 is mixed, as channels are). ``moves`` holds, per port,
    the input axis each output axis carries (``None`` entries: a new or mixed axis); when
    ``moves`` is ``None`` the axes are aligned on the right, as in broadcasting. A graph
    follows a spatial axis through ``moves`` wherever it sits (channels-last layouts).
    """

    shape: Shape
    params: dict[str, int] = field(default_factory=dict)
    buffers: dict[str, int] = field(default_factory=dict)
    macs: int = 0
    ops: int = 0
    maps: list | None = None
    spec: ConvSpec | None = None
    lead: list | None = None
    moves: list | None = None


def _numel(shape: Shape) -> int:
    return math.prod(shape)


def _need_spatial(shape: Shape, what: str) -> int:
    if len(shape) < 2:
        raise ConvAlgebraError(f"{what} needs a (C, *spatial) input, got shape {shape}")
    return len(shape) - 1


def _identity_maps(shape: Shape) -> list:
    return [(IDENTITY,) * (len(shape) - 1)]


def _pointwise(
    shape: Shape, out: Shape | None = None, moves: list | None = None, ops: int = 0, **kw: Any
) -> Facts:
    """Facts of a layer that keeps every position of every axis (reshapes, elementwise)."""
    out = shape if out is None else out
    return Facts(
        out, maps=[(IDENTITY,) * (len(out) - 1)], lead=[IDENTITY], moves=moves, ops=ops, **kw
    )


@dataclass(frozen=True)
class Layer:
    """Base class: one node's computation. Subclasses set ``kind`` and :meth:`facts`."""

    kind: ClassVar[str] = "layer"
    arity: ClassVar[tuple[int, int | None]] = (1, 1)  # (min, max) number of inputs

    def facts(self, inputs: list[Shape]) -> Facts:  # pragma: no cover - abstract
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """The non-default fields, for declarative specs and display."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value != f.default:
                out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def describe(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{self.kind}({args})"


@dataclass(frozen=True)
class Input(Layer):
    """A graph input of shape ``(C, *spatial)`` (or ``(features,)``)."""

    shape: tuple = ()
    kind: ClassVar[str] = "input"
    arity: ClassVar = (0, 0)

    def facts(self, inputs: list[Shape]) -> Facts:
        shape = tuple(self.shape)
        if not shape or not all(isinstance(v, int) and v >= 1 for v in shape):
            raise ConvAlgebraError(
                f"input shape must be positive integers, got {shown(self.shape)}"
            )
        return Facts(shape)


@dataclass(frozen=True)
class Conv(Layer):
    """Convolution or transposed convolution of any dimension (:class:`ConvSpec` semantics)."""

    out_channels: int
    kernel_size: Any
    stride: Any = 1
    padding: Any = 0
    dilation: Any = 1
    groups: int = 1
    bias: bool = True
    padding_mode: str = "zeros"
    transposed: bool = False
    output_padding: Any = 0
    kind: ClassVar[str] = "conv"

    @classmethod
    def from_spec(cls, spec: ConvSpec, *, field_only: bool = False) -> Conv:
        """The layer of a :class:`ConvSpec` (``flip`` changes none of its facts).

        A tiled or channel-table spec has other parameter counts than any ``Conv``: it is
        refused unless ``field_only`` (shapes and receptive fields are the same).

        Examples
        --------
        >>> spec = ConvSpec((3, 8, 8), 4, 3, stride=2, padding=1, bias=False)
        >>> Conv.from_spec(spec).facts([spec.input_shape]).shape == spec.output_shape
        True
        """
        if not field_only and (spec.tile is not None or spec.channel_table is not None):
            raise ConvAlgebraError(
                f"a Conv layer has no tile or channel table: "
                f"{spec.describe()} (pass field_only=True for its shapes "
                "and receptive field only)"
            )
        return cls(
            spec.out_channels,
            spec.kernel_size,
            spec.stride,
            spec.padding,
            spec.dilation,
            spec.groups,
            spec.bias,
            spec.padding_mode,
            spec.transposed,
            spec.output_padding,
        )

    def facts(self, inputs: list[Shape]) -> Facts:
        (shape,) = inputs
        _need_spatial(shape, "conv")
        padding = self.padding
        if _is_tf_same(padding):
            if self.transposed:
                raise ConvAlgebraError(
                    "padding='tf_same' applies to convolutions and pools, not to a "
                    "transposed convolution: give its padding explicitly"
                )
            padding = tf_same_padding(shape[1:], self.kernel_size, self.stride, self.dilation)
        spec = ConvSpec(
            shape,
            self.out_channels,
            self.kernel_size,
            self.stride,
            padding,
            self.dilation,
            self.groups,
            self.padding_mode,
            self.bias,
            self.transposed,
            self.output_padding,
        )
        params = {"weight": spec.n_weights}
        if spec.bias:
            params["bias"] = spec.out_channels
        maps = []
        for (before, _), k, d, s in zip(spec.padding, spec.kernel_size, spec.dilation, spec.stride):
            taps = tap_offsets(k, d, before)
            maps.append(Scatter(s, taps) if spec.transposed else Local(s, taps, spec.padding_mode))
        return Facts(spec.output_shape, params, macs=spec.macs, maps=[tuple(maps)], spec=spec)


@dataclass(frozen=True)
class _Pool(Layer):
    kernel_size: Any = 2
    stride: Any = None
    padding: Any = 0
    dilation: Any = 1
    ceil_mode: bool = False

    def facts(self, inputs: list[Shape]) -> Facts:
        (shape,) = inputs
        n = _need_spatial(shape, self.kind)
        k = normalize_tuple(self.kernel_size, n, "kernel_size")
        s = pool_stride(k, self.stride)
        d = normalize_tuple(self.dilation, n, "dilation")
        if _is_tf_same(self.padding):
            pairs = tf_same_padding(shape[1:], k, s, d)
            p = tuple(a for a, _ in pairs)
            sizes = tuple(-(-size // si) for size, si in zip(shape[1:], s))
        else:
            p = normalize_tuple(self.padding, n, "padding", minimum=0)
            if any(2 * pi > ki for pi, ki in zip(p, k)):
                raise ConvAlgebraError(f"padding={p} must be at most half of kernel_size={k}")
            sizes = tuple(map(pool_output_size, shape[1:], k, s, p, d, (self.ceil_mode,) * n))
        if min(sizes) < 1:
            raise ConvAlgebraError(
                f"output size {sizes} is not positive: input {shape[1:]} is smaller than "
                f"kernel_size={k} (dilation={d}, padding={p})"
            )
        out = (shape[0], *sizes)
        maps = tuple(Local(si, tap_offsets(ki, di, pi)) for ki, si, pi, di in zip(k, s, p, d))
        return Facts(out, ops=_numel(out) * math.prod(k), maps=[maps])


def _is_tf_same(padding: Any) -> bool:
    return isinstance(padding, str) and padding.lower() == "tf_same"


def tf_same_padding(sizes: Shape, kernel_size: Any, stride: Any, dilation: Any = 1) -> tuple:
    """TensorFlow's ``padding="SAME"`` as ``(before, after)`` pairs, one per spatial axis.

    Parameters
    ----------
    sizes : tuple of int
        The input's spatial sizes (the padding depends on them).
    kernel_size, stride, dilation : int or tuple of int

    Returns
    -------
    tuple of (int, int)

    Notes
    -----
    The output has ``ceil(n / s)`` units; the padding is what that needs,
    ``total = max((ceil(n / s) - 1) s + d (k - 1) + 1 - n, 0)``, with ``total // 2`` before
    and the odd unit after (TensorFlow's rule; PyTorch's ``"same"`` takes no stride).

    Examples
    --------
    >>> tf_same_padding((224, 224), 3, 2)
    ((0, 1), (0, 1))
    >>> tf_same_padding((7,), 3, 2), tf_same_padding((8,), 5, 1, 2)
    (((1, 1),), ((4, 4),))
    """
    n = len(sizes)
    k = normalize_tuple(kernel_size, n, "kernel_size")
    s = normalize_tuple(stride if stride is not None else k, n, "stride")
    d = normalize_tuple(dilation, n, "dilation")
    pairs = []
    for size, ki, si, di in zip(sizes, k, s, d):
        total = max((-(-size // si) - 1) * si + di * (ki - 1) + 1 - size, 0)
        pairs.append((total // 2, total - total // 2))
    return tuple(pairs)


@dataclass(frozen=True)
class MaxPool(_Pool):
    """Max pooling (``ceil_mode`` and dilation as PyTorch)."""

    kind: ClassVar[str] = "max_pool"


@dataclass(frozen=True)
class AvgPool(_Pool):
    """Average pooling (``ceil_mode`` as PyTorch; ``count_include_pad`` does not change shapes)."""

    count_include_pad: bool = True
    kind: ClassVar[str] = "avg_pool"

    def facts(self, inputs: list[Shape]) -> Facts:
        if self.dilation != 1:
            raise ConvAlgebraError(f"avg_pool has no dilation, got dilation={shown(self.dilation)}")
        return _Pool.facts(self, inputs)


@dataclass(frozen=True)
class AdaptivePool(Layer):
    """Adaptive average or max pooling to ``output_size`` (1 = global pooling)."""

    output_size: Any = 1
    op: str = "avg"
    kind: ClassVar[str] = "adaptive_pool"

    def facts(self, inputs: list[Shape]) -> Facts:
        (shape,) = inputs
        n = _need_spatial(shape, "adaptive_pool")
        if self.op not in ("avg", "max"):
            raise ConvAlgebraError(f"op must be 'avg' or 'max', got {shown(self.op)}")
        size = self.output_size
        if isinstance(size, (tuple, list)):  # None keeps the input size, as in PyTorch
            size = tuple(shape[1 + i] if v is None else v for i, v in enumerate(size))
        sizes = normalize_tuple(size, n, "output_size")
        maps = tuple(Window(a, b) for a, b in zip(shape[1:], sizes))
        out = (shape[0], *sizes)
        widest = math.prod(m.widest() for m in maps)
        return Facts(out, ops=_numel(out) * widest, maps=[maps])


@dataclass(frozen=True)
class Linear(Layer):
    """Fully connected layer on the last axis (PyTorch's ``nn.Linear``)."""

    out_features: int
    bias: bool = True
    kind: ClassVar[str] = "linear"

    def facts(self, inputs: list[Shape]) -> Facts:
        (shape,) = inputs
        fan_in = shape[-1]
        params = {"weight": fan_in * self.out_features}
        if self.bias:
            params["bias"] = self.out_features
        out = (*shape[:-1], self.out_features)
        maps = _norm_maps(shape, len(shape) - 1) if len(shape) > 1 else None  # mixes the last axis
        return Facts(
            out,
            params,
            macs=_numel(shape) * self.out_features,
            maps=maps,
            lead=[IDENTITY] if len(shape) > 1 else None,
        )


@dataclass(frozen=True)
class Flatten(Layer):
    """Flatten axes ``start_dim..end_dim`` (of the unbatched shape; default: all)."""

    start_dim: int = 0
    end_dim: int = -1
    kind: ClassVar[str] = "flatten"

    def facts(self, inputs: list[Shape]) -> Facts:
        (shape,) = inputs
        a, b = self.start_dim % len(shape), self.end_dim % len(shape)
        if a > b:
            raise ConvAlgebraError(f"start_dim={self.start_dim} is after end_dim={self.end_dim}")
        out = (*shape[:a], _numel(shape[a : b + 1]), *shape[b + 1 :])
        return _reshape_facts(shape, out)


@dataclass(frozen=True)
class BatchNorm(Layer):
    """Batch normalisation (inference: a per-channel affine map, local)."""

    affine: bool = True
    track_running_stats: bool = True
    eps: float = 1e-5
    count_batches: bool = True
    kind: ClassVar[str] = "batch_norm"

    def facts(self, inputs: list[Shape]) -> Facts:
        (shape,) = inputs
        c = shape[0]
        params = {"weight": c, "bias": c} if self.affine else {}
        buffers = {"running_mean": c, "running_var": c} if self.track_running_stats else {}
        if self.track_running_stats and self.count_batches:
            buffers["num_batches_tracked"] = 1
        maps = _identity_maps(shape) if len(shape) > 1 else [()]
        return Facts(shape, params, buffers, ops=2 * _numel(shape), maps=maps, lead=[IDENTITY])


def _norm_maps(shape: Shape, first_mixed: int) -> list:
    """Normalisation statistics over axes ``first_mixed..``: global reach along those."""
    return [tuple(Global() if 1 + a >= first_mixed else IDENTITY for a in range(len(shape) - 1))]


@dataclass(frozen=True)
class LayerNorm(Layer):
    """Layer normalisation over the trailing ``normalized_shape`` axes (global along them)."""

    normalized_shape: Any = None
    elementwise_affine: bool = True
    bias: bool = True
    kind: ClassVar[str] = "layer_norm"

    def facts(self, inputs: list[Shape]) -> Facts:
        (shape,) = inputs
        norm = self.normalized_shape
        norm = shape[-1:] if norm is None else ((norm,) if isinstance(norm, int) else tuple(norm))
        if tuple(shape[len(shape) - len(norm) :]) != norm:
            raise ConvAlgebraError(
                f"normalized_shape={norm} does not match the trailing axes of input {shape}"
            )
        count = _numel(norm)
        params = {"weight": count} if self.elementwise_affine else {}
        if self.elementwise_affine and self.bias:
            params["bias"] = count
        return Facts(
            shape,
            params,
            ops=4 * _numel(shape),
            maps=_norm_maps(shape, len(shape) - len(norm)),
            lead=[IDENTITY] if len(norm) < len(shape) else None,
        )


@dataclass(frozen=True)
class GroupNorm(Layer):
    """Group normalisation: statistics over channels of a group and all positions (global)."""

    num_groups: int = 1
    affine: bool = True
    kind: ClassVar[str] = "group_norm"

    def facts(self, inputs: list[Shape]) -> Facts:
        (shape,) = inputs
        if shape[0] % self.num_groups:
            raise ConvAlgebraError(
                f"num_groups={self.num_groups} does not divide channels={shape[0]}"
            )
        params = {"weight": shape[0], "bias": shape[0]} if self.affine else {}
        return Facts(shape, params, ops=4 * _numel(shape), maps=_norm_maps(shape, 1))


ACTIVATIONS = (
    "relu",
    "relu6",
    "sigmoid",
    "tanh",
    "gelu",
    "silu",
    "hardswish",
    "hardsigmoid",
    "leaky_relu",
    "elu",
    "softplus",
    "mish",
    "softmax",
    "log_softmax",
    "scale",
    "pointwise",
)


@dataclass(frozen=True)
class Activation(Layer):
    """An elementwise function (``softmax``/``log_softmax`` along ``dim``)."""

    fn: str = "relu"
    dim: int | None = None
    kind: ClassVar[str] = "activation"

    def facts(self, inputs: list[Shape]) -> Facts:
        (shape,) = inputs
        if self.fn not in ACTIVATIONS:
            raise ConvAlgebraError(f"fn must be one of {ACTIVATIONS}, got {shown(self.fn)}")
        maps, lead = _identity_maps(shape), [IDENTITY]  # type: tuple[list, list[Any]]
        if self.fn in ("softmax", "log_softmax") and self.dim is not None:
            axis = self.dim % len(shape)
            maps = [tuple(Global() if 1 + a == axis else IDENTITY for a in range(len(shape) - 1))]
            lead = [Global() if axis == 0 else IDENTITY]
        return Facts(shape, ops=_numel(shape), maps=maps, lead=lead)

    def describe(self) -> str:
        return self.fn


@dataclass(frozen=True)
class Dropout(Layer):
    """Dropout (the identity at inference)."""

    p: float = 0.5
    kind: ClassVar[str] = "dropout"

    def facts(self, inputs: list[Shape]) -> Facts:
        return _pointwise(inputs[0])


@dataclass(frozen=True)
class Identity(Layer):
    """The identity (a named point in the graph)."""

    kind: ClassVar[str] = "identity"

    def facts(self, inputs: list[Shape]) -> Facts:
        return _pointwise(inputs[0])


def _fraction(value: Any, name: str) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, (int, float, Fraction)) or value <= 0:
        raise ConvAlgebraError(f"{name} must be a positive number, got {shown(value)}")
    return Fraction(value)


@dataclass(frozen=True)
class Upsample(Layer):
    """Nearest or (bi/tri)linear upsampling by ``scale_factor`` or to ``size`` (PyTorch rules)."""

    scale_factor: Any = None
    size: Any = None
    mode: str = "nearest"
    align_corners: bool = False
    kind: ClassVar[str] = "upsample"

    def facts(self, inputs: list[Shape]) -> Facts:
        (shape,) = inputs
        n = _need_spatial(shape, "upsample")
        linear = self.mode in ("linear", "bilinear", "trilinear")
        if not linear and self.mode != "nearest":
            raise ConvAlgebraError(
                f"mode must be 'nearest', 'linear', 'bilinear' or 'trilinear', got {shown(self.mode)}"
            )
        if (self.scale_factor is None) == (self.size is None):
            raise ConvAlgebraError("give exactly one of scale_factor and size")
        if self.size is not None:
            sizes = normalize_tuple(self.size, n, "size")
            ratios = [Fraction(a, b) for a, b in zip(shape[1:], sizes)]
        else:
            raw = self.scale_factor
            scales = [
                _fraction(v, "scale_factor")
                for v in (raw if isinstance(raw, (tuple, list)) else (raw,) * n)
            ]
            sizes = tuple(math.floor(a * sc) for a, sc in zip(shape[1:], scales))
            ratios = [1 / sc for sc in scales]
        if min(sizes) < 1:
            raise ConvAlgebraError(f"output size {sizes} is not positive")
        if linear and self.align_corners:
            ratios = [Fraction(a - 1, max(b - 1, 1)) for a, b in zip(shape[1:], sizes)]
        maps = tuple(Resample(r, linear, linear and self.align_corners) for r in ratios)
        out = (shape[0], *sizes)
        return Facts(out, ops=_numel(out) * (2**n if linear else 1), maps=[maps])


def _pairs(value: Any, n: int, name: str) -> tuple[tuple[int, int], ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        return ((value, value),) * n
    if isinstance(value, (tuple, list)) and len(value) == n:
        out = []
        for v in value:
            pair = (v, v) if isinstance(v, int) else tuple(v)
            if len(pair) != 2 or not all(isinstance(x, int) for x in pair):
                raise TypeError(
                    f"{name} entries must be ints or (before, after) pairs, got {shown(v)}"
                )
            out.append(pair)
        return tuple(out)
    raise ConvAlgebraError(
        f"{name} must be an int or {n} (before, after) pairs, got {shown(value)}"
    )


@dataclass(frozen=True)
class Pad(Layer):
    """Padding per spatial axis (``(before, after)`` pairs; negative values crop)."""

    padding: Any = 0
    mode: str = "constant"
    value: float = 0.0
    kind: ClassVar[str] = "pad"

    def facts(self, inputs: list[Shape]) -> Facts:
        (shape,) = inputs
        n = _need_spatial(shape, "pad")
        modes = ("constant", "zeros", "reflect", "replicate", "circular")
        if self.mode not in modes:
            raise ConvAlgebraError(f"mode must be one of {modes}, got {shown(self.mode)}")
        pairs = _pairs(self.padding, n, "padding")
        for size, pair in zip(shape[1:], pairs):
            if self.mode not in ("constant", "zeros") and min(pair) < 0:
                raise ConvAlgebraError(f"negative padding {pair} (cropping) needs mode='constant'")
            if self.mode == "reflect" and max(pair) >= size:
                raise ConvAlgebraError(
                    f"reflect padding {pair} must be smaller than the size {size}"
                )
            if self.mode == "circular" and max(pair) > size:
                raise ConvAlgebraError(f"circular padding {pair} must not exceed the size {size}")
        sizes = tuple(s + a + b for s, (a, b) in zip(shape[1:], pairs))
        if min(sizes) < 1:
            raise ConvAlgebraError(f"padding {pairs} leaves output size {sizes}")
        mode = "zeros" if self.mode == "constant" else self.mode
        maps = tuple(Local(1, (-a,), mode) for a, _ in pairs)
        return Facts((shape[0], *sizes), maps=[maps])


@dataclass(frozen=True)
class Crop(Layer):
    """Centre crop to ``size`` per spatial axis (torchvision's ``center_crop`` offsets)."""

    size: Any = 1
    kind: ClassVar[str] = "crop"

    def facts(self, inputs: list[Shape]) -> Facts:
        (shape,) = inputs
        n = _need_spatial(shape, "crop")
        sizes = normalize_tuple(self.size, n, "size")
        if any(t > s for t, s in zip(sizes, shape[1:])):
            raise ConvAlgebraError(f"crop size {sizes} is larger than the input {shape[1:]}")
        offsets = tuple(int(round((s - t) / 2.0)) for s, t in zip(shape[1:], sizes))
        return Facts((shape[0], *sizes), maps=[tuple(Local(1, (o,)) for o in offsets)])


def _broadcast(inputs: list[Shape]) -> Shape:
    """The broadcast shape, trailing axes aligned (PyTorch's rule)."""
    rank = max(len(s) for s in inputs)
    padded = [(1,) * (rank - len(s)) + tuple(s) for s in inputs]
    out = []
    for dims in zip(*padded):
        sizes = set(dims) - {1}
        if len(sizes) > 1:
            raise ConvAlgebraError(f"shapes {inputs} do not broadcast")
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


@dataclass(frozen=True)
class _Elementwise(Layer):
    #: False for an op that may be non-zero where every operand is 0 (``eq``, a power) or is
    #: not a plain sum or product (a quotient): the zero analysis then counts it non-zero.
    keeps_zero: bool = field(default=True, repr=False, compare=False)
    arity: ClassVar = (2, None)

    def facts(self, inputs: list[Shape]) -> Facts:
        out = _broadcast(inputs)
        padded = [(1,) * (len(out) - len(s)) + tuple(s) for s in inputs]
        per_axis = [
            tuple(Broadcast() if s[t] == 1 < out[t] else IDENTITY for t in range(len(out)))
            for s in padded
        ]
        return Facts(
            out,
            ops=_numel(out) * (len(inputs) - 1),
            maps=[m[1:] for m in per_axis],
            lead=[m[0] for m in per_axis],
        )


@dataclass(frozen=True)
class Add(_Elementwise):
    """Elementwise sum of two or more inputs (broadcasting size-1 axes)."""

    kind: ClassVar[str] = "add"


@dataclass(frozen=True)
class Mul(_Elementwise):
    """Elementwise product (e.g. a gate broadcast over positions)."""

    kind: ClassVar[str] = "mul"


@dataclass(frozen=True)
class Concat(Layer):
    """Concatenation along ``dim`` (0 = channels)."""

    dim: int = 0
    kind: ClassVar[str] = "concat"
    arity: ClassVar = (1, None)

    def facts(self, inputs: list[Shape]) -> Facts:
        rank = len(inputs[0])
        dim = self.dim % rank
        rest = {s[:dim] + s[dim + 1 :] for s in inputs}
        if any(len(s) != rank for s in inputs) or len(rest) > 1:
            raise ConvAlgebraError(f"shapes {inputs} differ outside dim={self.dim}")
        out = list(inputs[0])
        out[dim] = sum(s[dim] for s in inputs)
        # along ``dim`` each input lands at an offset: an axis of the field only when not cut
        maps = tuple(Global() if t == dim else IDENTITY for t in range(rank))
        return Facts(tuple(out), maps=[maps[1:]] * len(inputs), lead=[maps[0]] * len(inputs))


@dataclass(frozen=True)
class SqueezeExcite(Layer):
    """Squeeze-and-excitation gate: global pool, 1x1 conv, act, 1x1 conv, sigmoid, multiply."""

    squeeze_channels: int = 1
    kind: ClassVar[str] = "squeeze_excite"

    def facts(self, inputs: list[Shape]) -> Facts:
        (shape,) = inputs
        _need_spatial(shape, "squeeze_excite")
        c, q = shape[0], self.squeeze_channels
        params = {"fc1.weight": c * q, "fc1.bias": q, "fc2.weight": q * c, "fc2.bias": c}
        return Facts(shape, params, macs=2 * c * q, ops=2 * _numel(shape), maps=None)


@dataclass(frozen=True)
class Mean(Layer):
    """Mean over ``dims`` (of the unbatched shape), as ``x.mean(dims, keepdim)``."""

    dims: Any = (1, 2)
    keepdim: bool = False
    kind: ClassVar[str] = "mean"

    def facts(self, inputs: list[Shape]) -> Facts:
        (shape,) = inputs
        dims = {d % len(shape) for d in ((self.dims,) if isinstance(self.dims, int) else self.dims)}
        out = tuple(
            1 if i in dims else s for i, s in enumerate(shape) if self.keepdim or i not in dims
        )
        kept = [t for t in range(len(shape)) if self.keepdim or t not in dims]
        per_axis = [Global() if t in dims else IDENTITY for t in kept]
        return Facts(
            out,
            ops=_numel(shape),
            maps=[tuple(per_axis[1:])] if out else None,
            lead=[per_axis[0]] if out else None,
            moves=[tuple(kept)],
        )


@dataclass(frozen=True)
class Opaque(Layer):
    """An operation the library cannot interpret; its shape and parameters are given.

    Its receptive field is reported as global (unknown reach) and the node is flagged.
    """

    op: str = "?"
    shape: tuple = ()
    params: tuple = ()
    buffers: tuple = ()
    macs: int = 0
    kind: ClassVar[str] = "opaque"
    arity: ClassVar = (0, None)

    def facts(self, inputs: list[Shape]) -> Facts:
        return Facts(tuple(self.shape), dict(self.params), dict(self.buffers), macs=self.macs)


def _reshape_blocks(src: Shape, dst: Shape) -> list[tuple[list[int], list[int]]]:
    """The smallest blocks of source and target axes with equal sizes (C-order reshape),
    size-1 axes left out."""
    src_axes = [a for a in range(len(src)) if src[a] != 1]
    dst_axes = [b for b in range(len(dst)) if dst[b] != 1]
    blocks, i, j = [], 0, 0
    while i < len(src_axes) and j < len(dst_axes):
        bi, bj = [src_axes[i]], [dst_axes[j]]
        pi, pj = src[bi[0]], dst[bj[0]]
        i, j = i + 1, j + 1
        while pi != pj:
            if pi < pj:
                bi.append(src_axes[i])
                pi, i = pi * src[src_axes[i]], i + 1
            else:
                bj.append(dst_axes[j])
                pj, j = pj * dst[dst_axes[j]], j + 1
        blocks.append((bi, bj))
    return blocks


def _reshape_facts(src: Shape, dst: Shape) -> Facts:
    """Facts of a C-order reshape: which source axis each target axis carries, and how.

    An axis kept whole carries its field (the identity). An axis split into ``(outer,
    inner)`` parts is carried by the outer part, whose unit ``i`` reads the block ``i * b ..
    i * b + b - 1`` (``b`` the size of the inner parts, which hold no spatial axis); an axis
    merged as the outer part with inner axes of total size ``r`` is carried by the merged
    axis, whose unit ``j`` reads ``j // r`` (the inner axes are no longer followed).
    """
    moves: list[int | None] = [None] * len(dst)
    maps: list[Any] = [IDENTITY] * len(dst)
    for bi, bj in _reshape_blocks(src, dst):
        if len(bi) == 1 and len(bj) == 1:
            moves[bj[0]] = bi[0]
        elif len(bi) == 1:  # a split: the outer part carries the axis, a block per unit
            inner = _numel(tuple(dst[b] for b in bj[1:]))
            moves[bj[0]], maps[bj[0]] = bi[0], Local(inner, tuple(range(inner)))
        elif len(bj) == 1:  # a merge: the outer source axis, each unit read r times
            inner = _numel(tuple(src[a] for a in bi[1:]))
            moves[bj[0]], maps[bj[0]] = bi[0], Scatter(inner, tuple(range(inner)))
    if tuple(src) == tuple(dst):
        moves = list(range(len(dst)))
    return Facts(
        tuple(dst), maps=[tuple(maps[1:])], lead=[maps[0]] if dst else None, moves=[tuple(moves)]
    )


@dataclass(frozen=True)
class Reshape(Layer):
    """``view``/``reshape``/``squeeze``/``unsqueeze`` to ``shape`` (unbatched, C order).

    An axis that is only moved (its size unchanged, other axes split or merged around it)
    keeps its receptive field; an axis split into ``(blocks, offsets)`` is followed by its
    block axis (a unit reads its block), and an axis merged as the outer part of a larger
    one is followed by the merged axis (space-to-depth, pixel shuffle, patchify); an axis
    merged as an inner part is no longer followed (global).

    Examples
    --------
    >>> f = Reshape((2, 4, 5, 5)).facts([(8, 5, 5)])    # a channel shuffle's first view
    >>> f.shape, f.moves
    ((2, 4, 5, 5), [(0, None, 1, 2)])
    >>> f = Reshape((3, 4, 2, 5, 2)).facts([(3, 8, 10)])  # space-to-depth's first view
    >>> f.moves, f.maps[0][0]
    ([(0, 1, None, 2, None)], Local(stride=2, taps=(0, 1), mode='zeros'))
    """

    shape: tuple = ()
    kind: ClassVar[str] = "reshape"

    def facts(self, inputs: list[Shape]) -> Facts:
        (shape,) = inputs
        out = list(self.shape)
        if out.count(-1) == 1:
            rest = _numel(tuple(v for v in out if v != -1))
            out[out.index(-1)] = _numel(shape) // max(rest, 1)
        out_t = tuple(out)
        if _numel(out_t) != _numel(shape) or min(out_t, default=1) < 0:
            raise ConvAlgebraError(
                f"shape {self.shape} does not hold the {_numel(shape)} entries of input {shape}"
            )
        return _reshape_facts(shape, out_t)


@dataclass(frozen=True)
class Permute(Layer):
    """Axis permutation (``permute``/``transpose`` of the unbatched axes).

    Examples
    --------
    >>> Permute((1, 2, 0)).facts([(96, 56, 56)]).shape      # to channels last
    (56, 56, 96)
    """

    dims: tuple = ()
    kind: ClassVar[str] = "permute"

    def facts(self, inputs: list[Shape]) -> Facts:
        (shape,) = inputs
        dims = tuple(d % len(shape) for d in self.dims) if self.dims else ()
        if sorted(dims) != list(range(len(shape))):
            raise ConvAlgebraError(
                f"dims={self.dims} is not a permutation of the {len(shape)} axes of input {shape}"
            )
        return _pointwise(shape, tuple(shape[d] for d in dims), [dims])


def _axis(dim: int, rank: int, name: str = "dim") -> int:
    if not -rank <= dim < rank:
        raise ConvAlgebraError(f"{name}={dim} is outside the {rank} axes of the input")
    return dim % rank


def _axis_maps(rank: int, dim: int, amap: Any) -> tuple[Any, Any]:
    """(lead, maps) with ``amap`` on axis ``dim`` and the identity elsewhere."""
    per_axis = [amap if t == dim else IDENTITY for t in range(rank)]
    return [per_axis[0]], [tuple(per_axis[1:])]


@dataclass(frozen=True)
class Slice(Layer):
    """``x[..., start:stop:step, ...]`` along one axis (also ``split``, ``chunk``, ``narrow``).

    Along channels it keeps the field; along a spatial axis it is a crop (with a stride).

    Examples
    --------
    >>> f = Slice(1, 2, 8, 2).facts([(4, 10, 10)])
    >>> f.shape, f.maps[0][0]
    ((4, 3, 10), Local(stride=2, taps=(2,), mode='zeros'))
    """

    dim: int = 0
    start: int = 0
    stop: int | None = None
    step: int = 1
    kind: ClassVar[str] = "slice"

    def facts(self, inputs: list[Shape]) -> Facts:
        (shape,) = inputs
        dim = _axis(self.dim, len(shape))
        if self.step < 1:
            raise ConvAlgebraError(f"step must be a positive integer, got {self.step}")
        start, stop, step = slice(self.start, self.stop, self.step).indices(shape[dim])
        size = len(range(start, stop, step))
        if size < 1:
            raise ConvAlgebraError(
                f"slice {self.start}:{self.stop}:{self.step} of axis {dim} "
                f"(size {shape[dim]}) is empty"
            )
        lead, maps = _axis_maps(len(shape), dim, Local(step, (start,)))
        out = (*shape[:dim], size, *shape[dim + 1 :])
        return Facts(out, maps=maps, lead=lead)


@dataclass(frozen=True)
class Select(Layer):
    """``x[..., index, ...]`` or ``unbind``: one position of an axis, the axis removed."""

    dim: int = 0
    index: int = 0
    kind: ClassVar[str] = "select"

    def facts(self, inputs: list[Shape]) -> Facts:
        (shape,) = inputs
        dim = _axis(self.dim, len(shape))
        if not -shape[dim] <= self.index < shape[dim]:
            raise ConvAlgebraError(f"index={self.index} is outside axis {dim} of size {shape[dim]}")
        keep = tuple(t for t in range(len(shape)) if t != dim)
        out = tuple(shape[t] for t in keep)
        if not out:
            return Facts(out, maps=None)
        return _pointwise(shape, out, [keep])


@dataclass(frozen=True)
class Take(Layer):
    """``index_select`` of ``size`` entries along ``dim`` (global along a spatial axis)."""

    dim: int = 0
    size: int = 1
    kind: ClassVar[str] = "take"

    def facts(self, inputs: list[Shape]) -> Facts:
        (shape,) = inputs
        dim = _axis(self.dim, len(shape))
        lead, maps = _axis_maps(len(shape), dim, Global())
        return Facts((*shape[:dim], self.size, *shape[dim + 1 :]), maps=maps, lead=lead)


def _einsum_terms(equation: str, count: int) -> tuple[list[str], str]:
    text = equation.replace(" ", "")
    if "->" not in text or "." in text:
        raise ConvAlgebraError(
            f"equation must be explicit ('ab,bc->ac', no ellipsis), got {shown(equation)}"
        )
    lhs, out = text.split("->")
    terms = lhs.split(",")
    if len(terms) != count or not all(t.isalpha() for t in (*terms, out) if t):
        raise ConvAlgebraError(f"equation {shown(equation)} needs {count} operand terms of letters")
    return terms, out


@dataclass(frozen=True)
class Einsum(Layer):
    """``torch.einsum`` / ``matmul`` / ``bmm`` between inputs and fixed ``weights``.

    ``weights`` holds ``(term position, shape)`` of the parameter operands; the inputs fill
    the other terms in order. An output axis keeps the field of the input axis with its
    letter; contracted letters mix. MACs: the product of every letter's size (two operands).

    Examples
    --------
    >>> f = Einsum("chw,oc->ohw", ((1, (16, 8)),)).facts([(8, 5, 5)])   # a 1x1 conv
    >>> f.shape, f.params, f.macs
    ((16, 5, 5), {'weight': 128}, 3200)
    """

    equation: str = ""
    weights: tuple = ()
    kind: ClassVar[str] = "einsum"
    arity: ClassVar = (1, None)

    def facts(self, inputs: list[Shape]) -> Facts:
        where = {int(p): tuple(sh) for p, sh in self.weights}
        terms, out = _einsum_terms(self.equation, len(inputs) + len(where))
        data = iter(inputs)
        shapes = [where[k] if k in where else next(data) for k in range(len(terms))]
        sizes: dict[str, int] = {}
        for term, shape in zip(terms, shapes):
            if len(term) != len(shape):
                raise ConvAlgebraError(
                    f"term {shown(term)} of {shown(self.equation)} does not match operand shape {shape}"
                )
            for letter, size in zip(term, shape):
                if sizes.get(letter, 1) not in (1, size) and size != 1:
                    raise ConvAlgebraError(
                        f"letter {shown(letter)} of {shown(self.equation)} has sizes "
                        f"{sizes[letter]} and {size}"
                    )
                sizes[letter] = max(sizes.get(letter, 1), size)
        shape_out = tuple(sizes[c] for c in out)
        maps, lead, moves = [], [], []
        for k, (term, shape) in enumerate(zip(terms, shapes)):
            if k in where:
                continue
            per_axis = [
                Broadcast() if c in term and shape[term.index(c)] == 1 < sizes[c] else IDENTITY
                for c in out
            ]
            moves.append(tuple(term.index(c) if c in term else None for c in out))
            maps.append(tuple(per_axis[1:]))
            lead.append(per_axis[0] if out else None)
        params = (
            {"weight": _numel(next(iter(where.values())))}
            if len(where) == 1
            else {f"weight{k}": _numel(sh) for k, sh in where.items()}
        )
        macs = _numel(tuple(sizes.values())) if len(terms) == 2 else 0
        return Facts(
            shape_out,
            params,
            macs=macs,
            maps=maps if out else None,
            lead=lead if out else None,
            moves=moves,
        )


@dataclass(frozen=True)
class Attention(Layer):
    """Multi-head attention (``nn.MultiheadAttention``, batch first, self-attention).

    Input ``(L, E)``; every token reads every token (global along ``L``). MACs: the four
    projections ``4 L E^2`` and the two attention products ``2 L^2 E``.
    """

    num_heads: int = 1
    bias: bool = True
    kind: ClassVar[str] = "attention"

    def facts(self, inputs: list[Shape]) -> Facts:
        (shape,) = inputs
        if len(shape) != 2 or shape[1] % self.num_heads:
            raise ConvAlgebraError(
                f"attention needs a (tokens, embed) input with embed divisible"
                f" by num_heads={self.num_heads}, got {shape}"
            )
        tokens, e = shape
        params = {"in_proj_weight": 3 * e * e, "out_proj.weight": e * e}
        if self.bias:
            params.update({"in_proj_bias": 3 * e, "out_proj.bias": e})
        return Facts(
            shape,
            params,
            macs=4 * tokens * e * e + 2 * tokens * tokens * e,
            maps=[(IDENTITY,)],
            lead=[Global()],
        )


@dataclass(frozen=True)
class Parameter(Layer):
    """Parameters, buffers or constants read by a layer, as a tensor of ``shape``.

    It carries no receptive field: the layers reading it take the field of their other
    inputs. ``params`` and ``buffers`` hold the ``(name, size)`` of the stored tensors it is
    computed from (a broadcast view stores fewer entries than its ``shape``); a constant
    holds neither. ``macs`` counts the work of computing it (e.g. an MLP over a table of
    relative coordinates), once per forward pass.

    Examples
    --------
    >>> Parameter((96, 1, 1), (("gamma", 96),)).facts([]).params
    {'gamma': 96}
    """

    shape: tuple = ()
    params: tuple = ()
    buffers: tuple = ()
    macs: int = 0
    kind: ClassVar[str] = "parameter"
    arity: ClassVar = (0, 0)

    def facts(self, inputs: list[Shape]) -> Facts:
        return Facts(
            tuple(self.shape),
            {str(n): int(v) for n, v in self.params},
            {str(n): int(v) for n, v in self.buffers},
            macs=self.macs,
            maps=None,
        )


KINDS: dict[str, type[Layer]] = {
    cls.kind: cls
    for cls in (
        Input,
        Conv,
        MaxPool,
        AvgPool,
        AdaptivePool,
        Linear,
        Flatten,
        BatchNorm,
        LayerNorm,
        GroupNorm,
        Activation,
        Dropout,
        Upsample,
        Pad,
        Crop,
        Add,
        Mul,
        Concat,
        SqueezeExcite,
        Mean,
        Identity,
        Opaque,
        Reshape,
        Permute,
        Slice,
        Select,
        Take,
        Einsum,
        Attention,
        Parameter,
    )
}
_ALIASES: dict[str, tuple[str, dict]] = {
    "conv_transpose": ("conv", {"transposed": True}),
    "global_avg_pool": ("adaptive_pool", {"output_size": 1, "op": "avg"}),
    "global_max_pool": ("adaptive_pool", {"output_size": 1, "op": "max"}),
    "adaptive_avg_pool": ("adaptive_pool", {"op": "avg"}),
    "adaptive_max_pool": ("adaptive_pool", {"op": "max"}),
    **{fn: ("activation", {"fn": fn}) for fn in ACTIVATIONS},
}


def layer_from_dict(entry: dict[str, Any]) -> Layer:
    """Build a layer from ``{"kind": ..., **fields}`` (aliases such as ``"relu"`` allowed).

    Examples
    --------
    >>> layer_from_dict({"kind": "conv", "out_channels": 8, "kernel_size": [3, 1]})
    Conv(out_channels=8, kernel_size=(3, 1), stride=1, padding=0, dilation=1, groups=1, bias=True, padding_mode='zeros', transposed=False, output_padding=0)
    >>> layer_from_dict({"kind": "relu"}).fn
    'relu'
    """
    entry = dict(entry)
    kind = entry.pop("kind", None)
    if kind in _ALIASES:
        kind, extra = _ALIASES[kind]
        entry = {**extra, **entry}
    if kind not in KINDS:
        known = sorted(set(KINDS) | set(_ALIASES))
        raise ConvAlgebraError(f"unknown layer kind {shown(kind)}; known kinds: {', '.join(known)}")
    cls = KINDS[kind]
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(entry) - names)
    if unknown:
        raise ConvAlgebraError(
            f"layer kind {shown(kind)} has no field(s) {unknown}; fields: {sorted(names)}"
        )
    entry = {
        k: tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v
        for k, v in entry.items()
    }
    try:
        return cls(**entry)
    except TypeError as exc:
        raise ConvAlgebraError(f"layer kind {shown(kind)}: {exc}") from None
