"""The index-table engine behind the checks: identities of bilinear maps decided in O(nnz).

A layer is a table of triples ``(out, in, w)``: ``y[out] += weight[w] * x[in]``. With a
symbolic kernel (one independent symbol per weight), two sums of such products are equal
exactly when they hold the same multiset of index tuples. So an identity such as
``M(w) P = Q M(w)`` (equivariance, ``P`` and ``Q`` gathers) or ``M1 M2 = M2 M1``
(commutativity) is decided by building the index tuples of both sides, counting them with
sign +1 / -1 and keeping the tuples whose count is not zero: the *residual*. Nothing is
multiplied as a dense matrix; the cost is a sort of the tuples.

A gather ``P`` is an int array ``src`` with ``(P x)[i] = x[src[i]]``, or 0 where ``src[i] < 0``
(zero fill). Translations, 90° rotations, flips, transpositions and integer rescalings
of a grid are all gathers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..connectivity import layer_rows_cols, spatial_table, triples
from ..spec import ConvSpec

__all__ = [
    "Table",
    "layer_table",
    "spatial_layer_table",
    "is_plain",
    "count_tuples",
    "intertwiner_residual",
    "path_tuples",
    "apply_gather",
    "lift_gather",
    "dense_rows",
    "rational_nullspace",
]


@dataclass(frozen=True)
class Table:
    """Triples ``(out, inn, w)`` of a linear map ``y[out] += theta[w] * x[inn]``."""

    out: np.ndarray
    inn: np.ndarray
    w: np.ndarray
    n_out: int
    n_in: int
    n_w: int

    def grouped(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(order, starts, counts): the triples sorted by ``out`` and each row's range."""
        order = np.argsort(self.out, kind="stable")
        counts = np.bincount(self.out, minlength=self.n_out)
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        return order, starts, counts


def is_plain(spec: ConvSpec) -> bool:
    """True for an ordinary convolution: every channel pair shares one spatial pattern."""
    return spec.tile is None and spec.channel_table is None


def layer_table(spec: ConvSpec) -> Table:
    """The layer's own triples (for a transposed spec, the forward table with roles swapped)."""
    t = triples(spec)
    rows, cols = layer_rows_cols(spec, t)
    return Table(rows, cols, t.weight_index, math.prod(spec.output_shape),
                 math.prod(spec.input_shape), t.n_weights)


def spatial_layer_table(spec: ConvSpec) -> Table:
    """One channel pair's triples, ``w`` = spatial tap: the whole layer for a plain spec."""
    sp = spatial_table(spec)
    pos, tap = np.nonzero(sp >= 0)
    n_out, n_in = sp.shape[0], math.prod(spec.forward_input_spatial)
    if spec.transposed:
        return Table(sp[pos, tap], pos, tap, n_in, n_out, sp.shape[1])
    return Table(pos, sp[pos, tap], tap, n_out, n_in, sp.shape[1])


def count_tuples(columns: list[np.ndarray], sizes: list[int], signs: np.ndarray):
    """Sum ``signs`` over equal index tuples; return the tuples whose sum is not zero.

    Returns ``(columns, counts)``: the distinct tuples (one array per column) and their
    non-zero signed counts.
    """
    if columns[0].size == 0:
        return [c[:0] for c in columns], signs[:0]
    if math.prod(sizes) < 2**62:
        keys = np.ravel_multi_index(tuple(columns), tuple(sizes))
        uniq, inverse = np.unique(keys, return_inverse=True)
        total = np.bincount(inverse, weights=signs, minlength=uniq.size).astype(np.int64)
        keep = total != 0
        return list(np.unravel_index(uniq[keep], tuple(sizes))), total[keep]
    stacked = np.stack(columns, axis=1)
    uniq, inverse = np.unique(stacked, axis=0, return_inverse=True)
    total = np.bincount(inverse.ravel(), weights=signs, minlength=len(uniq)).astype(np.int64)
    keep = total != 0
    return [uniq[keep, k] for k in range(len(columns))], total[keep]


def _gather_rows(table: Table, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each requested row (a row index of ``table``), its triples: (which request, triple)."""
    order, starts, counts = table.grouped()
    reps = counts[rows]
    which = np.repeat(np.arange(rows.size), reps)
    offset = np.arange(which.size) - np.repeat(np.cumsum(reps) - reps, reps)
    return which, order[starts[rows][which] + offset]


def intertwiner_residual(left: Table, in_src: np.ndarray, right: Table, out_src: np.ndarray):
    """Residual of ``L P = Q R`` with gathers ``P`` (``in_src``) and ``Q`` (``out_src``).

    ``(L P x)[o] = sum L[o, i] x[in_src[i]]``, ``(Q R x)[o] = (R x)[out_src[o]]``. Returns
    ``(o, j, w, coeff)``: entry ``(o, j)`` of ``L P - Q R`` has coefficient ``coeff`` on
    weight ``w``; empty when the identity holds for every kernel.
    """
    src = in_src[left.inn]
    ok = src >= 0
    lo, lj, lw = left.out[ok], src[ok], left.w[ok]
    rows = np.flatnonzero(out_src >= 0)
    which, tri = _gather_rows(right, out_src[rows])
    ro, rj, rw = rows[which], right.inn[tri], right.w[tri]
    signs = np.concatenate((np.ones(lo.size), -np.ones(ro.size)))
    cols, coeff = count_tuples(
        [np.concatenate((lo, ro)), np.concatenate((lj, rj)), np.concatenate((lw, rw))],
        [left.n_out, right.n_in, max(left.n_w, right.n_w)],
        signs,
    )
    return cols[0], cols[1], cols[2], coeff


def path_tuples(first: Table, second: Table):
    """Index tuples ``(o, i, w_second, w_first)`` of the product ``second ∘ first``.

    ``(second(first x))[o] = sum over paths o <- m <- i of theta2[w2] theta1[w1] x[i]``.
    """
    which, tri = _gather_rows(first, second.inn)
    return second.out[which], first.inn[tri], second.w[which], first.w[tri]


def apply_gather(src: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``(P x)[i] = x[src[i]]``, zero where ``src[i] < 0`` (numeric, any dtype)."""
    flat = np.asarray(x).ravel()
    return np.where(src >= 0, flat[np.maximum(src, 0)], 0).astype(flat.dtype, copy=False)


def lift_gather(spatial_src: np.ndarray, n_spatial: int, channel_src: np.ndarray) -> np.ndarray:
    """Gather on ``(C, *spatial)`` from a spatial gather and a channel gather."""
    ch = np.asarray(channel_src)[:, None] * n_spatial
    flat = np.where(spatial_src[None, :] >= 0, ch + spatial_src[None, :], -1)
    return flat.ravel()


def dense_rows(o: np.ndarray, j: np.ndarray, w: np.ndarray, coeff: np.ndarray, n_w: int) -> np.ndarray:
    """The distinct rows of the residual as a dense int matrix (one row per linear constraint)."""
    if o.size == 0:
        return np.zeros((0, n_w), dtype=np.int64)
    pairs = np.stack((o, j), axis=1)
    _, row = np.unique(pairs, axis=0, return_inverse=True)
    row = row.ravel()
    dense = np.zeros((row.max() + 1, n_w), dtype=np.int64)
    np.add.at(dense, (row, w), coeff)
    return np.unique(dense, axis=0)


def rational_nullspace(rows: np.ndarray, n_cols: int) -> list:
    """Exact basis of ``{v : rows @ v == 0}`` as sympy column matrices (rref over QQ)."""
    import sympy
    from sympy.polys.matrices import DomainMatrix

    if rows.size == 0 or not rows.any():
        return [sympy.Matrix.eye(n_cols)[:, k] for k in range(n_cols)]
    rows = rows[np.any(rows != 0, axis=1)]
    dm = DomainMatrix([[sympy.QQ(int(v)) for v in r] for r in rows.tolist()], rows.shape, sympy.QQ)
    null = dm.nullspace().to_Matrix()
    basis = [null.row(k).T for k in range(null.rows)]
    return [_normalise(v) for v in basis]


def _normalise(v):
    """Scale a rational vector to coprime integers with a positive first non-zero entry."""
    import sympy

    dens = [sympy.fraction(sympy.nsimplify(e))[1] for e in v]
    lcm = sympy.ilcm(*dens) if dens else 1
    v = v * lcm
    g = sympy.igcd(*[int(e) for e in v]) or 1
    v = v / g
    first = next((e for e in v if e != 0), 1)
    return v if first > 0 else -v
