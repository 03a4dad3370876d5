"""Sparse exact integer constraint systems on a kernel, and their exact solution spaces.

A constraint system is a set of linear equations ``sum_k coeff_k * theta[col_k] = 0`` on the
flat kernel ``theta``, held as parallel arrays ``(row, col, coeff)``. The equivariance of a
layer, ``P_out M(theta) = M(theta) P_in``, is such a system: ``M`` is linear in ``theta`` through
the triple table, so every entry of the residual is an integer combination of weights.

When the gathers are permutations and the layer reads no pixel twice, each equation is
``theta[a] - theta[b] = 0`` or ``theta[a] = 0``: the solutions are spanned by the indicators
of the orbits (connected components) that hold no zeroed weight. :func:`integer_nullspace`
finds those components in linear time, substitutes them into the remaining equations and
solves what is left (if anything) by exact sparse elimination over the rationals.

Examples
--------
>>> s = SparseSystem(np.array([0, 0, 1]), np.array([0, 2, 3]), np.array([1, -1, 5]), 4)
>>> integer_nullspace(s).toarray().tolist()
[[1, 0, 1, 0], [0, 1, 0, 0]]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from .. import budget

__all__ = [
    "SparseSystem",
    "integer_nullspace",
    "annihilates",
    "exact_residual",
    "general_form",
    "sympy_basis",
]


@dataclass(frozen=True)
class SparseSystem:
    """Equations ``sum coeff * theta[col] = 0``, one per distinct ``row`` (parallel int arrays).

    Repeated ``(row, col)`` pairs are summed. ``n_cols`` is the number of unknowns.
    """

    row: np.ndarray
    col: np.ndarray
    coeff: np.ndarray
    n_cols: int

    @property
    def n_rows(self) -> int:
        return int(self.row.max()) + 1 if self.row.size else 0

    def matrix(self) -> sp.csr_matrix:
        """The system as a CSR integer matrix (empty rows kept, duplicates summed)."""
        m = sp.csr_matrix(
            (self.coeff.astype(np.int64), (self.row, self.col)),
            shape=(self.n_rows, self.n_cols),
            dtype=np.int64,
        )
        m.sum_duplicates()
        m.eliminate_zeros()
        return m

    @staticmethod
    def stack(systems: list[SparseSystem], n_cols: int) -> SparseSystem:
        """All equations of several systems on the same unknowns."""
        offsets = np.cumsum([0] + [s.n_rows for s in systems])
        if not systems:
            empty = np.zeros(0, dtype=np.int64)
            return SparseSystem(empty, empty, empty, n_cols)
        return SparseSystem(
            np.concatenate([s.row + off for s, off in zip(systems, offsets, strict=False)]),
            np.concatenate([s.col for s in systems]),
            np.concatenate([s.coeff for s in systems]),
            n_cols,
        )


def annihilates(system: SparseSystem, vectors: sp.spmatrix) -> bool:
    """True when every row of ``vectors`` solves ``system`` (exact integer arithmetic)."""
    if vectors.shape[0] == 0 or system.row.size == 0:
        return True
    product = system.matrix() @ sp.csr_matrix(vectors, dtype=np.int64).T
    return not sp.csr_matrix(product).count_nonzero()


def exact_residual(system: SparseSystem, values: np.ndarray) -> list:
    """``A @ values`` for object-dtype ``values`` (Fractions or sympy), one entry per row."""
    m = system.matrix().tocoo()
    out = np.array([0] * m.shape[0], dtype=object)
    np.add.at(out, m.row, m.data.astype(object) * values[m.col])
    return out.tolist()


def _reduce(m: sp.csr_matrix, label: np.ndarray, n_labels: int, zero: np.ndarray) -> sp.csr_matrix:
    """Columns of ``m`` merged by ``label`` (summed), the columns of zeroed labels dropped."""
    coo = m.tocoo()
    lab = label[coo.col]
    keep = ~zero[lab]
    out = sp.csr_matrix(
        (coo.data[keep], (coo.row[keep], lab[keep])), shape=(m.shape[0], n_labels), dtype=np.int64
    )
    out.sum_duplicates()
    out.eliminate_zeros()
    return out


def _orbits(m: sp.csr_matrix) -> tuple[np.ndarray, int, np.ndarray, sp.csr_matrix]:
    """Merge the unknowns tied by ``a - b = 0`` rows and zero those in ``c a = 0`` rows.

    Returns ``(label, n_labels, zero, rest)``: the component of every unknown, which
    components are forced to zero, and the remaining equations on the components.
    """
    n = m.shape[1]
    label, n_labels, zero = np.arange(n), n, budget.zeros(n, dtype=bool)
    while True:
        counts = np.diff(m.indptr)
        start = m.indptr[:-1]
        single = counts == 1
        pair = counts == 2
        a, b = m.indices[start[pair]], m.indices[start[pair] + 1]
        tie = m.data[start[pair]] == -m.data[start[pair] + 1]
        if not single.any() and not tie.any():
            return label, n_labels, zero, m
        graph = sp.coo_matrix(
            (budget.ones(int(tie.sum())), (a[tie], b[tie])), shape=(n_labels,) * 2
        )
        n_new, comp = connected_components(graph, directed=False)
        zeroed = zero.copy()
        zeroed[m.indices[start[single]]] = True
        zero = np.bincount(comp, weights=zeroed, minlength=n_new) > 0
        label, n_labels = comp[label], n_new
        m = _reduce(m, comp, n_new, zero)


def _rational_nullspace(m: sp.csr_matrix) -> list[list[int]]:
    """Integer basis of the nullspace of a small sparse integer matrix (exact, over QQ)."""
    from sympy import QQ
    from sympy.polys.matrices import DomainMatrix

    coo = m.tocoo()
    rows: dict = {}
    for r, c, v in zip(coo.row.tolist(), coo.col.tolist(), coo.data.tolist(), strict=True):
        rows.setdefault(r, {})[c] = QQ(int(v))
    null = DomainMatrix(rows, m.shape, QQ).nullspace().to_Matrix()
    basis = []
    for k in range(null.rows):
        vec = [Fraction(int(e.p), int(e.q)) for e in null.row(k)]
        scale = math.lcm(*[f.denominator for f in vec])
        ints = [int(f * scale) for f in vec]
        g = math.gcd(*ints) or 1
        sign = -1 if next(v for v in ints if v) < 0 else 1
        basis.append([sign * v // g for v in ints])
    return basis


def integer_nullspace(system: SparseSystem) -> sp.csr_matrix:
    """Exact integer basis of ``{theta : system}``, one basis kernel per row (CSR, int64).

    Orbit indicators come first from the union-find pass; only equations left after it are
    eliminated exactly. Rows are ordered by their first non-zero entry.

    Notes
    -----
    Rows ``theta[a] - theta[b]`` merge ``a`` and ``b`` into one component; rows with a single
    unknown zero its component. Both are found with ``connected_components`` (linear time)
    and substituted into the other rows, until none of either kind is left. The remaining
    rows (usually none) are solved by sparse rational elimination on the components they
    touch; every other live component contributes its indicator.
    """
    n = system.n_cols
    label, n_labels, zero, rest = _orbits(system.matrix())
    touched = np.unique(rest.indices)
    free = np.flatnonzero(~zero)
    free = free[~np.isin(free, touched)]
    rows, cols, vals = [np.arange(free.size)], [free], [np.ones(free.size, dtype=np.int64)]
    if touched.size:
        sub = rest[:, touched]
        sub = sub[np.diff(sub.indptr) > 0]
        for k, vec in enumerate(_rational_nullspace(sub)):
            nz = [(touched[i], v) for i, v in enumerate(vec) if v]
            rows.append(np.full(len(nz), free.size + k))
            cols.append(np.array([c for c, _ in nz], dtype=np.int64))
            vals.append(np.array([v for _, v in nz], dtype=np.int64))
    r, c, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    dim = int(r.max()) + 1 if r.size else 0
    on_labels = sp.csr_matrix((v, (r, c)), shape=(dim, n_labels), dtype=np.int64)
    live = ~zero[label]
    spread = sp.csr_matrix(
        (budget.ones(int(live.sum()), dtype=np.int64), (label[live], np.flatnonzero(live))),
        shape=(n_labels, n),
    )
    basis = sp.csr_matrix(on_labels @ spread)
    basis.sort_indices()
    if dim == 0:
        return basis
    first = np.where(
        np.diff(basis.indptr) > 0, basis.indices[np.minimum(basis.indptr[:-1], basis.nnz - 1)], n
    )
    return sp.csr_matrix(basis[np.argsort(first, kind="stable")])


def sympy_basis(basis: sp.spmatrix, shape: tuple[int, ...]) -> list:
    """The rows of an integer basis as sympy arrays of ``shape``."""
    import sympy

    dense = budget.dense(basis, what="the kernel basis")
    return [
        sympy.ImmutableDenseNDimArray([sympy.Integer(int(v)) for v in row], shape) for row in dense
    ]


def general_form(basis: sp.spmatrix, shape: tuple[int, ...]):
    """``sum_k c_k basis_k`` as a sympy array of ``shape`` in parameters ``c1, c2, ...``."""
    import sympy

    params = sympy.symbols(f"c1:{basis.shape[0] + 1}")
    coo = basis.tocoo()
    entries = [sympy.Integer(0)] * basis.shape[1]
    for r, c, v in zip(coo.row.tolist(), coo.col.tolist(), coo.data.tolist(), strict=True):
        entries[c] += int(v) * params[r]
    return sympy.ImmutableDenseNDimArray(entries, shape)
