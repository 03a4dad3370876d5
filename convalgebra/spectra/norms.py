"""Singular values and operator norms of convolution layers, as certified intervals.

Routes: the DFT blocks for circular layers that tile, a dense SVD for tiny ones, Lanczos on
the matrix-free operator's smaller-side Gram otherwise, whose Rayleigh quotient is a proven
lower end under the guaranteed bounds of :mod:`convalgebra.spectra.bounds`.

Examples
--------
>>> from convalgebra import ConvSpec
>>> spec = ConvSpec((1, 4), 1, 3, padding=1, padding_mode="circular")
>>> round(float(operator_norm(spec, [[[1.0, 2.0, 1.0]]])), 12)
4.0
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.sparse.linalg import ArpackError, ArpackNoConvergence, LinearOperator, eigsh

from ..budget import (
    DEFAULT_MAX_FLOPS,
    MAX_ITERATIONS,
    check_iterations,
    check_limit,
    require_memory,
    require_work,
)
from ..errors import ConvAlgebraError, shown
from ..operators import conv_matrix, conv_operator
from ..spec import ConvSpec
from .bounds import Bound, gram_iteration_bound, upper_bounds
from .circulant import (
    DENSE_MAX_BYTES,
    GRAM_MAX_ITERATIONS,
    blocks_bytes,
    circulant_norm,
    float_weight,
    frequency_blocks,
    per_axis,
    rounding_margin,
    svd_flops,
    tiling_phases,
)

__all__ = ["LANCZOS_TOL", "OperatorNorm", "singular_values", "operator_norm"]

#: Relative tolerance on the eigenvalues ``sigma^2`` of the Gram operator, handed to ARPACK.
LANCZOS_TOL = 1e-10
# below this many rows/columns a dense SVD is cheaper and more robust than ARPACK
_DENSE_BELOW = 8


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


def _fft_singular_values(
    spec: ConvSpec, w: np.ndarray, phases: tuple[int, ...], max_bytes: int, max_flops: int
) -> np.ndarray:
    sizes = spec.forward_input_spatial
    c_out, per = w.shape[0], w.shape[1]
    m, n = c_out // spec.groups, per * math.prod(phases)
    blocks = math.prod(sizes) // math.prod(phases) * spec.groups
    way_out = "operator_norm(spec, weight) gives the largest alone in bounded memory"
    what = f"all singular values of {spec.describe()} by the DFT ({blocks:,} blocks {m} x {n})"
    require_memory(what, blocks_bytes(spec, sizes), max_bytes, way_out + ", or raise max_bytes=")
    require_work(what, blocks * svd_flops(m, n), max_flops, way_out + ", or raise max_flops=")
    offsets = tuple(-before for before, _ in spec.padding)
    hat = frequency_blocks(spec, w, sizes, offsets, phases)
    values = np.linalg.svd(hat, compute_uv=False).ravel()
    return np.sort(values)[::-1]


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
        svd_flops(rows, cols),
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


def _lanczos_pass(
    gram: _Gram, op: LinearOperator, k: int, tol: float, maxiter: int | None
) -> tuple[np.ndarray, bool]:
    """Unit vectors of the ``k`` largest eigenvalues of ``op`` (ARPACK), and convergence."""
    try:
        _, vecs = eigsh(op, k=k, which="LA", tol=tol, v0=gram.start(), maxiter=maxiter)
        converged = True
    except ArpackNoConvergence as exc:
        vecs, converged = exc.eigenvectors, False
        if vecs is None or vecs.shape[1] < k:
            vecs = gram.start()[:, None]
    return vecs / np.linalg.norm(vecs, axis=0), converged


def _ritz(gram: _Gram, vecs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rayleigh-Ritz on the span of ``vecs``: orthonormal vectors and ``sigma^2``, descending.

    The ``i``-th Ritz value never exceeds the ``i``-th eigenvalue of the Gram (interlacing).
    """
    q, _ = np.linalg.qr(vecs)
    image = np.stack([gram.a.matvec(q[:, i]) for i in range(q.shape[1])], axis=1)
    lam, u = np.linalg.eigh(np.conj(image).T @ image)
    order = np.argsort(lam)[::-1]
    return q @ u[:, order], np.maximum(lam[order], 0.0)


def _lanczos(
    gram: _Gram, k: int, tol: float, maxiter: int | None
) -> tuple[np.ndarray, np.ndarray, bool]:
    """The ``k`` largest singular values (descending), unit vectors, and whether converged.

    ``tol`` goes to ARPACK unchanged: the relative accuracy of the eigenvalues ``sigma^2``.
    The values are the Ritz values of ``M^H M`` on the span of the vectors found (for one
    vector, the Rayleigh quotient ``||M v||``). A single Lanczos run can miss a copy of a
    repeated value (symmetric layers have many), so for ``k > 1`` the run is repeated on the
    operator deflated by the Ritz vectors found until a run adds none to the ``k`` largest.
    """
    vecs, converged = _lanczos_pass(gram, gram.op, k, tol, maxiter)
    n = gram.op.shape[0]
    while k > 1 and converged and vecs.shape[1] < n - 1:
        found, lam = _ritz(gram, vecs)

        def deflated(v: np.ndarray, found: np.ndarray = found, lam: np.ndarray = lam) -> np.ndarray:
            return gram.op.matvec(v) - found @ (lam * (np.conj(found).T @ np.ravel(v)))

        op = LinearOperator(gram.op.shape, matvec=deflated, dtype=gram.op.dtype)
        more, converged = _lanczos_pass(gram, op, min(k, n - found.shape[1] - 1), tol, maxiter)
        values = np.array([np.linalg.norm(gram.a.matvec(v)) ** 2 for v in more.T])
        if not (values > lam[:k].min() * (1 + tol)).any():
            break
        vecs = np.concatenate([found, more], axis=1)
    found, lam = _ritz(gram, vecs)
    return np.sqrt(lam[:k]), found[:, :k], converged


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
        The layer (a transposed layer has its forward convolution's values).
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
    w = float_weight(spec, weight)
    _check_options(tol, max_bytes, max_flops)
    limit = min(math.prod(spec.output_shape), math.prod(spec.input_shape))
    k = _check_k(k, limit)
    _check_backend(backend)
    if maxiter is not None:
        maxiter = check_iterations("maxiter", maxiter, MAX_ITERATIONS, 1)
    phases = tiling_phases(spec)
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
    phases = tiling_phases(spec)
    if phases is not None:
        offsets = tuple(-b for b, _ in spec.padding)
        lo, hi = circulant_norm(spec, w, spec.forward_input_spatial, offsets, phases, max_flops)
        return OperatorNorm(math.sqrt(lo * hi), "fft", lower=lo, upper=hi, exact=True)
    if min(math.prod(spec.output_shape), math.prod(spec.input_shape)) < _DENSE_BELOW:
        value = float(np.linalg.norm(conv_matrix(spec, w).toarray(), 2))
        margin = rounding_margin(max(spec.output_shape[0], spec.input_shape[0]) * _DENSE_BELOW)
        lo, hi = value * (1 - margin), value * (1 + margin)
        return OperatorNorm(value, "dense", lower=lo, upper=hi, exact=True)
    return None


def _tiled_bound(spec: ConvSpec, w: np.ndarray) -> Bound:
    """``||M||_F``: the one bound of a tiled layer (no shared kernel, no circulant)."""
    matrix = conv_matrix(spec, w)
    value = float(np.sqrt(np.sum(np.abs(matrix.data) ** 2)))
    return Bound(
        "frobenius",
        value * (1 + rounding_margin(matrix.nnz)),
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
        The layer.
    weight : array_like of shape ``spec.weight_shape``
        Finite; computed in float64 (complex128) whatever its dtype.
    method : {"exact", "bound", "gram"}
        ``"exact"``: by the DFT when :func:`fft_applies`, by a dense SVD below 8 rows or
        columns, else the interval from Lanczos below and the best guaranteed bound above.
        ``"bound"``: the smallest of :func:`upper_bounds` (circulant, taps) alone; the
        circulant is left out when its work is over ``max_flops``.
        ``"gram"``: the Gram-iteration bound alone (``gram_iterations`` steps, at most 64).
    tol : float, default 1e-10
        The interval counts as closed (``exact``) when ``upper - lower <= tol * upper``; also
        ARPACK's relative tolerance on ``sigma^2``, passed unchanged.
    gram_iterations : int, default 6
        Steps of the Gram iteration, used by ``method="gram"`` only (at most 64).
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
    w = float_weight(spec, weight)
    _check_options(tol, DENSE_MAX_BYTES, max_flops)
    _check_backend(backend)
    if maxiter is not None:
        maxiter = check_iterations("maxiter", maxiter, MAX_ITERATIONS, 1)
    if method == "gram":
        check_iterations("gram_iterations", gram_iterations, GRAM_MAX_ITERATIONS)
        _no_tiles(spec)
        bound = gram_iteration_bound(spec, w, gram_iterations, max_flops)
        return OperatorNorm(bound.value, "gram", (bound,))
    if method == "bound":
        _no_tiles(spec)
        bounds = upper_bounds(spec, w, max_flops=max_flops, over_budget="skip")
        best = min(bounds, key=lambda b: b.value)
        return OperatorNorm(best.value, best.name, bounds)
    direct = _exact_norm(spec, w, max_flops)
    if direct is not None:
        return direct
    bounds = (
        (_tiled_bound(spec, w),)
        if spec.tile is not None
        else upper_bounds(spec, w, max_flops=max_flops, over_budget="skip")
    )
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
    lower = min(
        upper,
        sigma * (1 - rounding_margin(math.prod(per_axis(spec.kernel_size)) * max(w.shape[:2]))),
    )
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
