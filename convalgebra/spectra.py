"""Singular values and operator norms of convolution layers, from their structure.

A circular layer whose output grid tiles its input (``out = n / gcd(stride, n)`` per axis) is
block-diagonalised by the DFT: after splitting the input into its polyphase components, each
frequency contributes the singular values of one small ``C_out x (C_in/groups * phases)``
matrix (Sedghi, Gupta & Long, ICLR 2019, extended here to 1-/2-/3-D, groups, dilation, stride
and transposed layers). Every other layer is a row selection of such a circulant applied to its
padded input, which gives guaranteed upper bounds on its norm; its exact values come from the
dense matrix (small layers) or Lanczos on the matrix-free operator (the largest ones).

Examples
--------
>>> import numpy as np
>>> from convalgebra import ConvSpec
>>> spec = ConvSpec((1, 4), 1, 3, padding=1, padding_mode="circular")
>>> np.round(singular_values(spec, [[[1.0, 2.0, 1.0]]]), 6).tolist()
[4.0, 2.0, 2.0, 0.0]
>>> float(operator_norm(spec, [[[1.0, 2.0, 1.0]]]))
4.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
from scipy.sparse.linalg import ArpackError, LinearOperator, svds

from .connectivity import axis_table, tap_weight_order
from .errors import ConvAlgebraError
from .operators import check_weight, conv_matrix, conv_operator
from .spec import ConvSpec

__all__ = [
    "DENSE_MAX_BYTES",
    "LANCZOS_TOL",
    "Bound",
    "OperatorNorm",
    "singular_values",
    "operator_norm",
    "upper_bounds",
    "fft_applies",
    "padding_norm",
    "polyphase_taps",
]

#: Largest dense matrix (bytes) :func:`singular_values` builds for a full SVD.
DENSE_MAX_BYTES = 2**30
#: Relative tolerance handed to ARPACK for the Lanczos routes.
LANCZOS_TOL = 1e-10
# below this many rows/columns a dense SVD is cheaper and more robust than ARPACK
_DENSE_BELOW = 8


@dataclass(frozen=True)
class Bound:
    """One number about ``||M||_2`` and what it guarantees.

    ``name`` is the method, ``value`` the number, ``guarantee`` one sentence saying why
    ``||M||_2 <= value`` (or, for the exact values, how exact it is).
    """

    name: str
    value: float
    guarantee: str


class OperatorNorm(float):
    """``||M||_2`` as a float, with the evidence behind it.

    Attributes
    ----------
    method : str
        ``"fft"``, ``"dense"``, ``"lanczos"`` or, for ``method="bound"``, the tightest bound.
    bounds : tuple of Bound
        The cheap guaranteed upper bounds computed alongside (the smallest is the float itself
        when ``method="bound"``).
    residual : float or None
        Lanczos only: ``||M^H M v - s^2 v||`` for the unit vector ``v`` found.
    interval : tuple of float or None
        Lanczos only: a singular value of ``M`` lies in this interval (from the residual).
    """

    method: str
    bounds: tuple[Bound, ...]
    residual: float | None
    interval: tuple[float, float] | None

    def __new__(
        cls,
        value: float,
        method: str,
        bounds: tuple[Bound, ...] = (),
        residual: float | None = None,
        interval: tuple[float, float] | None = None,
    ) -> OperatorNorm:
        obj = super().__new__(cls, value)
        obj.method, obj.bounds = method, tuple(bounds)
        obj.residual, obj.interval = residual, interval
        return obj

    def report(self) -> str:
        """One line per number: the value and its guarantee."""
        lines = [f"||M||_2 = {float(self):.10g} ({self.method})"]
        if self.interval is not None:
            lines.append(
                f"  residual {self.residual:.3g}: a singular value lies in "
                f"[{self.interval[0]:.10g}, {self.interval[1]:.10g}]"
            )
        lines += [f"  <= {b.value:.10g}  {b.name}: {b.guarantee}" for b in self.bounds]
        return "\n".join(lines)


# ----------------------------------------------------------------------------- helpers
def _ints(value: Any) -> tuple[int, ...]:
    """A normalised per-axis field of a spec (typed as a tuple)."""
    return cast(tuple[int, ...], value)


def _float_weight(spec: ConvSpec, weight: Any) -> np.ndarray:
    """The weight as float or complex, unconnected channel-table entries zeroed.

    Its layout is that of the forward convolution (a transposed spec's weight already is).
    """
    if not isinstance(spec, ConvSpec):
        raise TypeError(f"spec must be a ConvSpec, got {type(spec).__name__} ({spec!r})")
    w = check_weight(spec, weight)
    if w.dtype.kind not in "fc":
        w = w.astype(np.float64)
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


def _fft_singular_values(spec: ConvSpec, w: np.ndarray, phases: tuple[int, ...]) -> np.ndarray:
    sizes = spec.forward_input_spatial
    offsets = tuple(-before for before, _ in spec.padding)
    blocks = _frequency_blocks(spec, w, sizes, offsets, phases)
    values = np.linalg.svd(blocks, compute_uv=False).ravel()
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


def _gram_bound(blocks: np.ndarray, iterations: int) -> float:
    """``max_f ||G_t(f)||_F^(1/2^t)``, ``G_{t+1} = G_t^H G_t`` (rescaled in logs)."""
    g = blocks.reshape(-1, *blocks.shape[-2:])
    norms = np.linalg.norm(g, axis=(1, 2))
    if not norms.max() > 0:
        return 0.0
    live = norms > 0
    g, log_c = g[live] / norms[live, None, None], np.log(norms[live])
    for _ in range(iterations):
        g = np.conj(np.swapaxes(g, 1, 2)) @ g
        f = np.linalg.norm(g, axis=(1, 2))
        g, log_c = g / f[:, None, None], 2 * log_c + np.log(f)
    return float(np.exp(log_c.max() / 2**iterations))


def _tap_bound(spec: ConvSpec, w: np.ndarray) -> float:
    c_out, per = w.shape[0], w.shape[1]
    g = spec.groups
    taps = w.reshape(g, c_out // g, per, -1)
    per_tap = np.linalg.norm(np.moveaxis(taps, -1, 1), ord=2, axis=(2, 3))  # (g, K)
    return float(per_tap.sum(axis=1).max())


def upper_bounds(spec: ConvSpec, weight: Any, *, gram_iterations: int = 6) -> tuple[Bound, ...]:
    """Cheap guaranteed upper bounds on ``||M||_2``, each labelled with its guarantee.

    Parameters
    ----------
    spec : ConvSpec
        Any padding mode, stride, dilation, groups, channel table; transposed layers have the
        bounds of their forward. Tiled layers have no such bounds (refused).
    weight : array_like of shape ``spec.weight_shape``
    gram_iterations : int, default 6
        Steps of the Gram iteration.

    Returns
    -------
    tuple of Bound
        ``circulant``, ``gram`` and ``taps``, in that order.

    Notes
    -----
    Every layer is ``M = S (D_s C_L) E P``: ``P`` pads the input (``||P||`` from
    :func:`padding_norm`), ``E`` embeds it with zeros into a grid ``L`` of multiples of the
    stride beyond the padded size (no tap wraps around), ``C_L`` is the stride-1 circular
    correlation on that grid, ``D_s`` keeps every ``s``-th row and ``S`` the rows the layer
    has. ``||S|| = ||E|| = 1``, so ``||M|| <= ||P|| ||D_s C_L||``, computed exactly by the DFT.
    A circular layer needs no embedding: its rows are rows of ``D_g C_n`` (``g = gcd(s, n)``)
    used at most ``m`` times each, so ``||M|| <= sqrt(m) ||D_g C_n||`` (equality when tiling).
    The Gram iteration (Delattre, Barthélemy, Araujo & Allauzen, ICML 2023) bounds the norm
    of each DFT block by ``||G_t||_F^{1/2^t}`` with ``G_{t+1} = G_t^H G_t``; the tap bound is
    the triangle inequality over taps, ``||P|| max_group sum_t ||W_t||_2``.

    Examples
    --------
    >>> spec = ConvSpec((1, 6), 1, 3, padding=1)
    >>> [(b.name, round(b.value, 6)) for b in upper_bounds(spec, [[[1.0, 2.0, 1.0]]])]
    [('circulant', 4.0), ('gram', 4.0), ('taps', 4.0)]
    """
    w = _float_weight(spec, weight)
    if spec.tile is not None:
        raise ConvAlgebraError(
            f"upper bounds need a shared kernel; {spec.describe()} is tiled "
            "(use operator_norm(spec, weight, method='exact'))"
        )
    if not isinstance(gram_iterations, int) or gram_iterations < 0:
        raise ConvAlgebraError(f"gram_iterations must be an integer >= 0, got {gram_iterations!r}")
    sizes, offsets, phases, factor, how = _containing_circulant(spec)
    blocks = _frequency_blocks(spec, w, sizes, offsets, phases)
    circulant = factor * float(np.linalg.svd(blocks, compute_uv=False).max(initial=0.0))
    pad = padding_norm(spec)
    return (
        Bound("circulant", circulant, f"upper bound: {how}"),
        Bound(
            "gram",
            factor * _gram_bound(blocks, gram_iterations),
            f"upper bound: Gram iteration ({gram_iterations} steps, Delattre et al. 2023) on "
            "the same DFT blocks, >= the circulant bound",
        ),
        Bound(
            "taps",
            pad * _tap_bound(spec, w),
            f"upper bound: ||P||={pad:.6g} times the sum over kernel taps of ||W_t||_2 "
            "(triangle inequality)",
        ),
    )


def _dense_check(spec: ConvSpec, max_bytes: int, failure: Exception | None) -> None:
    """Refuse a dense SVD over budget (naming the size and what to do instead)."""
    rows, cols = math.prod(spec.output_shape), math.prod(spec.input_shape)
    needed = rows * cols * 8
    if needed > max_bytes and failure is not None:
        raise ConvAlgebraError(
            f"Lanczos failed on {spec.describe()} ({failure}) and its dense "
            f"{rows:,} x {cols:,} matrix exceeds max_bytes={max_bytes:,}"
        )
    if needed > max_bytes:
        raise ConvAlgebraError(
            f"all singular values of {spec.describe()} need its dense {rows:,} x {cols:,} "
            f"matrix, about {needed / 2**30:.2f} GiB (max_bytes={max_bytes:,}); pass k=... for "
            "the k largest (Lanczos on the matrix-free operator)"
            + (
                ""
                if spec.padding_mode == "circular"
                else ", or use padding_mode='circular' for the FFT route"
            )
        )


def _check_options(tol: Any, max_bytes: Any) -> None:
    """``tol`` a real >= 0 (0: machine precision) and ``max_bytes`` a positive integer."""
    if isinstance(tol, (bool, np.bool_)) or not isinstance(tol, (int, float, np.floating)):
        raise TypeError(f"tol must be a real number >= 0, got {tol!r}")
    if not 0 <= tol < 1:
        raise ConvAlgebraError(f"tol must be in [0, 1) (a relative tolerance), got {tol!r}")
    if isinstance(max_bytes, (bool, np.bool_)) or not hasattr(type(max_bytes), "__index__"):
        raise TypeError(f"max_bytes must be a positive integer, got {max_bytes!r}")
    if max_bytes < 1:
        raise ConvAlgebraError(f"max_bytes must be a positive integer, got {max_bytes!r}")


def _check_k(k: Any, limit: int) -> int | None:
    if k is None:
        return None
    if isinstance(k, (bool, np.bool_)) or not hasattr(type(k), "__index__"):
        raise TypeError(f"k must be a positive integer or None, got {k!r}")
    if not 1 <= k <= limit:
        raise ConvAlgebraError(f"k must be between 1 and min(matrix shape)={limit}, got {k!r}")
    return int(k)


def _lanczos(op: LinearOperator, k: int, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest singular values (descending) and right singular vectors."""
    rng = np.random.default_rng(0)
    v0 = rng.standard_normal(min(op.shape))
    if op.dtype.kind == "c":
        v0 = v0 + 1j * rng.standard_normal(v0.size)
    _, s, vh = svds(op, k=k, tol=tol, v0=v0, solver="arpack")
    order = np.argsort(s)[::-1]
    return s[order], vh[order]


# ----------------------------------------------------------------------------- public
def singular_values(
    spec: ConvSpec,
    weight: Any,
    k: int | None = None,
    *,
    max_bytes: int = DENSE_MAX_BYTES,
    tol: float = LANCZOS_TOL,
) -> np.ndarray:
    """All singular values of the layer's matrix (or the ``k`` largest), descending.

    Parameters
    ----------
    spec : ConvSpec
    weight : array_like of shape ``spec.weight_shape``
    k : int, optional
        Only the ``k`` largest. Without it, all ``min(rows, cols)`` values (zeros included).
    max_bytes : int, default 1 GiB
        Refuse a dense SVD whose matrix would exceed this (the FFT route needs none).
    tol : float, default 1e-10
        ARPACK's relative tolerance when ``k`` is given and the FFT route does not apply.

    Returns
    -------
    numpy.ndarray
        Float64, descending.

    Raises
    ------
    ConvAlgebraError
        A dense SVD over ``max_bytes`` (naming the size and the alternatives), a bad ``k``.

    Notes
    -----
    Routes: circular padding whose output tiles the input (:func:`fft_applies`) by the DFT
    (``O(P log P)`` FFTs plus one small SVD per frequency); otherwise with ``k`` by Lanczos
    (``scipy.sparse.linalg.svds``) on :func:`~convalgebra.operators.conv_operator`, and all of
    them by a dense SVD of :func:`~convalgebra.operators.conv_matrix`. A transposed layer has
    the singular values of its forward convolution (``M_T = M^T``).

    Examples
    --------
    >>> spec = ConvSpec((1, 4), 1, 2, stride=2, padding_mode="circular")
    >>> np.round(singular_values(spec, [[[3.0, 4.0]]]), 6).tolist()
    [5.0, 5.0]
    >>> np.round(singular_values(ConvSpec((1, 3), 1, 2), [[[1.0, 1.0]]]), 6).tolist()
    [1.732051, 1.0]
    """
    w = _float_weight(spec, weight)
    _check_options(tol, max_bytes)
    limit = min(math.prod(spec.output_shape), math.prod(spec.input_shape))
    k = _check_k(k, limit)
    phases = _phases(spec)
    if phases is not None:
        return _fft_singular_values(spec, w, phases)[: k or limit]
    if k is not None and k < limit - 1 and limit >= _DENSE_BELOW:
        try:
            return _lanczos(conv_operator(spec, w), k, tol)[0]
        except ArpackError as exc:  # e.g. a zero operator: the start vector vanishes
            failure = exc
            _dense_check(spec, max_bytes, failure)
    _dense_check(spec, max_bytes, None)
    dense = conv_matrix(spec, w).toarray()
    return np.linalg.svd(dense, compute_uv=False)[: k or limit]


def _lanczos_norm(spec: ConvSpec, w: np.ndarray, tol: float) -> tuple[float, float, tuple]:
    """Lanczos value with its residual certificate ``||M^H M v - s^2 v||``."""
    op = conv_operator(spec, w)
    tall = op.shape[0] >= op.shape[1]
    a = op if tall else op.H  # singular values of M and M^H agree
    s, vh = _lanczos(a, 1, tol)
    v = np.conj(vh[0])
    v = v / np.linalg.norm(v)
    av = a.matvec(v)
    sigma = float(np.linalg.norm(av))
    residual = float(np.linalg.norm(a.rmatvec(av) - sigma**2 * v))
    lo = math.sqrt(max(0.0, sigma**2 - residual))
    return sigma, residual, (lo, math.sqrt(sigma**2 + residual))


def operator_norm(
    spec: ConvSpec,
    weight: Any,
    method: str = "exact",
    *,
    tol: float = LANCZOS_TOL,
    gram_iterations: int = 6,
) -> OperatorNorm:
    """``||M||_2``, the layer's Lipschitz constant in the Euclidean norm, with its evidence.

    Parameters
    ----------
    spec : ConvSpec
    weight : array_like of shape ``spec.weight_shape``
    method : {"exact", "bound"}
        ``"exact"``: by the DFT when :func:`fft_applies`, else by Lanczos on the matrix-free
        operator (relative tolerance ``tol``; a dense SVD below 8 rows or columns).
        ``"bound"``: the smallest of the guaranteed upper bounds of :func:`upper_bounds`.
    tol : float, default 1e-10
        ARPACK's relative tolerance.
    gram_iterations : int, default 6

    Returns
    -------
    OperatorNorm
        A float; ``.bounds`` holds the upper bounds (never below the exact value), and for
        Lanczos ``.residual`` and ``.interval`` certify that a singular value lies within the
        residual (it does not certify that it is the largest; the bounds are guaranteed).

    Notes
    -----
    Certificate: for a unit ``v`` and ``s = ||M v||``, ``r = ||M^H M v - s^2 v||`` puts an
    eigenvalue of ``M^H M`` within ``r`` of ``s^2`` (Weyl), hence a singular value of ``M`` in
    ``[sqrt(s^2 - r), sqrt(s^2 + r)]``.

    Examples
    --------
    >>> spec = ConvSpec((1, 10), 1, 3, padding=1)
    >>> norm = operator_norm(spec, [[[1.0, 2.0, 1.0]]])
    >>> round(float(norm), 6), norm.method, [round(b.value, 6) for b in norm.bounds]
    (3.918986, 'lanczos', [4.0, 4.0, 4.0])
    >>> float(operator_norm(spec, [[[1.0, 2.0, 1.0]]], method="bound"))
    4.0
    """
    if method not in ("exact", "bound"):
        raise ConvAlgebraError(f"method must be 'exact' or 'bound', got {method!r}")
    w = _float_weight(spec, weight)
    _check_options(tol, DENSE_MAX_BYTES)
    bounds = () if spec.tile is not None else upper_bounds(spec, w, gram_iterations=gram_iterations)
    if method == "bound":
        if not bounds:
            raise ConvAlgebraError(
                f"no upper bound for the tiled layer {spec.describe()}; use method='exact'"
            )
        best = min(bounds, key=lambda b: b.value)
        return OperatorNorm(best.value, best.name, bounds)
    phases = _phases(spec)
    if phases is not None:
        return OperatorNorm(float(_fft_singular_values(spec, w, phases)[0]), "fft", bounds)
    if min(math.prod(spec.output_shape), math.prod(spec.input_shape)) < _DENSE_BELOW:
        dense = conv_matrix(spec, w).toarray()
        return OperatorNorm(float(np.linalg.norm(dense, 2)), "dense", bounds)
    try:
        sigma, residual, interval = _lanczos_norm(spec, w, tol)
    except ArpackError as exc:  # e.g. a zero operator: the start vector vanishes
        _dense_check(spec, DENSE_MAX_BYTES, exc)
        dense = conv_matrix(spec, w).toarray()
        return OperatorNorm(float(np.linalg.norm(dense, 2)), "dense", bounds)
    return OperatorNorm(sigma, "lanczos", bounds, residual, interval)
