"""Singular values and operator norms of convolution layers, from their structure.

A circular layer whose output grid tiles its input (``out = n / gcd(stride, n)`` per axis) is
block-diagonalised by the DFT: after splitting the input into its polyphase components, each
frequency contributes the singular values of one small ``C_out x (C_in/groups * phases)``
matrix (Sedghi, Gupta & Long, ICLR 2019, extended here to 1-/2-/3-D, groups, dilation, stride
and transposed layers). Every other layer is a row selection of such a circulant applied to its
padded input, which gives guaranteed upper bounds on its norm; a Rayleigh quotient from Lanczos
on the matrix-free operator gives a guaranteed lower bound, so the norm is returned as a
certified interval, closed when the two ends meet.

Examples
--------
>>> import numpy as np
>>> from convalgebra import ConvSpec
>>> spec = ConvSpec((1, 4), 1, 3, padding=1, padding_mode="circular")
>>> np.round(singular_values(spec, [[[1.0, 2.0, 1.0]]]), 6).tolist()
[4.0, 2.0, 2.0, 0.0]
>>> norm = operator_norm(spec, [[[1.0, 2.0, 1.0]]])
>>> round(float(norm), 12), norm.exact, norm.method
(4.0, True, 'fft')
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
from scipy.sparse.linalg import ArpackError, ArpackNoConvergence, LinearOperator, eigsh

from .budget import (
    DEFAULT_MAX_FLOPS,
    MAX_ITERATIONS,
    check_iterations,
    check_limit,
    require_memory,
    require_work,
)
from .connectivity import axis_table, tap_weight_order
from .errors import ConvAlgebraError, shown
from .operators import check_weight, conv_matrix, conv_operator
from .spec import ConvSpec

__all__ = [
    "DENSE_MAX_BYTES",
    "LANCZOS_TOL",
    "GRAM_MAX_ITERATIONS",
    "Bound",
    "OperatorNorm",
    "singular_values",
    "operator_norm",
    "upper_bounds",
    "fft_applies",
    "padding_norm",
    "polyphase_taps",
]

#: Largest dense matrix or set of DFT blocks (bytes) :func:`singular_values` builds.
DENSE_MAX_BYTES = 2**30
#: Relative tolerance on the eigenvalues ``sigma^2`` of the Gram operator, handed to ARPACK.
LANCZOS_TOL = 1e-10
#: Most Gram-iteration steps (beyond about 50 a float64 result no longer changes).
GRAM_MAX_ITERATIONS = 64
# below this many rows/columns a dense SVD is cheaper and more robust than ARPACK
_DENSE_BELOW = 8
# memory for one chunk of frequencies of the Gram route
_CHUNK_BYTES = 256 * 2**20
_EPS = float(np.finfo(np.float64).eps)


class _OverBudget(ConvAlgebraError):
    """A refusal by the estimator, which :func:`upper_bounds` may turn into a skipped bound."""


def _budget(check: Callable[..., None], *args: Any) -> None:
    """Run a ``budget.require_*`` check, its refusal marked as :class:`_OverBudget`."""
    try:
        check(*args)
    except ConvAlgebraError as exc:
        raise _OverBudget(str(exc)) from None


def _margin(terms: int) -> float:
    """Relative rounding margin of a float64 result accumulated over about ``terms`` products.

    Sums, FFTs and the backward-stable LAPACK routines used here err by at most a small
    multiple of ``terms * eps`` relative to the norm; 64 times that is the margin by which
    guaranteed bounds are pushed outwards (upper bounds up, lower bounds down).
    """
    return 64 * _EPS * (terms + 8)


@dataclass(frozen=True)
class Bound:
    """One number about ``||M||_2`` and what it guarantees.

    ``name`` is the method, ``value`` the number, ``guarantee`` one sentence saying why
    ``||M||_2 <= value`` (rounded upwards by the float64 rounding margin).
    """

    name: str
    value: float
    guarantee: str


class OperatorNorm(float):
    """``||M||_2`` as a float, with the certified interval and the evidence behind it.

    Attributes
    ----------
    method : str
        How the value was found: ``"fft"``, ``"dense"``, ``"lanczos"``, or for the bounds
        ``"circulant"``, ``"taps"``, ``"gram"``, ``"frobenius"``.
    lower, upper : float or None
        Proven ``lower <= ||M||_2 <= upper`` (rounding margins included); ``lower`` is None for
        a bound alone.
    exact : bool
        True when the interval is closed: a direct computation (DFT blocks, dense SVD) whose
        interval is its rounding margin, or ``upper - lower <= tol * upper``.
    bounds : tuple of Bound
        The guaranteed upper bounds computed alongside.
    residual : float or None
        Lanczos only: ``||M^H M v - s^2 v||`` for the unit vector ``v`` found; a singular value
        lies within it (Weyl), not necessarily the largest.
    products : int
        Operator products (Lanczos) spent.

    The float is the exact value when ``exact``; otherwise the Rayleigh quotient (the lower
    end, the best estimate) or, for a bound alone, the bound.
    """

    method: str
    lower: float | None
    upper: float
    exact: bool
    bounds: tuple[Bound, ...]
    residual: float | None
    products: int

    def __new__(
        cls,
        value: float,
        method: str,
        bounds: tuple[Bound, ...] = (),
        *,
        lower: float | None = None,
        upper: float | None = None,
        exact: bool = False,
        residual: float | None = None,
        products: int = 0,
    ) -> OperatorNorm:
        obj = super().__new__(cls, value)
        obj.method, obj.bounds, obj.exact = method, tuple(bounds), bool(exact)
        obj.lower, obj.upper = lower, float(value if upper is None else upper)
        obj.residual, obj.products = residual, products
        return obj

    @property
    def interval(self) -> tuple[float, float] | None:
        """``(lower, upper)``: the norm is proven to lie in it (None for a bound alone)."""
        return None if self.lower is None else (self.lower, self.upper)

    def report(self) -> str:
        """One line per number: the value, the interval, the bounds and their guarantees."""
        if self.lower is None:
            head = f"||M||_2 <= {self.upper:.10g} ({self.method} bound)"
        else:
            kind = "exact" if self.exact else "interval, not closed to the tolerance"
            width = (self.upper - self.lower) / self.upper if self.upper > 0 else 0.0
            head = (
                f"||M||_2 = {float(self):.10g} ({self.method}, {kind}): proven in "
                f"[{self.lower:.10g}, {self.upper:.10g}] (relative width {width:.2g})"
            )
        lines = [head]
        if self.residual is not None:
            lines.append(f"  residual {self.residual:.3g} after {self.products} products")
        lines += [f"  <= {b.value:.10g}  {b.name}: {b.guarantee}" for b in self.bounds]
        return "\n".join(lines)


# ----------------------------------------------------------------------------- helpers
def _ints(value: Any) -> tuple[int, ...]:
    """A normalised per-axis field of a spec (typed as a tuple)."""
    return cast(tuple[int, ...], value)


def _float_weight(spec: ConvSpec, weight: Any) -> np.ndarray:
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


def _phases(spec: ConvSpec) -> tuple[int, ...] | None:
    """Per-axis phases ``gcd(stride, n)`` when the circular output tiles the input, else None."""
    if spec.padding_mode != "circular" or spec.tile is not None:
        return None
    n, out = spec.forward_input_spatial, spec.forward_output_spatial
    g = tuple(math.gcd(s, size) for s, size in zip(_ints(spec.stride), n, strict=True))
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
    return _phases(spec) is not None


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
    taps = np.indices(_ints(spec.kernel_size)).reshape(spec.ndim, -1)
    pos = np.stack(
        [
            (off + t * d) % size
            for off, t, d, size in zip(offsets, taps, _ints(spec.dilation), sizes, strict=True)
        ]
    )
    g = np.asarray(phases)[:, None]
    return pos // g, np.ravel_multi_index(tuple(pos % g), phases)


def _frequency_blocks(
    spec: ConvSpec,
    w: np.ndarray,
    sizes: tuple[int, ...],
    offsets: tuple[int, ...],
    phases: tuple[int, ...],
) -> np.ndarray:
    """``(F, groups, C_out/g, C_in/g * prod(phases))`` DFT blocks of a circulant embedding.

    The forward layer reads ``x[(r*g + off + t*d) mod L]`` along each axis (grid ``L = sizes``);
    the blocks are those of the downsampled circulant ``D_g C`` in polyphase coordinates.
    Callers check :func:`_blocks_bytes` first.
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


def _blocks_bytes(spec: ConvSpec, sizes: tuple[int, ...]) -> int:
    """Peak bytes of :func:`_frequency_blocks` and one decomposition of its result.

    The real embedding (8 bytes per entry) and three complex copies (the FFT, its reordering,
    the decomposition's work array) of ``prod(sizes) * C_out * C_in/groups`` entries.
    """
    c_out, per = spec.weight_shape[0], spec.weight_shape[1]
    return math.prod(sizes) * c_out * per * 56


def _svd_flops(rows: int, cols: int) -> float:
    """Floating-point operations of singular values alone (LAPACK gesdd, no vectors)."""
    small, large = min(rows, cols), max(rows, cols)
    return 4.0 * large * small * small


def _fft_singular_values(
    spec: ConvSpec, w: np.ndarray, phases: tuple[int, ...], max_bytes: int, max_flops: int
) -> np.ndarray:
    sizes = spec.forward_input_spatial
    c_out, per = w.shape[0], w.shape[1]
    m, n = c_out // spec.groups, per * math.prod(phases)
    blocks = math.prod(sizes) // math.prod(phases) * spec.groups
    way_out = "operator_norm(spec, weight) gives the largest alone in bounded memory"
    what = f"all singular values of {spec.describe()} by the DFT ({blocks:,} blocks {m} x {n})"
    require_memory(what, _blocks_bytes(spec, sizes), max_bytes, way_out + ", or raise max_bytes=")
    require_work(what, blocks * _svd_flops(m, n), max_flops, way_out + ", or raise max_flops=")
    offsets = tuple(-before for before, _ in spec.padding)
    hat = _frequency_blocks(spec, w, sizes, offsets, phases)
    values = np.linalg.svd(hat, compute_uv=False).ravel()
    return np.sort(values)[::-1]


def _embedding(spec: ConvSpec) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Circulant sizes (multiples of the stride, beyond the padded input) and offsets."""
    sizes = tuple(
        -(-(size + before + after) // s) * s
        for size, (before, after), s in zip(
            spec.forward_input_spatial, spec.padding, _ints(spec.stride), strict=True
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


def _containing_circulant(spec: ConvSpec) -> tuple[tuple, tuple, tuple, float, str]:
    """(grid, offsets, phases, factor, description) of a circulant that contains the layer.

    Circular padding: the layer's rows are rows of the circulant on the input grid itself
    (phases ``gcd(stride, n)``), each at most ``m = ceil(out / (n / g))`` times, so the factor
    is ``sqrt(m)`` per axis. Other modes: the zero-embedding grid of :func:`_embedding`,
    after the padding map ``P`` (factor ``||P||``).
    """
    if spec.padding_mode == "circular":
        sizes = spec.forward_input_spatial
        phases = tuple(math.gcd(s, n) for s, n in zip(_ints(spec.stride), sizes, strict=True))
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
        _ints(spec.stride),
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
    """(frequencies, side, flops) of :func:`_circulant_norm`, from the spec alone."""
    c_out, per = spec.weight_shape[0], spec.weight_shape[1]
    g, n_ph, k = spec.groups, math.prod(phases), math.prod(_ints(spec.kernel_size))
    grid = [size // ph for size, ph in zip(sizes, phases, strict=True)]
    grid[-1] = grid[-1] // 2 + 1  # real weights: the other half are conjugates
    freqs = math.prod(grid)
    side = min(c_out // g, per * n_ph)
    offsets = math.prod(2 * kk - 1 for kk in _ints(spec.kernel_size))
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


def _circulant_norm(
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
    _budget(
        require_work,
        f"the circulant norm of {spec.describe()} ({freqs:,} frequencies, Gram {side} x {side})",
        flops,
        max_flops,
        "use the taps bound (operator_norm(spec, weight, method='bound')), smaller sizes, "
        "or raise max_flops=",
    )
    deltas, terms = _gram_terms(spec, w, sizes, offsets, phases)
    grid = np.array([size // ph for size, ph in zip(sizes, phases, strict=True)])
    margin = _margin(side + len(deltas) + math.prod(_ints(spec.kernel_size)) * max(w.shape[:2]))
    if len(deltas) == 1:  # one offset (e.g. a 1x1 kernel): the same Gram at every frequency
        grid = np.ones_like(grid)
    top = 0.0
    for chunk in _frequency_chunks(grid, w.dtype.kind != "c", terms[0].size * 48):
        top = _largest_eigenvalue(_chunk_grams(chunk, grid, deltas, terms), top, margin)
    return math.sqrt(max(0.0, top * (1 - margin))), math.sqrt(top * (1 + margin) ** 2)


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


def _gram_iteration_bound(spec: ConvSpec, w: np.ndarray, iterations: int, max_flops: int) -> Bound:
    sizes, offsets, phases, factor, _ = _containing_circulant(spec)
    c_out, per = w.shape[0], w.shape[1]
    side = min(c_out // spec.groups, per * math.prod(phases))
    freqs = math.prod(sizes) // math.prod(phases) * spec.groups
    what = f"the Gram iteration on {spec.describe()} ({freqs:,} DFT blocks)"
    _budget(require_memory, what, _blocks_bytes(spec, sizes), DENSE_MAX_BYTES, "use method='bound'")
    flops = freqs * 8.0 * side * side * (max(c_out, per) + iterations * side)
    _budget(require_work, what, flops, max_flops, "use method='bound', or raise max_flops=")
    blocks = _frequency_blocks(spec, w, sizes, offsets, phases)
    value = factor * _gram_bound(blocks, iterations)
    return Bound(
        "gram",
        value * (1 + _margin(side + max(c_out, per) * math.prod(_ints(spec.kernel_size)))),
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
    w = _float_weight(spec, weight)
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
        made.append(lambda: _gram_iteration_bound(spec, w, gram_iterations, max_flops))
    bounds = []
    for make in made:
        try:
            bounds.append(make())
        except _OverBudget:
            if over_budget == "raise":
                raise
    return tuple(bounds)


def _circulant_bound(spec: ConvSpec, w: np.ndarray, max_flops: int) -> Bound:
    sizes, offsets, phases, factor, how = _containing_circulant(spec)
    _, upper = _circulant_norm(spec, w, sizes, offsets, phases, max_flops)
    return Bound("circulant", factor * upper * (1 + 4 * _EPS), f"upper bound: {how}")


def _taps_bound(spec: ConvSpec, w: np.ndarray) -> Bound:
    pad = padding_norm(spec)
    terms = math.prod(_ints(spec.kernel_size)) + max(w.shape[:2])
    return Bound(
        "taps",
        pad * _tap_bound(spec, w) * (1 + _margin(terms)),
        f"upper bound: ||P||={pad:.6g} times the sum over kernel taps of ||W_t||_2 "
        "(triangle inequality)",
    )


# ----------------------------------------------------------------------------- options
def _dense_check(spec: ConvSpec, max_bytes: int, max_flops: int, failure: Exception | None) -> None:
    """Refuse a dense SVD over budget (naming the size and what to do instead)."""
    rows, cols = math.prod(spec.output_shape), math.prod(spec.input_shape)
    needed = rows * cols * 8
    if needed > max_bytes and failure is not None:
        raise ConvAlgebraError(
            f"Lanczos failed on {spec.describe()} ({failure}) and its dense "
            f"{rows:,} x {cols:,} matrix exceeds max_bytes={max_bytes:,}"
        )
    way_out = "pass k=... for the k largest (Lanczos on the matrix-free operator)" + (
        ""
        if spec.padding_mode == "circular"
        else ", or use padding_mode='circular' for the FFT route"
    )
    if needed > max_bytes:
        raise ConvAlgebraError(
            f"all singular values of {spec.describe()} need its dense {rows:,} x {cols:,} "
            f"matrix, about {needed / 2**30:.2f} GiB (max_bytes={max_bytes:,}); {way_out}"
        )
    require_work(
        f"the dense SVD of the {rows:,} x {cols:,} matrix of {spec.describe()}",
        _svd_flops(rows, cols),
        max_flops,
        way_out + ", or raise max_flops=",
    )


def _check_options(tol: Any, max_bytes: Any, max_flops: Any = DEFAULT_MAX_FLOPS) -> None:
    """``tol`` a real in [0, 1) (0: machine precision), positive integer limits."""
    if isinstance(tol, (bool, np.bool_)) or not isinstance(tol, (int, float, np.floating)):
        raise TypeError(f"tol must be a real number >= 0, got {shown(tol)}")
    if not 0 <= tol < 1:
        raise ConvAlgebraError(f"tol must be in [0, 1) (a relative tolerance), got {tol!r}")
    check_limit("max_bytes", max_bytes)
    check_limit("max_flops", max_flops)


def _check_backend(backend: Any) -> None:
    if backend not in ("numpy", "torch"):
        raise ConvAlgebraError(f"backend must be 'numpy' or 'torch', got {shown(backend)}")


def _check_k(k: Any, limit: int) -> int | None:
    if k is None:
        return None
    if isinstance(k, (bool, np.bool_)) or not hasattr(type(k), "__index__"):
        raise TypeError(f"k must be a positive integer or None, got {shown(k)}")
    if not 1 <= k <= limit:
        raise ConvAlgebraError(f"k must be between 1 and min(matrix shape)={limit}, got {k!r}")
    return int(k)


# ----------------------------------------------------------------------------- Lanczos
class _Gram:
    """The smaller-side Gram operator of ``M`` (``M^H M`` or ``M M^H``), counting products."""

    def __init__(self, op: LinearOperator, callback: Callable[[int], Any] | None) -> None:
        self.a = op if op.shape[0] >= op.shape[1] else op.H  # singular values of M and M^H agree
        self.callback, self.products = callback, 0
        n = self.a.shape[1]
        self.op = LinearOperator((n, n), matvec=self._apply, dtype=op.dtype)

    def _apply(self, v: np.ndarray) -> np.ndarray:
        out = self.a.rmatvec(self.a.matvec(np.ravel(v)))
        self.products += 1
        if self.callback is not None:
            self.callback(self.products)
        return out

    def start(self) -> np.ndarray:
        rng = np.random.default_rng(0)
        v0 = rng.standard_normal(self.a.shape[1])
        if self.a.dtype.kind == "c":
            v0 = v0 + 1j * rng.standard_normal(v0.size)
        return v0


def _lanczos(
    gram: _Gram, k: int, tol: float, maxiter: int | None
) -> tuple[np.ndarray, np.ndarray, bool]:
    """The ``k`` largest singular values (descending), unit vectors, and whether converged.

    ``tol`` goes to ARPACK unchanged: the relative accuracy of the eigenvalues ``sigma^2``.
    The values returned are the Rayleigh quotients ``||M v||`` of the vectors found.
    """
    try:
        _, vecs = eigsh(gram.op, k=k, which="LA", tol=tol, v0=gram.start(), maxiter=maxiter)
        converged = True
    except ArpackNoConvergence as exc:
        vecs, converged = exc.eigenvectors, False
        if vecs is None or vecs.shape[1] < k:
            vecs = gram.start()[:, None]
    vecs = vecs / np.linalg.norm(vecs, axis=0)
    values = np.array([np.linalg.norm(gram.a.matvec(vecs[:, i])) for i in range(vecs.shape[1])])
    order = np.argsort(values)[::-1]
    return values[order], vecs[:, order], converged


# ----------------------------------------------------------------------------- public
def singular_values(
    spec: ConvSpec,
    weight: Any,
    k: int | None = None,
    *,
    max_bytes: int = DENSE_MAX_BYTES,
    max_flops: int = DEFAULT_MAX_FLOPS,
    tol: float = LANCZOS_TOL,
    maxiter: int | None = None,
    callback: Callable[[int], Any] | None = None,
    backend: str = "numpy",
) -> np.ndarray:
    """All singular values of the layer's matrix (or the ``k`` largest), descending.

    Parameters
    ----------
    spec : ConvSpec
    weight : array_like of shape ``spec.weight_shape``
        Finite; computed in float64 (complex128) whatever its dtype.
    k : int, optional
        Only the ``k`` largest. Without it, all ``min(rows, cols)`` values (zeros included).
    max_bytes : int, default 1 GiB
        Refuse a dense SVD or a set of DFT blocks that would need more memory than this.
    max_flops : int, default ``budget.DEFAULT_MAX_FLOPS``
        Refuse a decomposition whose estimated work exceeds this, before starting it.
    tol : float, default 1e-10
        With ``k`` (no FFT route): ARPACK's relative tolerance on the eigenvalues ``sigma^2``
        of the Gram operator, passed unchanged.
    maxiter : int, optional
        ARPACK's restart limit (default ``10 n``); not converging is an error here.
    callback : callable, optional
        Called with the number of Gram products after each one (Lanczos); raise in it to stop.
    backend : {"numpy", "torch"}
        Where the Lanczos products run (:func:`~convalgebra.operators.conv_operator`).

    Returns
    -------
    numpy.ndarray
        Float64, descending.

    Raises
    ------
    ConvAlgebraError
        A dense SVD or DFT route over ``max_bytes``/``max_flops`` (naming the size and the
        alternatives), a bad ``k``, weights that are not finite.

    Notes
    -----
    Routes: circular padding whose output tiles the input (:func:`fft_applies`) by the DFT
    (``O(P log P)`` FFTs plus one small SVD per frequency); otherwise with ``k`` by Lanczos
    (``scipy.sparse.linalg.eigsh``) on the smaller-side Gram operator of
    :func:`~convalgebra.operators.conv_operator`, the values being the Rayleigh quotients
    ``||M v||`` of its vectors; all of them by a dense SVD of
    :func:`~convalgebra.operators.conv_matrix`. A transposed layer has the singular values of
    its forward convolution (``M_T = M^T``).

    Examples
    --------
    >>> spec = ConvSpec((1, 4), 1, 2, stride=2, padding_mode="circular")
    >>> np.round(singular_values(spec, [[[3.0, 4.0]]]), 6).tolist()
    [5.0, 5.0]
    >>> np.round(singular_values(ConvSpec((1, 3), 1, 2), [[[1.0, 1.0]]]), 6).tolist()
    [1.732051, 1.0]
    """
    w = _float_weight(spec, weight)
    _check_options(tol, max_bytes, max_flops)
    limit = min(math.prod(spec.output_shape), math.prod(spec.input_shape))
    k = _check_k(k, limit)
    _check_backend(backend)
    if maxiter is not None:
        maxiter = check_iterations("maxiter", maxiter, MAX_ITERATIONS, 1)
    phases = _phases(spec)
    if phases is not None:
        return _fft_singular_values(spec, w, phases, max_bytes, max_flops)[: k or limit]
    if k is not None and k < limit - 1 and limit >= _DENSE_BELOW:
        gram = _Gram(conv_operator(spec, w, backend=backend), callback)
        try:
            values, _, converged = _lanczos(gram, k, tol, maxiter)
        except ArpackError as exc:  # e.g. a zero operator: the start vector vanishes
            _dense_check(spec, max_bytes, max_flops, exc)
        else:
            if not converged or values.size < k:
                raise ConvAlgebraError(
                    f"Lanczos did not converge on {spec.describe()} within maxiter={maxiter} "
                    f"(tol={tol}); raise maxiter or tol"
                )
            return values
    _dense_check(spec, max_bytes, max_flops, None)
    dense = conv_matrix(spec, w).toarray()
    return np.linalg.svd(dense, compute_uv=False)[: k or limit]


def _exact_norm(spec: ConvSpec, w: np.ndarray, max_flops: int) -> OperatorNorm | None:
    """The direct routes: the DFT (circular, tiling) or a dense SVD (tiny); else None."""
    phases = _phases(spec)
    if phases is not None:
        offsets = tuple(-b for b, _ in spec.padding)
        lo, hi = _circulant_norm(spec, w, spec.forward_input_spatial, offsets, phases, max_flops)
        return OperatorNorm(math.sqrt(lo * hi), "fft", lower=lo, upper=hi, exact=True)
    if min(math.prod(spec.output_shape), math.prod(spec.input_shape)) < _DENSE_BELOW:
        value = float(np.linalg.norm(conv_matrix(spec, w).toarray(), 2))
        margin = _margin(max(spec.output_shape[0], spec.input_shape[0]) * _DENSE_BELOW)
        lo, hi = value * (1 - margin), value * (1 + margin)
        return OperatorNorm(value, "dense", lower=lo, upper=hi, exact=True)
    return None


def _tiled_bound(spec: ConvSpec, w: np.ndarray) -> Bound:
    """``||M||_F``: the one bound of a tiled layer (no shared kernel, no circulant)."""
    matrix = conv_matrix(spec, w)
    value = float(np.sqrt(np.sum(np.abs(matrix.data) ** 2)))
    return Bound(
        "frobenius",
        value * (1 + _margin(matrix.nnz)),
        "upper bound: the Frobenius norm of the matrix (>= the largest singular value)",
    )


def operator_norm(
    spec: ConvSpec,
    weight: Any,
    method: str = "exact",
    *,
    tol: float = LANCZOS_TOL,
    gram_iterations: int = 6,
    maxiter: int | None = None,
    callback: Callable[[int], Any] | None = None,
    max_flops: int = DEFAULT_MAX_FLOPS,
    backend: str = "numpy",
) -> OperatorNorm:
    """``||M||_2``, the layer's Lipschitz constant in the Euclidean norm, as a certified interval.

    Parameters
    ----------
    spec : ConvSpec
    weight : array_like of shape ``spec.weight_shape``
        Finite; computed in float64 (complex128) whatever its dtype.
    method : {"exact", "bound", "gram"}
        ``"exact"``: by the DFT when :func:`fft_applies`, by a dense SVD below 8 rows or
        columns, else the interval from Lanczos below and the best guaranteed bound above.
        ``"bound"``: the smallest of :func:`upper_bounds` (circulant, taps) alone.
        ``"gram"``: the Gram-iteration bound alone (``gram_iterations`` steps, at most 64).
    tol : float, default 1e-10
        The interval counts as closed (``exact``) when ``upper - lower <= tol * upper``; also
        ARPACK's relative tolerance on ``sigma^2``, passed unchanged.
    gram_iterations : int, default 6
    maxiter : int, optional
        ARPACK's restart limit; an unconverged run still gives a proven (wider) interval.
    callback : callable, optional
        Called with the number of Gram products after each one; raise in it to stop.
    max_flops : int, default ``budget.DEFAULT_MAX_FLOPS``
        Refuse a route whose estimated work exceeds this, before starting it.
    backend : {"numpy", "torch"}
        Where the Lanczos products run (:func:`~convalgebra.operators.conv_operator`).

    Returns
    -------
    OperatorNorm
        A float with ``.lower``/``.upper`` (proven, rounding margins included), ``.exact``,
        ``.method`` and ``.bounds``. Not exact: the float is the Rayleigh quotient (lower end).

    Notes
    -----
    Lower end: for a unit ``v``, ``||M v|| <= ||M||_2`` (the Rayleigh quotient of the Gram
    operator at the Lanczos vector). Upper end: the bounds of :func:`upper_bounds`. The Lanczos
    residual ``r = ||M^H M v - s^2 v||`` puts *a* singular value within ``[sqrt(s^2 - r),
    sqrt(s^2 + r)]`` (Weyl), which is why it alone does not prove the largest.

    Examples
    --------
    >>> spec = ConvSpec((1, 10), 1, 3, padding=1)
    >>> norm = operator_norm(spec, [[[1.0, 2.0, 1.0]]])
    >>> round(float(norm), 6), norm.method, norm.exact, round(norm.upper, 6)
    (3.918986, 'lanczos', False, 4.0)
    >>> round(float(operator_norm(spec, [[[1.0, 2.0, 1.0]]], method="bound")), 9)
    4.0
    """
    if method not in ("exact", "bound", "gram"):
        raise ConvAlgebraError(f"method must be 'exact', 'bound' or 'gram', got {shown(method)}")
    w = _float_weight(spec, weight)
    _check_options(tol, DENSE_MAX_BYTES, max_flops)
    _check_backend(backend)
    if maxiter is not None:
        maxiter = check_iterations("maxiter", maxiter, MAX_ITERATIONS, 1)
    if method == "gram":
        check_iterations("gram_iterations", gram_iterations, GRAM_MAX_ITERATIONS)
        _no_tiles(spec)
        bound = _gram_iteration_bound(spec, w, gram_iterations, max_flops)
        return OperatorNorm(bound.value, "gram", (bound,))
    if method == "bound":
        _no_tiles(spec)
        bounds = upper_bounds(spec, w, max_flops=max_flops)
        best = min(bounds, key=lambda b: b.value)
        return OperatorNorm(best.value, best.name, bounds)
    direct = _exact_norm(spec, w, max_flops)
    if direct is not None:
        return direct
    bounds = (_tiled_bound(spec, w),) if spec.tile is not None else upper_bounds(spec, w)
    op = conv_operator(spec, w, backend=backend)
    return _lanczos_norm(op, spec, w, bounds, tol, maxiter, callback)


def _no_tiles(spec: ConvSpec) -> None:
    if spec.tile is not None:
        raise ConvAlgebraError(
            f"no upper bound for the tiled layer {spec.describe()}; use method='exact'"
        )


def _lanczos_norm(
    op: LinearOperator,
    spec: ConvSpec,
    w: np.ndarray,
    bounds: tuple[Bound, ...],
    tol: float,
    maxiter: int | None,
    callback: Callable[[int], Any] | None,
) -> OperatorNorm:
    """The interval [Rayleigh quotient, best bound] with the Lanczos residual as evidence."""
    gram = _Gram(op, callback)
    upper = min(b.value for b in bounds)
    try:
        values, vecs, _ = _lanczos(gram, 1, tol, maxiter)
    except ArpackError:  # e.g. a zero operator: the start vector vanishes
        v = gram.start()
        vecs = (v / np.linalg.norm(v))[:, None]
        values = np.array([np.linalg.norm(gram.a.matvec(vecs[:, 0]))])
    v, sigma = vecs[:, 0], float(values[0])
    residual = float(np.linalg.norm(gram.a.rmatvec(gram.a.matvec(v)) - sigma**2 * v))
    lower = min(upper, sigma * (1 - _margin(math.prod(_ints(spec.kernel_size)) * max(w.shape[:2]))))
    return OperatorNorm(
        sigma,
        "lanczos",
        bounds,
        lower=lower,
        upper=upper,
        exact=upper - lower <= tol * upper,
        residual=residual,
        products=gram.products,
    )
