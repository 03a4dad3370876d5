"""The circulant side of a convolution: polyphase DFT blocks, their Grams, the circulant norm.

A circular layer whose output tiles its input is block-diagonalised by the DFT after a
polyphase split (Sedghi, Gupta & Long, ICLR 2019, extended to 1-/2-/3-D, groups, dilation,
stride and transposed layers); every other layer is a row selection of such a circulant
applied to its padded input. This module holds that structure: which circulant contains a
layer, its DFT blocks, and its norm computed from the Grams of the blocks' smaller side, in
float64 with a rounding margin so that the bounds built on it are guaranteed.

Examples
--------
>>> from convalgebra import ConvSpec
>>> fft_applies(ConvSpec((2, 8, 8), 2, 3, stride=2, padding=1, padding_mode="circular"))
True
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, cast

import numpy as np

from ..budget import require_work
from ..connectivity import axis_table, tap_weight_order
from ..errors import ConvAlgebraError, shown
from ..operators import check_weight
from ..spec import ConvSpec

__all__ = [
    "DENSE_MAX_BYTES",
    "GRAM_MAX_ITERATIONS",
    "FLOAT_EPS",
    "OverBudget",
    "within_budget",
    "rounding_margin",
    "per_axis",
    "float_weight",
    "tiling_phases",
    "fft_applies",
    "polyphase_taps",
    "frequency_blocks",
    "blocks_bytes",
    "svd_flops",
    "padding_norm",
    "containing_circulant",
    "circulant_norm",
]

#: Largest dense matrix or set of DFT blocks (bytes) :func:`singular_values` builds.
DENSE_MAX_BYTES = 2**30
#: Most Gram-iteration steps (beyond about 50 a float64 result no longer changes).
GRAM_MAX_ITERATIONS = 64
# memory for one chunk of frequencies of the Gram route
_CHUNK_BYTES = 256 * 2**20
#: float64 machine epsilon, the unit of the rounding margins.
FLOAT_EPS = float(np.finfo(np.float64).eps)


class OverBudget(ConvAlgebraError):
    """A refusal by the estimator, which :func:`upper_bounds` may turn into a skipped bound."""


def within_budget(check: Callable[..., None], *args: Any) -> None:
    """Run a ``budget.require_*`` check, its refusal marked as :class:`OverBudget`."""
    try:
        check(*args)
    except ConvAlgebraError as exc:
        raise OverBudget(str(exc)) from None


def rounding_margin(terms: int) -> float:
    """Relative rounding margin of a float64 result accumulated over about ``terms`` products.

    Sums, FFTs and the backward-stable LAPACK routines used here err by at most a small
    multiple of ``terms * eps`` relative to the norm; 64 times that is the margin by which
    guaranteed bounds are pushed outwards (upper bounds up, lower bounds down).
    """
    return 64 * FLOAT_EPS * (terms + 8)


def per_axis(value: Any) -> tuple[int, ...]:
    """A normalised per-axis field of a spec (typed as a tuple)."""
    return cast(tuple[int, ...], value)


def float_weight(spec: ConvSpec, weight: Any) -> np.ndarray:
    """The weight in float64 (or complex128), finite, unconnected channel-table entries zeroed.

    Its layout is that of the forward convolution (a transposed spec's weight already is).
    Every bound is computed in double precision whatever the weight's dtype.
    """
    if not isinstance(spec, ConvSpec):
        raise TypeError(f"spec must be a ConvSpec, got {type(spec).__name__} ({shown(spec)})")
    w = check_weight(spec, weight)
    w = w.astype(np.complex128 if w.dtype.kind == "c" else np.float64)
    finite = np.isfinite(w)
    if not finite.all():
        first = tuple(int(i) for i in np.argwhere(~finite)[0])
        raise ConvAlgebraError(
            f"weight must be finite, got {int((~finite).sum()):,} inf or nan entries "
            f"(the first at index {first}: {w[first]})"
        )
    if spec.channel_table is not None:
        mask = np.asarray(spec.channel_table, dtype=bool)
        w = w * mask.reshape(mask.shape + (1,) * spec.ndim)
    return w


def tiling_phases(spec: ConvSpec) -> tuple[int, ...] | None:
    """Per-axis phases ``gcd(stride, n)`` when the circular output tiles the input, else None."""
    if spec.padding_mode != "circular" or spec.tile is not None:
        return None
    n, out = spec.forward_input_spatial, spec.forward_output_spatial
    g = tuple(math.gcd(s, size) for s, size in zip(per_axis(spec.stride), n, strict=True))
    return g if all(o * gi == size for o, gi, size in zip(out, g, n, strict=True)) else None


def fft_applies(spec: ConvSpec) -> bool:
    """True when the FFT route gives every singular value of ``spec``.

    That is: circular padding, no tiles, and per axis the output size is
    ``n / gcd(stride, n)`` (the selected rows of the circulant are one phase of it).

    Examples
    --------
    >>> fft_applies(ConvSpec((2, 8, 8), 2, 3, stride=2, padding=1, padding_mode="circular"))
    True
    >>> fft_applies(ConvSpec((2, 8, 8), 2, 3, padding=1))
    False
    """
    return tiling_phases(spec) is not None


def polyphase_taps(
    spec: ConvSpec, sizes: tuple[int, ...], offsets: tuple[int, ...], phases: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Where each spatial tap lands in polyphase coordinates of a circulant on grid ``sizes``.

    Along each axis tap ``t`` reads ``p = (off + t*d) mod L``; with ``g`` phases that is
    polyphase position ``p // g`` (on the grid ``L / g``) of phase ``p mod g``.

    Returns
    -------
    (positions, phase)
        ``positions[axis, t]`` and the flat phase index of each tap (C order over ``phases``).

    Examples
    --------
    >>> spec = ConvSpec((1, 6), 1, 3, stride=2, padding=1, padding_mode="circular")
    >>> [a.tolist() for a in polyphase_taps(spec, (6,), (-1,), (2,))]
    [[[2, 0, 0]], [1, 0, 1]]
    """
    taps = np.indices(per_axis(spec.kernel_size)).reshape(spec.ndim, -1)
    pos = np.stack(
        [
            (off + t * d) % size
            for off, t, d, size in zip(offsets, taps, per_axis(spec.dilation), sizes, strict=True)
        ]
    )
    g = np.asarray(phases)[:, None]
    return pos // g, np.ravel_multi_index(tuple(pos % g), phases)


def frequency_blocks(
    spec: ConvSpec,
    w: np.ndarray,
    sizes: tuple[int, ...],
    offsets: tuple[int, ...],
    phases: tuple[int, ...],
) -> np.ndarray:
    """``(F, groups, C_out/g, C_in/g * prod(phases))`` DFT blocks of a circulant embedding.

    The forward layer reads ``x[(r*g + off + t*d) mod L]`` along each axis (grid ``L = sizes``);
    the blocks are those of the downsampled circulant ``D_g C`` in polyphase coordinates.
    Callers check :func:`blocks_bytes` first.
    """
    c_out, per = w.shape[0], w.shape[1]
    grid = tuple(size // g for size, g in zip(sizes, phases, strict=True))
    positions, phase = polyphase_taps(spec, sizes, offsets, phases)
    flat = np.ravel_multi_index(tuple(positions), grid) * math.prod(phases) + phase
    w_sp = w.reshape(c_out * per, -1)[:, tap_weight_order(spec)]
    embed = np.zeros((math.prod(sizes), c_out * per), dtype=w.dtype)
    np.add.at(embed, flat, w_sp.T)  # two taps can wrap onto one position: summed
    c = embed.T.reshape(c_out, per, *grid, math.prod(phases))
    hat = np.fft.fftn(c, axes=tuple(range(2, 2 + spec.ndim)))
    # (co, per, *grid, G) -> (*grid, co, per, G)
    hat = np.moveaxis(hat, (0, 1), (spec.ndim, spec.ndim + 1))
    return hat.reshape(-1, spec.groups, c_out // spec.groups, per * math.prod(phases))


def blocks_bytes(spec: ConvSpec, sizes: tuple[int, ...]) -> int:
    """Peak bytes of :func:`frequency_blocks` and one decomposition of its result.

    The real embedding (8 bytes per entry) and three complex copies (the FFT, its reordering,
    the decomposition's work array) of ``prod(sizes) * C_out * C_in/groups`` entries.
    """
    c_out, per = spec.weight_shape[0], spec.weight_shape[1]
    return math.prod(sizes) * c_out * per * 56


def svd_flops(rows: int, cols: int) -> float:
    """Floating-point operations of singular values alone (LAPACK gesdd, no vectors)."""
    small, large = min(rows, cols), max(rows, cols)
    return 4.0 * large * small * small


def _embedding(spec: ConvSpec) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Circulant sizes (multiples of the stride, beyond the padded input) and offsets."""
    sizes = tuple(
        -(-(size + before + after) // s) * s
        for size, (before, after), s in zip(
            spec.forward_input_spatial, spec.padding, per_axis(spec.stride), strict=True
        )
    )
    return sizes, (0,) * spec.ndim


def padding_norm(spec: ConvSpec) -> float:
    """``||P||_2`` of the map from the input to the padded input of the (forward) layer.

    Zero padding embeds (norm 1); circular, reflect and replicate copy border values, and
    ``P^T P`` is diagonal with the copy counts, so ``||P|| = prod_axis sqrt(max count)``.

    Examples
    --------
    >>> padding_norm(ConvSpec((1, 5), 1, 3, padding=2, padding_mode="replicate"))
    1.7320508075688772
    """
    norm = 1.0
    for size, pair in zip(spec.forward_input_spatial, spec.padding, strict=True):
        one = ConvSpec((1, size), 1, 1, padding=(pair,), padding_mode=spec.padding_mode)
        read = axis_table(one, 0)[:, 0]
        counts = np.bincount(read[read >= 0], minlength=size)
        norm *= math.sqrt(int(counts.max()))
    return norm


def containing_circulant(spec: ConvSpec) -> tuple[tuple, tuple, tuple, float, str]:
    """(grid, offsets, phases, factor, description) of a circulant that contains the layer.

    Circular padding: the layer's rows are rows of the circulant on the input grid itself
    (phases ``gcd(stride, n)``), each at most ``m = ceil(out / (n / g))`` times, so the factor
    is ``sqrt(m)`` per axis. Other modes: the zero-embedding grid of :func:`_embedding`,
    after the padding map ``P`` (factor ``||P||``).
    """
    if spec.padding_mode == "circular":
        sizes = spec.forward_input_spatial
        phases = tuple(math.gcd(s, n) for s, n in zip(per_axis(spec.stride), sizes, strict=True))
        repeats = tuple(
            -(-out // (n // g))
            for out, n, g in zip(spec.forward_output_spatial, sizes, phases, strict=True)
        )
        factor = math.sqrt(math.prod(repeats))
        return (
            sizes,
            tuple(-b for b, _ in spec.padding),
            phases,
            factor,
            f"rows of the stride-{phases} circulant on {sizes}, each used at most "
            f"{repeats} times (exact when the output tiles the input)",
        )
    sizes, offsets = _embedding(spec)
    pad = padding_norm(spec)
    return (
        sizes,
        offsets,
        per_axis(spec.stride),
        pad,
        f"||P||={pad:.6g} times the exact norm of the stride-{spec.stride} circulant on "
        f"{sizes} that contains the padded layer",
    )


# --------------------------------------------------------------------- the circulant's norm
def _delta_index(positions: np.ndarray, pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct offsets ``pos_t - pos_u`` over the tap pairs allowed by ``pairs`` (K x K bool),
    and the ``(K, K)`` table of their indices (-1 where a pair is not allowed)."""
    first, second = np.nonzero(pairs)
    deltas, index = np.unique(
        (positions[:, first] - positions[:, second]).T, axis=0, return_inverse=True
    )
    table = np.full(pairs.shape, -1, dtype=np.int64)
    table[first, second] = index.ravel()
    return deltas, table


def _output_side_terms(taps: np.ndarray, phase: np.ndarray, table: np.ndarray, n: int):
    """``A_delta = sum W_t W_u^H`` over same-phase pairs, half of them by one product per tap.

    The pair ``(u, t)`` contributes the conjugate transpose of ``(t, u)`` at the opposite
    offset, so only ``u >= t`` is multiplied.
    """
    g, k, m, per = taps.shape
    terms = np.zeros((n, g, m, m), dtype=taps.dtype)
    adjoint = np.ascontiguousarray(np.conj(taps).transpose(0, 3, 1, 2))  # (g, per, K, m)
    for t in range(k):
        later = np.flatnonzero((phase == phase[t]) & (np.arange(k) >= t))
        prod = taps[:, t] @ adjoint[:, :, later].reshape(g, per, -1)
        prod = prod.reshape(g, m, later.size, m)
        for j, u in enumerate(later):
            terms[table[t, u]] += prod[:, :, j]
            if u != t:
                terms[table[u, t]] += np.conj(np.swapaxes(prod[:, :, j], 1, 2))
    return terms


def _input_side_terms(taps: np.ndarray, phase: np.ndarray, table: np.ndarray, n: int, n_ph: int):
    """``A_delta`` of ``B^H B``: block ``(phase t, phase u)`` gets ``W_t^H W_u`` (all pairs)."""
    g, k, m, per = taps.shape
    cols = np.ascontiguousarray(np.swapaxes(taps, 1, 2)).reshape(g, m, k * per)
    prod = (np.conj(np.swapaxes(cols, 1, 2)) @ cols).reshape(g, k, per, k, per)
    terms = np.zeros((n, g, n_ph, per, n_ph, per), dtype=taps.dtype)
    for t in range(k):
        for u in range(k):
            # B^H B pairs conj(e(p_t)) e(p_u): offset p_u - p_t, i.e. the table at (u, t)
            terms[table[u, t], :, phase[t], :, phase[u]] += prod[:, t, :, u]
    return terms.reshape(n, g, n_ph * per, n_ph * per)


def _gram_terms(
    spec: ConvSpec,
    w: np.ndarray,
    sizes: tuple[int, ...],
    offsets: tuple[int, ...],
    phases: tuple[int, ...],
) -> tuple[np.ndarray, np.ndarray]:
    """Offsets ``delta`` (D, ndim) and matrices ``A`` (D, groups, s, s) of the block Grams.

    ``G(f) = sum_delta A_delta exp(-2 pi i <f, delta / grid>)`` is ``B(f) B(f)^H`` (output
    side, ``s = C_out/g``) or ``B(f)^H B(f)`` (input side, ``s = C_in/g * phases``), whichever
    is smaller, for the DFT block ``B(f) = sum_t W_t exp(-2 pi i <f, pos_t / grid>)`` placed
    in the column block of the phase of tap ``t``.
    """
    c_out, per = w.shape[0], w.shape[1]
    g, n_ph = spec.groups, math.prod(phases)
    m = c_out // g
    positions, phase = polyphase_taps(spec, sizes, offsets, phases)
    taps = np.moveaxis(w.reshape(g, m, per, -1)[..., tap_weight_order(spec)], -1, 1)
    taps = np.ascontiguousarray(taps)
    if m <= per * n_ph:
        deltas, table = _delta_index(positions, phase[:, None] == phase[None, :])
        return deltas, _output_side_terms(taps, phase, table, len(deltas))
    deltas, table = _delta_index(positions, np.ones((phase.size,) * 2, dtype=bool))
    return deltas, _input_side_terms(taps, phase, table, len(deltas), n_ph)


def _gram_work(spec: ConvSpec, sizes: tuple[int, ...], phases: tuple[int, ...]) -> tuple:
    """(frequencies, side, flops) of :func:`circulant_norm`, from the spec alone."""
    c_out, per = spec.weight_shape[0], spec.weight_shape[1]
    g, n_ph, k = spec.groups, math.prod(phases), math.prod(per_axis(spec.kernel_size))
    grid = [size // ph for size, ph in zip(sizes, phases, strict=True)]
    grid[-1] = grid[-1] // 2 + 1  # real weights: the other half are conjugates
    freqs = math.prod(grid)
    side = min(c_out // g, per * n_ph)
    offsets = math.prod(2 * kk - 1 for kk in per_axis(spec.kernel_size))
    flops = g * (
        k * k * max(c_out // g, per) * side * side / max(1, n_ph)
        + freqs * (4.0 * offsets * side * side + 2.0 * side**3)
    )
    return freqs, side, flops


def _frequency_chunks(grid: np.ndarray, half: bool, per_frequency: int):
    """Integer frequency vectors ``(ndim, F_chunk)`` in chunks of bounded memory."""
    count = grid.copy()
    if half:
        count[-1] = count[-1] // 2 + 1
    step = max(1, _CHUNK_BYTES // max(1, per_frequency))
    total = int(np.prod(count))
    for start in range(0, total, step):
        yield np.stack(np.unravel_index(np.arange(start, min(start + step, total)), count))


def _chunk_grams(freqs: np.ndarray, grid: np.ndarray, deltas: np.ndarray, terms: np.ndarray):
    """``G(f)`` for a chunk of frequencies, ``(F_chunk * groups, s, s)`` complex."""
    # exact integer phases: (f * delta mod N) / N per axis, summed
    turns = sum((np.outer(freqs[a], deltas[:, a]) % grid[a]) / grid[a] for a in range(len(grid)))
    angle = 2 * np.pi * turns
    flat = terms.reshape(len(deltas), -1)
    if flat.dtype.kind == "c":
        gram = (np.cos(angle) - 1j * np.sin(angle)) @ flat
    else:
        gram = np.empty((freqs.shape[1], flat.shape[1]), dtype=np.complex128)
        gram.real, gram.imag = np.cos(angle) @ flat, -(np.sin(angle) @ flat)
    return gram.reshape(-1, *terms.shape[-2:])


def _largest_eigenvalue(grams: np.ndarray, known: float, slack: float) -> float:
    """``max(known, max_f lambda_max(G_f))`` up to the factor ``1 + slack``, proven.

    The few Grams that two power steps rank highest are decomposed (LAPACK ``heevd``); every
    other one is certified by a Cholesky factorisation of ``mu I - G_f`` with
    ``mu = (1 + slack) * top`` (success proves ``lambda_max <= mu``), and decomposed only if
    that fails. Cholesky costs a fraction of an eigendecomposition.
    """
    from scipy.linalg import lapack

    s = grams.shape[-1]
    if s <= 16 or len(grams) <= 2:
        return max(known, float(np.linalg.eigvalsh(grams).max(initial=0.0)))
    # Rayleigh quotients after two power steps: lower bounds that rank the frequencies
    v = grams @ (1 + np.linspace(0, 1, s))[:, None]
    norms = np.linalg.norm(v, axis=(1, 2))
    rank = np.linalg.norm(grams @ v, axis=(1, 2)) / np.where(norms > 0, norms, 1.0)
    order = np.argsort(rank)[::-1][:2]
    order = order[rank[order] > known]
    top = max(known, float(np.linalg.eigvalsh(grams[order]).max(initial=0.0)))
    done = np.zeros(len(grams), dtype=bool)
    done[order] = True
    for i in np.flatnonzero(~done):
        mu = top * (1 + slack)
        shifted = -grams[i]
        shifted[np.diag_indices(s)] += mu
        _, info = lapack.zpotrf(shifted, lower=False, overwrite_a=True, clean=False)
        if info != 0:
            top = max(top, float(np.linalg.eigvalsh(grams[i]).max(initial=0.0)))
    return top


def circulant_norm(
    spec: ConvSpec,
    w: np.ndarray,
    sizes: tuple[int, ...],
    offsets: tuple[int, ...],
    phases: tuple[int, ...],
    max_flops: int,
) -> tuple[float, float]:
    """Proven ``(lower, upper)`` on the norm of the circulant ``D_g C`` (rounding margins).

    Every frequency's smaller-side Gram is evaluated from the tap-pair products (a short
    trigonometric sum, no FFT of the full grid), a chunk of frequencies at a time in bounded
    memory; real weights need half the frequencies (``G(-f)`` is the conjugate of ``G(f)``).
    """
    freqs, side, flops = _gram_work(spec, sizes, phases)
    within_budget(
        require_work,
        f"the circulant norm of {spec.describe()} ({freqs:,} frequencies, Gram {side} x {side})",
        flops,
        max_flops,
        "use operator_norm(spec, weight, method='bound') (the taps bound), smaller sizes, "
        "or raise max_flops=",
    )
    deltas, terms = _gram_terms(spec, w, sizes, offsets, phases)
    grid = np.array([size // ph for size, ph in zip(sizes, phases, strict=True)])
    margin = rounding_margin(
        side + len(deltas) + math.prod(per_axis(spec.kernel_size)) * max(w.shape[:2])
    )
    if len(deltas) == 1:  # one offset (e.g. a 1x1 kernel): the same Gram at every frequency
        grid = np.ones_like(grid)
    top = 0.0
    for chunk in _frequency_chunks(grid, w.dtype.kind != "c", terms[0].size * 48):
        top = _largest_eigenvalue(_chunk_grams(chunk, grid, deltas, terms), top, margin)
    return math.sqrt(max(0.0, top * (1 - margin))), math.sqrt(top * (1 + margin) ** 2)
