"""Testing helpers for linear operators: the dot (adjoint) test.

An operator ``M`` and the routine that claims to apply its transpose agree exactly when, for
random ``x`` and ``y``, ``<M x, y> == <x, M^T y>`` (``M^H`` for complex operators). The test
needs only two products, so it runs at sizes where the matrix is never stored -- the form in
which PyLops checks every operator it ships.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .budget import require_steps
from .errors import ConvAlgebraError, shown

__all__ = ["DotTestResult", "dottest", "MAX_TRIALS", "MAX_VECTOR_ENTRIES"]

#: Most trials a dot test runs: three already decide an adjoint pair.
MAX_TRIALS = 1000
#: Most random vector entries a dot test draws over all its trials.
MAX_VECTOR_ENTRIES = 10**8


@dataclass(frozen=True)
class DotTestResult:
    """Outcome of :func:`dottest`: one ``(<M x, y>, <x, M^H y>)`` pair per trial.

    Truthy exactly when every trial agreed within the tolerances.
    """

    shape: tuple[int, int]
    forward: tuple[complex, ...]
    adjoint: tuple[complex, ...]
    rtol: float
    atol: float

    @property
    def errors(self) -> tuple[float, ...]:
        """Relative error ``|a - b| / max(|a|, |b|)`` of each trial (0 when both are 0)."""
        return tuple(
            0.0 if a == b else abs(a - b) / max(abs(a), abs(b))
            for a, b in zip(self.forward, self.adjoint)
        )

    @property
    def passed(self) -> bool:
        return all(
            abs(a - b) <= self.atol + self.rtol * max(abs(a), abs(b))
            for a, b in zip(self.forward, self.adjoint)
        )

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        worst = max(self.errors, default=0.0)
        return (
            f"dot test {verdict} for a {self.shape[0]}x{self.shape[1]} operator: "
            f"{len(self.forward)} trials, worst relative error {worst:.3g} (rtol={self.rtol:g})"
        )


def _as_operator(op):
    from scipy.sparse.linalg import LinearOperator, aslinearoperator

    if isinstance(op, LinearOperator):
        return op
    try:
        return aslinearoperator(op)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            "op must be a scipy LinearOperator, a sparse matrix or a 2-D array, "
            f"got {type(op).__name__}"
        ) from exc


def _default_rtol(dtype: np.dtype) -> float:
    single = dtype.kind in "fc" and np.finfo(dtype).bits <= 32
    return 1e-4 if single else 1e-10


def _apply(method, v: np.ndarray, name: str, expected: int) -> np.ndarray:
    try:
        return np.ravel(method(v))
    except ValueError as exc:  # scipy's own shape check of the returned vector
        raise ConvAlgebraError(
            f"op.{name} must return a vector of length {expected} for one of length {v.size}: {exc}"
        ) from exc


def _random(rng: np.random.Generator, n: int, complex_: bool) -> np.ndarray:
    v = rng.standard_normal(n)
    return v + 1j * rng.standard_normal(n) if complex_ else v


def dottest(
    op,
    n_trials: int = 3,
    rtol: float | None = None,
    atol: float = 0.0,
    *,
    seed: int | None = 0,
    complex_data: bool | None = None,
    raise_error: bool = True,
) -> DotTestResult:
    """Check ``<op @ x, y> == <x, op.H @ y>`` for random vectors ``x`` and ``y``.

    Parameters
    ----------
    op : LinearOperator, sparse matrix or 2-D array
        Anything :func:`scipy.sparse.linalg.aslinearoperator` accepts; only ``matvec`` and
        ``rmatvec`` are used, so matrix-free operators are tested without being stored.
    n_trials : int, default 3
        Independent pairs ``(x, y)``.
    rtol : float, optional
        Relative tolerance; default ``1e-10`` for double precision, ``1e-4`` for single.
    atol : float, default 0
        A trial passes when ``|a - b| <= atol + rtol * max(|a|, |b|)``.
    seed : int or None, default 0
        Seed of the random vectors (``None``: fresh entropy).
    complex_data : bool, optional
        Use complex vectors; default: when ``op.dtype`` is complex.
    raise_error : bool, default True
        Raise ``AssertionError`` on failure instead of returning a falsy result.

    Returns
    -------
    DotTestResult
        Truthy when the test passed; carries both inner products of every trial.

    Notes
    -----
    With ``<u, v> = v^H u``: ``<M x, y> = y^H M x`` and ``<x, M^H y> = (M^H y)^H x``, equal for
    every ``x, y`` exactly when ``rmatvec`` applies the adjoint of ``matvec``.

    Examples
    --------
    >>> import numpy as np
    >>> from convalgebra import ConvSpec, conv_operator
    >>> op = conv_operator(ConvSpec((3, 64, 64), 8, 3, stride=2, padding=1), np.ones((8, 3, 3, 3)))
    >>> bool(dottest(op))
    True
    >>> wrong = np.array([[1.0, 2.0], [3.0, 4.0]])
    >>> from scipy.sparse.linalg import LinearOperator
    >>> bad = LinearOperator((2, 2), matvec=lambda v: wrong @ v, rmatvec=lambda v: wrong @ v)
    >>> bool(dottest(bad, raise_error=False))
    False
    """
    if isinstance(n_trials, bool) or not isinstance(n_trials, (int, np.integer)) or n_trials < 1:
        raise ConvAlgebraError(f"n_trials must be a positive integer, got {shown(n_trials)}")
    lin = _as_operator(op)
    if rtol is None:
        rtol = _default_rtol(np.dtype(lin.dtype))
    if not rtol >= 0 or not atol >= 0:
        raise ConvAlgebraError(f"rtol and atol must be non-negative, got rtol={rtol}, atol={atol}")
    n_rows, n_cols = lin.shape
    require_steps(
        f"dottest(n_trials={n_trials})",
        int(n_trials),
        MAX_TRIALS,
        "a few trials decide an adjoint pair: use fewer",
        option="MAX_TRIALS",
        unit="trials",
    )
    require_steps(
        f"dottest(n_trials={n_trials}) on shape {lin.shape}",
        int(n_trials) * (n_rows + n_cols),
        MAX_VECTOR_ENTRIES,
        "use fewer trials",
        option="MAX_VECTOR_ENTRIES",
        unit="random vector entries",
    )
    use_complex = np.iscomplexobj(np.empty(0, lin.dtype)) if complex_data is None else complex_data
    rng = np.random.default_rng(seed)
    forward, adjoint = [], []
    for _ in range(int(n_trials)):
        x, y = _random(rng, n_cols, use_complex), _random(rng, n_rows, use_complex)
        mx, mhy = (
            _apply(lin.matvec, x, "matvec", n_rows),
            _apply(lin.rmatvec, y, "rmatvec", n_cols),
        )
        if mx.shape != (n_rows,) or mhy.shape != (n_cols,):
            raise ConvAlgebraError(
                f"op of shape {lin.shape} returned matvec of shape {mx.shape} and rmatvec of "
                f"shape {mhy.shape}; expected ({n_rows},) and ({n_cols},)"
            )
        forward.append(complex(np.vdot(y, mx)))
        adjoint.append(complex(np.vdot(mhy, x)))
    result = DotTestResult((n_rows, n_cols), tuple(forward), tuple(adjoint), rtol, atol)
    if raise_error and not result:
        raise AssertionError(str(result))
    return result
