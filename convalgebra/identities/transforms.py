"""Grid transformations as gathers: translations, 90° rotations, flips, transpositions, rescaling.

Every transformation here maps an array ``x`` of a spatial shape to ``T(x)`` with
``T(x).ravel()[i] == x.ravel()[src[i]]`` (or 0 where ``src[i] < 0``), so it can act in an
operator expression as a gather. On a square grid the 90° rotations, flips and transpositions
are exact permutations: no interpolation, no tolerance.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import ConvAlgebraError, shown

__all__ = [
    "GridTransform",
    "shift",
    "rotation",
    "flip",
    "transposition",
    "upscale",
    "downscale",
    "normalize_shift",
    "spatial_axes",
]


@dataclass(frozen=True)
class GridTransform:
    """A transformation of spatial arrays, applied by ``apply`` to any array of a grid shape.

    ``name`` is for messages; ``apply(array) -> array`` acts on the last ``ndim`` axes;
    ``out_shape(shape)`` is the transformed grid's shape.
    """

    name: str
    apply: Callable[[np.ndarray], np.ndarray]
    out_shape: Callable[[tuple], tuple]

    def gather(self, shape: tuple[int, ...]) -> np.ndarray:
        """``src`` with ``apply(x).ravel() == x.ravel()[src]`` (``-1``: zero fill)."""
        # positions are stored 1-based so that the zero fill reads as -1
        grid = np.arange(1, math.prod(shape) + 1, dtype=np.int64).reshape(shape)
        return np.asarray(self.apply(grid), dtype=np.int64).ravel() - 1


def spatial_axes(axes, ndim: int, name: str, count: int) -> tuple[int, ...]:
    """Validate ``count`` distinct spatial axes (negative allowed) of an ``ndim``-D grid."""
    axes = (axes,) if isinstance(axes, (int, np.integer)) else tuple(axes)
    if len(axes) != count or not all(isinstance(a, (int, np.integer)) for a in axes):
        raise ConvAlgebraError(f"{name} must be {count} spatial axis index(es), got {shown(axes)}")
    norm = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise ConvAlgebraError(
                f"{name}={shown(axes)} is out of range for {ndim} spatial dimension(s)"
            )
        norm.append(int(a) % ndim)
    if len(set(norm)) != count:
        raise ConvAlgebraError(f"{name} must name distinct axes, got {shown(axes)}")
    return tuple(norm)


def normalize_shift(amount, axis, ndim: int) -> tuple[int, ...]:
    """A per-axis shift vector from ``shift=int, axis=k`` or ``shift=(d0, d1, ...)``."""
    if isinstance(amount, (tuple, list)):
        if len(amount) != ndim or not all(isinstance(v, (int, np.integer)) for v in amount):
            raise ConvAlgebraError(
                f"shift must be an int or {ndim} ints (one per spatial axis), got {shown(tuple(amount))}"
            )
        return tuple(int(v) for v in amount)
    if not isinstance(amount, (int, np.integer)) or isinstance(amount, bool):
        raise TypeError(f"shift must be an int or a tuple of ints, got {shown(amount)}")
    (ax,) = spatial_axes(axis, ndim, "axis", 1)
    vec = [0] * ndim
    vec[ax] = int(amount)
    return tuple(vec)


def _shift_array(x: np.ndarray, delta: tuple[int, ...], circular: bool) -> np.ndarray:
    nd = len(delta)
    lead = x.ndim - nd
    if circular:
        return np.roll(x, delta, axis=tuple(range(lead, x.ndim)))
    out = np.zeros_like(x)
    dst, src = [slice(None)] * lead, [slice(None)] * lead
    for d, n in zip(delta, x.shape[lead:]):
        if abs(d) >= n:
            return out
        dst.append(slice(d, None) if d >= 0 else slice(0, n + d))
        src.append(slice(0, n - d) if d >= 0 else slice(-d, None))
    out[tuple(dst)] = x[tuple(src)]
    return out


def shift(delta: tuple[int, ...], circular: bool = False) -> GridTransform:
    """Translation ``x'[p] = x[p - delta]``; zero fill, or cyclic when ``circular``.

    Examples
    --------
    >>> shift((1,)).gather((4,))
    array([-1,  0,  1,  2])
    >>> shift((1,), circular=True).gather((4,))
    array([3, 0, 1, 2])
    """
    delta = tuple(int(d) for d in delta)
    kind = "cyclic" if circular else "zero-fill"
    return GridTransform(
        f"{kind} shift by {delta}", lambda x: _shift_array(x, delta, circular), lambda s: tuple(s)
    )


def rotation(k: int = 1, axes: tuple[int, int] = (0, 1), ndim: int = 2) -> GridTransform:
    """Rotation by ``k`` quarter turns in the plane of two spatial ``axes`` (``np.rot90``).

    Examples
    --------
    >>> rotation(1).gather((2, 2))
    array([1, 3, 0, 2])
    """
    a, b = spatial_axes(axes, ndim, "axes", 2)

    def apply(x):
        lead = x.ndim - ndim
        return np.rot90(x, k, axes=(lead + a, lead + b))

    def out_shape(s):
        s = list(s)
        if k % 2:
            s[a], s[b] = s[b], s[a]
        return tuple(s)

    return GridTransform(f"rotation by {90 * (k % 4)}° in axes {(a, b)}", apply, out_shape)


def flip(axis: int = 0, ndim: int = 2) -> GridTransform:
    """Mirror along one spatial ``axis``.

    Examples
    --------
    >>> flip(0, ndim=1).gather((3,))
    array([2, 1, 0])
    """
    (a,) = spatial_axes(axis, ndim, "axis", 1)
    return GridTransform(
        f"flip along axis {a}", lambda x: np.flip(x, x.ndim - ndim + a), lambda s: tuple(s)
    )


def transposition(axes: tuple[int, int] = (0, 1), ndim: int = 2) -> GridTransform:
    """Swap two spatial ``axes`` (matrix transposition of an image).

    Examples
    --------
    >>> transposition().gather((2, 2))
    array([0, 2, 1, 3])
    """
    a, b = spatial_axes(axes, ndim, "axes", 2)

    def out_shape(s):
        s = list(s)
        s[a], s[b] = s[b], s[a]
        return tuple(s)

    return GridTransform(
        f"transposition of axes {(a, b)}",
        lambda x: np.swapaxes(x, x.ndim - ndim + a, x.ndim - ndim + b),
        out_shape,
    )


def _check_factor(factor) -> int:
    if not isinstance(factor, (int, np.integer)) or isinstance(factor, bool) or factor < 1:
        raise ConvAlgebraError(f"factor must be a positive integer, got {shown(factor)}")
    return int(factor)


def upscale(factor: int, ndim: int) -> GridTransform:
    """Nearest-neighbour upscaling: every pixel becomes a ``factor``-wide block.

    Examples
    --------
    >>> upscale(2, 1).gather((2,))
    array([0, 0, 1, 1])
    """
    f = _check_factor(factor)

    def apply(x):
        for a in range(x.ndim - ndim, x.ndim):
            x = np.repeat(x, f, axis=a)
        return x

    return GridTransform(f"upscaling by {f}", apply, lambda s: tuple(n * f for n in s))


def downscale(factor: int, ndim: int) -> GridTransform:
    """Decimation: keep every ``factor``-th pixel along each spatial axis.

    Examples
    --------
    >>> downscale(2, 1).gather((5,))
    array([0, 2, 4])
    """
    f = _check_factor(factor)

    def apply(x):
        index = (slice(None),) * (x.ndim - ndim) + (slice(None, None, f),) * ndim
        return x[index]

    return GridTransform(f"downscaling by {f}", apply, lambda s: tuple(-(-n // f) for n in s))
