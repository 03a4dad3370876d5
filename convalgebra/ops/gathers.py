"""Operators that move entries without arithmetic: padding, crops, shifts, flips, rotations,
subsampling, zero insertion, nearest upsampling and pixel (un)shuffling.

Each is the numpy equivalent of the PyTorch operation applied to an array of positions
(``np.pad``, ``np.roll``, ``np.flip``, ``np.rot90``, slicing, reshapes), so its index map is
the operation itself, never re-derived. Sizes where PyTorch refuses the operation (a reflect
pad as wide as the input, a size that ``pixel_unshuffle`` does not divide) are outside the
domain of the expression.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np

from .. import budget
from ..budget import OPS_MAX_PARAMETER
from ..errors import ConvAlgebraError, shown
from .expressions import Gather, Geometry, Op
from .kernels import per_axis
from .terms import Undefined

__all__ = [
    "pad",
    "crop",
    "shift",
    "flip",
    "rot90",
    "subsample",
    "upsample_zeros",
    "upsample_nearest",
    "pixel_shuffle",
    "pixel_unshuffle",
]

_NUMPY_MODES = {
    "constant": "constant",
    "zeros": "constant",
    "reflect": "reflect",
    "replicate": "edge",
    "circular": "wrap",
}


def _expr(x: Any, name: str) -> Op:
    if not isinstance(x, Op):
        raise TypeError(f"{name} takes a signal expression, got {shown(x)}")
    return x


def _each(window: list[int], boundary: list[int], rate: list[Fraction] | None = None):
    def geometry(child: tuple[Geometry, ...]) -> tuple[Geometry, ...]:
        rates = rate or [Fraction(1)] * len(child)
        return tuple(
            g.then(r, Fraction(w), Fraction(b))
            for g, r, w, b in zip(child, rates, window, boundary)
        )

    return geometry


def _pairs(pad_: Any, ndim: int, name: str) -> list[tuple[int, int]]:
    """``F.pad``'s flat tuple (last axis first) as (before, after) per spatial axis."""
    if not isinstance(pad_, (tuple, list)) or len(pad_) % 2 or not pad_:
        raise ConvAlgebraError(f"{name} takes an even-length tuple like F.pad's, got {shown(pad_)}")
    if len(pad_) > 2 * ndim:
        raise ConvAlgebraError(
            f"{name}={shown(pad_)} reaches past the {ndim} spatial axes (the channel axis is not padded)"
        )
    values = per_axis(tuple(pad_), len(pad_), name, minimum=-OPS_MAX_PARAMETER)
    pairs = [(0, 0)] * ndim
    for j in range(len(values) // 2):
        pairs[ndim - 1 - j] = (values[2 * j], values[2 * j + 1])
    return pairs


def pad(x: Op, pad: Any, mode: str = "constant") -> Op:
    """``F.pad(x, pad, mode)``: ``pad`` lists (before, after) from the last axis backwards.

    Modes ``"constant"`` (zeros; negative amounts crop), ``"reflect"``, ``"replicate"`` and
    ``"circular"``, with PyTorch's limits (reflect: less than the size; circular: at most it).

    Examples
    --------
    >>> from convalgebra.ops import signal
    >>> pad(signal(), (1, 2), mode="circular")
    pad(x, (1, 2), mode='circular')
    """
    x = _expr(x, "pad")
    if mode not in _NUMPY_MODES:
        raise ConvAlgebraError(f"mode must be one of {sorted(_NUMPY_MODES)}, got {shown(mode)}")
    pairs = _pairs(pad, x.ndim, "pad")
    if mode not in ("constant", "zeros") and any(min(p) < 0 for p in pairs):
        raise ConvAlgebraError(f"negative padding crops only in constant mode, got {shown(pad)}")

    def index_map(idx: np.ndarray) -> np.ndarray:
        for a, (lo, hi) in enumerate(pairs):
            size = idx.shape[1 + a]
            if mode == "reflect" and max(lo, hi) >= size:
                raise Undefined("reflect padding must be narrower than the input")
            if mode == "circular" and max(lo, hi) > size:
                raise Undefined("circular padding must not exceed the input")
            keep = slice(max(0, -lo), size - max(0, -hi))
            if keep.start >= keep.stop:
                raise Undefined("the crop removes the whole input")
            idx = idx[(slice(None),) * (1 + a) + (keep,)]
        widths = [(0, 0)] + [(max(0, lo), max(0, hi)) for lo, hi in pairs]
        if _NUMPY_MODES[mode] == "constant":
            return np.pad(idx, widths, mode="constant", constant_values=-1)
        return np.pad(idx, widths, mode=_NUMPY_MODES[mode])  # type: ignore[call-overload]

    offsets = [abs(lo) for lo, _ in pairs]
    text = f"pad({x.formula()}, {tuple(pad)}" + (f", mode={mode!r})" if mode != "constant" else ")")
    return Gather(
        x,
        index_map,
        text,
        _each(offsets, [max(max(lo, 0), max(hi, 0)) for lo, hi in pairs]),
        x.channels,
        kind="pad",
        args=(tuple(int(v) for v in pad), mode),
    )


def crop(x: Op, amounts: Any) -> Op:
    """Remove ``amounts`` positions, in ``F.pad``'s order: ``crop(x, c)`` is ``pad(x, -c)``.

    Examples
    --------
    >>> from convalgebra.ops import signal
    >>> crop(signal(), (1, 1))
    crop(x, (1, 1))
    """
    x = _expr(x, "crop")
    pairs = _pairs(amounts, x.ndim, "crop")
    if any(min(p) < 0 for p in pairs):
        raise ConvAlgebraError(f"crop amounts must be non-negative, got {shown(amounts)}")
    inner = pad(x, tuple(-int(v) for v in amounts))
    assert isinstance(inner, Gather)
    return Gather(
        x,
        inner.index_map,
        f"crop({x.formula()}, {tuple(amounts)})",
        inner.axis_geometry,
        x.channels,
        kind="crop",
        args=(tuple(int(v) for v in amounts),),
    )


def shift(x: Op, shifts: Any, mode: str = "zeros") -> Op:
    """``y[i] = x[i - s]`` per spatial axis: zero-filled, or ``torch.roll`` (``"circular"``).

    Examples
    --------
    >>> from convalgebra.ops import signal
    >>> shift(signal(ndim=2), (1, -2), mode="circular")
    shift(x, (1, -2), mode='circular')
    """
    x = _expr(x, "shift")
    if mode not in ("zeros", "circular"):
        raise ConvAlgebraError(f"shift mode must be 'zeros' or 'circular', got {shown(mode)}")
    s = per_axis(shifts, x.ndim, "shifts", minimum=-OPS_MAX_PARAMETER)

    def index_map(idx: np.ndarray) -> np.ndarray:
        for a, k in enumerate(s):
            axis = 1 + a
            size = idx.shape[axis]
            rolled = np.roll(idx, k, axis=axis)
            if mode == "zeros":
                fill = [slice(None)] * idx.ndim
                fill[axis] = slice(0, min(k, size)) if k >= 0 else slice(max(size + k, 0), size)
                rolled[tuple(fill)] = -1
            idx = rolled
        return idx

    reach = [abs(k) for k in s]
    text = f"shift({x.formula()}, {s[0] if x.ndim == 1 else s}" + (
        f", mode={mode!r})" if mode != "zeros" else ")"
    )
    return Gather(x, index_map, text, _each(reach, reach), x.channels, kind="shift", args=(s, mode))


def _dims(dims: Any, ndim: int, name: str) -> tuple[int, ...]:
    if not isinstance(dims, (int, np.integer, tuple, list)):
        raise TypeError(f"{name} must be an int or a tuple of ints, got {shown(dims)}")
    items = (dims,) if isinstance(dims, (int, np.integer)) else tuple(dims)
    out = []
    for d in items:
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)):
            raise TypeError(f"{name} must hold ints, got {shown(dims)}")
        d = int(d) + (ndim + 1 if d < 0 else 0)
        if not 0 <= d <= ndim:
            raise ConvAlgebraError(
                f"{name}={shown(dims)} is out of range for a signal of {ndim + 1} dims"
            )
        out.append(d)
    if len(set(out)) != len(out):
        raise ConvAlgebraError(f"{name}={shown(dims)} repeats a dimension")
    return tuple(out)


def flip(x: Op, dims: Any) -> Op:
    """``torch.flip(x, dims)``: dims of the signal tensor (0 is the channel axis).

    Examples
    --------
    >>> from convalgebra.ops import signal
    >>> flip(signal(ndim=2), (1, 2))
    flip(x, (1, 2))
    """
    x = _expr(x, "flip")
    d = _dims(dims, x.ndim, "dims")
    text = f"flip({x.formula()}, {d})"
    return Gather(
        x,
        lambda idx: np.flip(idx, d),
        text,
        _each([0] * x.ndim, [0] * x.ndim),
        x.channels,
        reverses=any(a > 0 for a in d),
        kind="flip",
        args=(d,),
    )


def rot90(x: Op, k: int = 1, dims: Any = (1, 2)) -> Op:
    """``torch.rot90(x, k, dims)`` on two spatial dims; the signal is then square (n × n).

    Examples
    --------
    >>> from convalgebra.ops import signal
    >>> rot90(signal(ndim=2))
    rot90(x, 1, (1, 2))
    """
    x = _expr(x, "rot90")
    d = _dims(dims, x.ndim, "dims")
    if len(d) != 2 or 0 in d:
        raise ConvAlgebraError(
            f"rot90 turns two spatial dims (1..{x.ndim}), got dims={shown(dims)}"
        )
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an int, got {shown(k)}")
    turns = int(k) % 4

    def geometry(child: tuple[Geometry, ...]) -> tuple[Geometry, ...]:
        order = list(range(len(child)))
        if turns % 2:
            order[d[0] - 1], order[d[1] - 1] = order[d[1] - 1], order[d[0] - 1]
        return tuple(child[i] for i in order)

    text = f"rot90({x.formula()}, {int(k)}, {d})"
    return Gather(
        x,
        lambda idx: np.rot90(idx, turns, d),
        text,
        geometry,
        x.channels,
        reverses=turns != 0,
        permutes=turns % 2 == 1,
        kind="rot90",
        args=(int(k), d),
    )


def subsample(x: Op, factor: Any, offset: Any = 0) -> Op:
    """``x[..., offset::factor]`` per spatial axis.

    Examples
    --------
    >>> from convalgebra.ops import signal
    >>> subsample(signal(), 2, 1)
    subsample(x, 2, offset=1)
    """
    x = _expr(x, "subsample")
    f = per_axis(factor, x.ndim, "factor", minimum=1)
    o = per_axis(offset, x.ndim, "offset", minimum=0)
    window = (slice(None),) + tuple(slice(oi, None, fi) for oi, fi in zip(o, f))
    offsets = list(o)
    text = f"subsample({x.formula()}, {_arg(f)}" + (f", offset={_arg(o)})" if any(o) else ")")
    return Gather(
        x,
        lambda idx: idx[window],
        text,
        _each(offsets, [0] * x.ndim, [Fraction(1, fi) for fi in f]),
        x.channels,
        kind="subsample",
        args=(f, o),
    )


def _upsampled(x: Any, factor: Any, kind: str, spread: Any) -> Op:
    """An upsampling by ``factor`` per axis whose index map is ``spread(idx, f)``."""
    x = _expr(x, kind)
    f = per_axis(factor, x.ndim, "factor", minimum=1)
    return Gather(
        x,
        lambda idx: spread(idx, f),
        f"{kind}({x.formula()}, {_arg(f)})",
        _each([1] * x.ndim, [0] * x.ndim, [Fraction(fi) for fi in f]),
        x.channels,
        kind=kind,
        args=(f,),
    )


def _insert_zeros(idx: np.ndarray, f: tuple[int, ...]) -> np.ndarray:
    out = budget.full((idx.shape[0], *(n * fi for n, fi in zip(idx.shape[1:], f))), -1, np.int64)
    out[(slice(None),) + tuple(slice(None, None, fi) for fi in f)] = idx
    return out


def _repeat(idx: np.ndarray, f: tuple[int, ...]) -> np.ndarray:
    for a, fi in enumerate(f):
        idx = np.repeat(idx, fi, axis=1 + a)
    return idx


def upsample_zeros(x: Op, factor: Any) -> Op:
    """Zero insertion: ``y[f i] = x[i]``, zero elsewhere; size ``f n`` per axis.

    Examples
    --------
    >>> from convalgebra.ops import signal
    >>> upsample_zeros(signal(), 2)
    upsample_zeros(x, 2)
    """
    return _upsampled(x, factor, "upsample_zeros", _insert_zeros)


def upsample_nearest(x: Op, factor: Any) -> Op:
    """``F.interpolate(x, scale_factor=f, mode="nearest")`` for integer ``f``: ``y[i] = x[i // f]``.

    Examples
    --------
    >>> from convalgebra.ops import signal
    >>> upsample_nearest(signal(), 3)
    upsample_nearest(x, 3)
    """
    return _upsampled(x, factor, "upsample_nearest", _repeat)


def _factor(r: Any) -> int:
    if isinstance(r, bool) or not isinstance(r, (int, np.integer)):
        raise TypeError(f"the factor must be a positive integer, got {shown(r)}")
    if not 1 <= r <= OPS_MAX_PARAMETER:
        raise ConvAlgebraError(
            f"the factor must be in 1..{OPS_MAX_PARAMETER} (OPS_MAX_PARAMETER), got {shown(r)}"
        )
    return int(r)


def pixel_shuffle(x: Op, upscale_factor: int) -> Op:
    """``F.pixel_shuffle``: ``(C r^d, *n) -> (C, *(r n))``, channel ``c r^d + (i_1 … i_d)``
    in base ``r`` going to offset ``(i_1, …, i_d)`` of each ``r × … × r`` block (PyTorch's
    order in 2-D, the same rule in 1-D and 3-D).

    Examples
    --------
    >>> from convalgebra.ops import signal
    >>> pixel_shuffle(signal(channels=4, ndim=2), 2).channels
    1
    """
    x = _expr(x, "pixel_shuffle")
    r = _factor(upscale_factor)
    d = x.ndim
    if x.channels % r**d:
        raise ConvAlgebraError(
            f"pixel_shuffle: {x.channels} channels are not divisible by {r}**{d}"
        )
    c = x.channels // r**d

    def index_map(idx: np.ndarray) -> np.ndarray:
        n = idx.shape[1:]
        grid = idx.reshape((c,) + (r,) * d + n)
        order = [0] + [v for a in range(d) for v in (1 + d + a, 1 + a)]
        return grid.transpose(order).reshape((c, *(s * r for s in n)))

    return Gather(
        x,
        index_map,
        f"pixel_shuffle({x.formula()}, {r})",
        _each([1] * d, [0] * d, [Fraction(r)] * d),
        c,
        kind="pixel_shuffle",
        args=(r,),
    )


def pixel_unshuffle(x: Op, downscale_factor: int) -> Op:
    """``F.pixel_unshuffle``: the inverse of :func:`pixel_shuffle`; sizes divisible by ``r``.

    Examples
    --------
    >>> from convalgebra.ops import signal
    >>> pixel_unshuffle(signal(channels=1, ndim=2), 2).channels
    4
    """
    x = _expr(x, "pixel_unshuffle")
    r = _factor(downscale_factor)
    d = x.ndim

    def index_map(idx: np.ndarray) -> np.ndarray:
        c, n = idx.shape[0], idx.shape[1:]
        if any(s % r for s in n):
            raise Undefined(f"pixel_unshuffle needs sizes divisible by {r}")
        grid = idx.reshape((c,) + tuple(v for s in n for v in (s // r, r)))
        order = [0] + [2 + 2 * a for a in range(d)] + [1 + 2 * a for a in range(d)]
        return grid.transpose(order).reshape((c * r**d, *(s // r for s in n)))

    return Gather(
        x,
        index_map,
        f"pixel_unshuffle({x.formula()}, {r})",
        _each([r] * d, [0] * d, [Fraction(1, r)] * d),
        x.channels * r**d,
        kind="pixel_unshuffle",
        args=(r,),
    )


def _arg(values: tuple[int, ...]) -> str:
    return str(values[0]) if len(set(values)) == 1 else str(values)
