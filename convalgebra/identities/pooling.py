"""Pooling and translations: how much max pooling ignores a shift, and average pooling's
equivariance (it is a depthwise convolution with a constant kernel).

Max pooling is not linear, so its invariance is a property of a given input: the fraction of
pooled outputs that a shift leaves unchanged (Deep Learning book, fig. 9.8).
"""

from __future__ import annotations

import math
import operator

import numpy as np

from .. import budget
from ..connectivity import spatial_table
from ..errors import ConvAlgebraError, shown
from ..spec import ConvSpec, normalize_tuple, plain_array, pool_stride
from .common import positions
from .equivariance import translation_equivariance
from .result import CheckResult, Counterexample
from .transforms import normalize_shift
from .transforms import shift as shift_transform

__all__ = ["max_pool", "max_pool_invariance", "avg_pool_equivariance", "avg_pool_spec"]


def _pool_spec(shape, kernel_size, stride, padding) -> ConvSpec:
    kernel = normalize_tuple(kernel_size, len(shape), "kernel_size")
    return ConvSpec(
        (1, *shape), 1, kernel, stride=pool_stride(kernel, stride), padding=padding, bias=False
    )


def max_pool(x, kernel_size, stride=None, padding=0) -> np.ndarray:
    """Max pooling of ``x`` (``(C, *spatial)``) as PyTorch computes it (padding is -inf).

    Examples
    --------
    >>> max_pool(np.array([[1, 3, 2, 0]]), 2).tolist()
    [[3.0, 2.0]]
    """
    x = np.asarray(x, dtype=float)
    if x.ndim < 2:
        raise ConvAlgebraError(f"x must have shape (C, *spatial), got {x.shape}")
    spec = _pool_spec(x.shape[1:], kernel_size, stride, padding)
    table = spatial_table(spec)
    flat = np.concatenate([x.reshape(x.shape[0], -1), np.full((x.shape[0], 1), -np.inf)], axis=1)
    pooled = flat[:, np.where(table >= 0, table, flat.shape[1] - 1)].max(axis=2)
    return pooled.reshape(x.shape[0], *spec.output_shape[1:])


def max_pool_invariance(
    x, kernel_size=2, stride=None, padding=0, *, shift=1, axis=-1, boundary: str = "zeros"
) -> CheckResult:
    """Fraction of max-pooled outputs that do not change when ``x`` is shifted.

    ``holds`` is True only when every pooled value is unchanged; the fraction is
    ``evidence["fraction unchanged"]``.

    Examples
    --------
    >>> x = np.array([[[0, 1, 0, 0], [0, 0, 0, 1], [1, 0, 0, 0], [0, 0, 1, 0]]])
    >>> r = max_pool_invariance(x, 2, shift=1, axis=-1)
    >>> r.holds, r.evidence["fraction unchanged"]
    (False, 0.75)
    """
    try:
        x = np.asarray(plain_array(x), dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"x must be a real numeric array (C, *spatial), got {shown(x)}") from None
    if boundary not in ("zeros", "circular"):
        raise ConvAlgebraError(f"boundary must be 'zeros' or 'circular', got {shown(boundary)}")
    if x.ndim < 2:
        raise ConvAlgebraError(f"x must have shape (C, *spatial), got {x.shape}")
    delta = normalize_shift(shift, axis, x.ndim - 1)
    n_in = x.shape[1:]
    if any(abs(d) >= n for d, n in zip(delta, n_in)):
        raise ConvAlgebraError(
            f"shift {delta} must be smaller than the input size {n_in} on every axis"
        )
    shifted = shift_transform(delta, boundary == "circular").apply(x)
    before = max_pool(x, kernel_size, stride, padding)
    after = max_pool(shifted, kernel_size, stride, padding)
    same = np.isclose(before, after)
    frac = float(same.mean())
    changed = positions(np.flatnonzero(~same), same.shape)
    ce = None
    if changed:
        ce = Counterexample(
            {"x": x, "shifted x": shifted},
            after,
            before,
            changed[0],
            f"the pooled value at {tuple(i + 1 for i in changed[0])} (1-based) changes from "
            f"{before[changed[0]]:g} to {after[changed[0]]:g}",
        )
    return CheckResult(
        "max_pool_invariance",
        not changed,
        f"maxpool(S x) = maxpool(x) for the shift {delta} ({boundary} fill)",
        f"{int(same.sum())} of {same.size} pooled outputs are unchanged: a shift leaves the "
        "maximum of a window in place when the window's largest value stays inside it.",
        {"fraction unchanged": frac, "unchanged": int(same.sum()), "pooled outputs": same.size},
        ce,
        changed or None,
        method="numeric (max pooling is not linear)",
    )


def _pool_input_shape(input_shape) -> tuple[int, ...]:
    """``(C, *spatial)`` as integers, or a TypeError saying what a pooling law takes."""
    if isinstance(input_shape, ConvSpec):
        raise TypeError(
            "input_shape must be a shape (C, *spatial): a pooling law takes input_shape, "
            f"kernel_size, stride and padding, not a ConvSpec; got {shown(input_shape)}"
        )
    try:
        return tuple(operator.index(v) for v in input_shape)
    except TypeError:
        raise TypeError(
            f"input_shape must be a tuple of integers (C, *spatial), got {shown(input_shape)}"
        ) from None


def avg_pool_spec(
    input_shape, kernel_size=2, stride=None, padding=0
) -> tuple[ConvSpec, np.ndarray]:
    """Average pooling as a depthwise convolution: ``(spec, constant kernel)``.

    Examples
    --------
    >>> spec, w = avg_pool_spec((2, 4, 4), 2)
    >>> spec.groups, w.shape, float(w[0, 0, 0, 0])
    (2, (2, 1, 2, 2), 0.25)
    """
    input_shape = _pool_input_shape(input_shape)
    c = input_shape[0]
    kernel = normalize_tuple(kernel_size, len(input_shape) - 1, "kernel_size")
    spec = ConvSpec(
        tuple(input_shape),
        c,
        kernel,
        stride=pool_stride(kernel, stride),
        padding=padding,
        groups=c,
        bias=False,
    )
    w = budget.full(spec.weight_shape, 1.0 / math.prod(spec.kernel_size))
    return spec, w


def avg_pool_equivariance(
    input_shape, kernel_size=2, stride=None, padding=0, *, shift=None, axis=0
) -> CheckResult:
    """Translation equivariance of average pooling (a convolution with a fixed kernel).

    Defaults to a shift of one stride (the output moves by one pooled cell).

    Examples
    --------
    >>> avg_pool_equivariance((1, 8), 2, shift=2).holds
    True
    >>> avg_pool_equivariance((1, 8), 2, padding=1, shift=2).failing_positions
    ((0, 4),)
    >>> avg_pool_equivariance((1, 8), 2, shift=1).holds
    False
    """
    spec, w = avg_pool_spec(input_shape, kernel_size, stride, padding)
    amount = spec.stride[axis] if shift is None else shift
    r = translation_equivariance(spec, amount, axis, weight=w)
    return CheckResult(
        "avg_pool_equivariance",
        r.holds,
        "avgpool(S x) = S' avgpool(x)",
        r.reason,
        r.evidence,
        r.counterexample,
        r.failing_positions,
        r.steps,
        r.method,
        identity=r.identity,
    )
