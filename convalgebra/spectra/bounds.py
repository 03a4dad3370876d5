"""Guaranteed upper bounds on a convolution's operator norm, each with its guarantee.

The circulant that contains the layer (exact for a circular layer that tiles), the triangle
inequality over kernel taps, and on request the Gram iteration; all in float64, rounded
upwards by their rounding margins.

Examples
--------
>>> from convalgebra import ConvSpec
>>> spec = ConvSpec((1, 6), 1, 3, padding=1)
>>> [b.name for b in upper_bounds(spec, [[[1.0, 2.0, 1.0]]])]
['circulant', 'taps']
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..budget import DEFAULT_MAX_FLOPS, check_iterations, check_limit, require_memory, require_work
from ..errors import ConvAlgebraError, shown
from ..spec import ConvSpec
from .circulant import (
    DENSE_MAX_BYTES,
    FLOAT_EPS,
    GRAM_MAX_ITERATIONS,
    OverBudget,
    blocks_bytes,
    circulant_norm,
    containing_circulant,
    float_weight,
    frequency_blocks,
    padding_norm,
    per_axis,
    rounding_margin,
    within_budget,
)

__all__ = ["Bound", "upper_bounds", "gram_iteration_bound"]


@dataclass(frozen=True)
class Bound:
    """One number about ``||M||_2`` and what it guarantees.

    ``name`` is the method, ``value`` the number, ``guarantee`` one sentence saying why
    ``||M||_2 <= value`` (rounded upwards by the float64 rounding margin).
    """

    name: str
    value: float
    guarantee: str


def _gram_bound(blocks: np.ndarray, iterations: int) -> float:
    """``max_f ||G_t(f)||_F^(1/2^t)``, ``G_{t+1} = G_t^H G_t`` (rescaled in logs).

    Starts from the smaller side of each block (``B B^H`` when ``B`` is wide): same value,
    smaller products.
    """
    g = blocks.reshape(-1, *blocks.shape[-2:])
    if g.shape[1] < g.shape[2]:
        g = np.conj(np.swapaxes(g, 1, 2))
    g = np.ascontiguousarray(g)
    norms = np.linalg.norm(g, axis=(1, 2))
    if not norms.max(initial=0.0) > 0:
        return 0.0
    live = norms > 0
    g, log_c = g[live] / norms[live, None, None], np.log(norms[live])
    for _ in range(iterations):
        g = np.ascontiguousarray(np.conj(np.swapaxes(g, 1, 2))) @ g
        f = np.linalg.norm(g, axis=(1, 2))
        g, log_c = g / f[:, None, None], 2 * log_c + np.log(f)
    return float(np.exp(log_c.max() / 2.0**iterations))


def _tap_bound(spec: ConvSpec, w: np.ndarray) -> float:
    """``max_group sum_t ||W_t||_2``, each norm from the smaller-side Gram of the tap."""
    c_out, per = w.shape[0], w.shape[1]
    g = spec.groups
    taps = np.ascontiguousarray(np.moveaxis(w.reshape(g, c_out // g, per, -1), -1, 1))
    if taps.shape[2] > taps.shape[3]:
        taps = np.ascontiguousarray(np.conj(np.swapaxes(taps, 2, 3)))
    grams = taps @ np.conj(np.swapaxes(taps, 2, 3))
    per_tap = np.sqrt(np.maximum(np.linalg.eigvalsh(grams).max(axis=-1), 0.0))  # (g, K)
    return float(per_tap.sum(axis=1).max())


def gram_iteration_bound(spec: ConvSpec, w: np.ndarray, iterations: int, max_flops: int) -> Bound:
    sizes, offsets, phases, factor, _ = containing_circulant(spec)
    c_out, per = w.shape[0], w.shape[1]
    side = min(c_out // spec.groups, per * math.prod(phases))
    freqs = math.prod(sizes) // math.prod(phases) * spec.groups
    what = f"the Gram iteration on {spec.describe()} ({freqs:,} DFT blocks)"
    within_budget(
        require_memory, what, blocks_bytes(spec, sizes), DENSE_MAX_BYTES, "use method='bound'"
    )
    flops = freqs * 8.0 * side * side * (max(c_out, per) + iterations * side)
    within_budget(require_work, what, flops, max_flops, "use method='bound', or raise max_flops=")
    blocks = frequency_blocks(spec, w, sizes, offsets, phases)
    value = factor * _gram_bound(blocks, iterations)
    return Bound(
        "gram",
        value
        * (1 + rounding_margin(side + max(c_out, per) * math.prod(per_axis(spec.kernel_size)))),
        f"upper bound: Gram iteration ({iterations} steps, Delattre et al. 2023) on the DFT "
        "blocks of the circulant bound, never below it",
    )


def upper_bounds(
    spec: ConvSpec,
    weight: Any,
    *,
    gram_iterations: int | None = None,
    max_flops: int = DEFAULT_MAX_FLOPS,
    over_budget: str = "raise",
) -> tuple[Bound, ...]:
    """Guaranteed upper bounds on ``||M||_2``, each labelled with its guarantee.

    Parameters
    ----------
    spec : ConvSpec
        Any padding mode, stride, dilation, groups, channel table; transposed layers have the
        bounds of their forward. Tiled layers have no such bounds (refused).
    weight : array_like of shape ``spec.weight_shape``
        Any real or complex dtype; the bounds are computed in float64.
    gram_iterations : int, optional
        Also the Gram-iteration bound with this many steps (at most 64). It is never below the
        circulant bound (it bounds the same DFT blocks), so it is computed only when asked for.
    max_flops : int, default ``budget.DEFAULT_MAX_FLOPS``
        Refuse the circulant bound above this estimated work (the taps bound is then the way).
    over_budget : {"raise", "skip"}
        ``"skip"``: leave out a circulant or Gram bound over ``max_flops`` instead of refusing.

    Returns
    -------
    tuple of Bound
        ``circulant`` and ``taps`` (and ``gram`` when asked), each rounded upwards by its
        float64 rounding margin, so never below the exact norm.

    Notes
    -----
    Every layer is ``M = S (D_s C_L) E P``: ``P`` pads the input (``||P||`` from
    :func:`padding_norm`), ``E`` embeds it with zeros into a grid ``L`` of multiples of the
    stride beyond the padded size (no tap wraps around), ``C_L`` is the stride-1 circular
    correlation on that grid, ``D_s`` keeps every ``s``-th row and ``S`` the rows the layer
    has. ``||S|| = ||E|| = 1``, so ``||M|| <= ||P|| ||D_s C_L||``, computed exactly from the
    DFT blocks ``B(f)``: ``||D_s C_L|| = max_f sqrt(lambda_max(B(f) B(f)^H))``, each Gram a
    trigonometric sum of the products ``W_t W_u^H`` of tap pairs. A circular layer needs no
    embedding: its rows are rows of ``D_g C_n`` (``g = gcd(s, n)``) used at most ``m`` times
    each, so ``||M|| <= sqrt(m) ||D_g C_n||`` (equality when tiling). The Gram iteration
    (Delattre, Barthélemy, Araujo & Allauzen, ICML 2023) bounds each block by
    ``||G_t||_F^{1/2^t}`` with ``G_{t+1} = G_t^H G_t``; the tap bound is the triangle
    inequality over taps, ``||P|| max_group sum_t ||W_t||_2``.

    Examples
    --------
    >>> spec = ConvSpec((1, 6), 1, 3, padding=1)
    >>> [(b.name, round(b.value, 6)) for b in upper_bounds(spec, [[[1.0, 2.0, 1.0]]])]
    [('circulant', 4.0), ('taps', 4.0)]
    >>> upper_bounds(spec, [[[1.0, 2.0, 1.0]]], gram_iterations=4)[-1].name
    'gram'
    """
    w = float_weight(spec, weight)
    if spec.tile is not None:
        raise ConvAlgebraError(
            f"upper bounds need a shared kernel; {spec.describe()} is tiled "
            "(use operator_norm(spec, weight, method='exact'))"
        )
    max_flops = check_limit("max_flops", max_flops)
    if over_budget not in ("raise", "skip"):
        raise ConvAlgebraError(f"over_budget must be 'raise' or 'skip', got {shown(over_budget)}")
    if gram_iterations is not None:
        check_iterations("gram_iterations", gram_iterations, GRAM_MAX_ITERATIONS)
    made: list[Callable[[], Bound]] = [lambda: _circulant_bound(spec, w, max_flops)]
    made.append(lambda: _taps_bound(spec, w))
    if gram_iterations is not None:
        made.append(lambda: gram_iteration_bound(spec, w, gram_iterations, max_flops))
    bounds = []
    for make in made:
        try:
            bounds.append(make())
        except OverBudget:
            if over_budget == "raise":
                raise
    return tuple(bounds)


def _circulant_bound(spec: ConvSpec, w: np.ndarray, max_flops: int) -> Bound:
    sizes, offsets, phases, factor, how = containing_circulant(spec)
    _, upper = circulant_norm(spec, w, sizes, offsets, phases, max_flops)
    return Bound("circulant", factor * upper * (1 + 4 * FLOAT_EPS), f"upper bound: {how}")


def _taps_bound(spec: ConvSpec, w: np.ndarray) -> Bound:
    pad = padding_norm(spec)
    terms = math.prod(per_axis(spec.kernel_size)) + max(w.shape[:2])
    return Bound(
        "taps",
        pad * _tap_bound(spec, w) * (1 + rounding_margin(terms)),
        f"upper bound: ||P||={pad:.6g} times the sum over kernel taps of ||W_t||_2 "
        "(triangle inequality)",
    )
