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

import numpy as np

from ..connectivity import TripleTable, layer_rows_cols, triples
from ..spec import ConvSpec

__all__ = [
    "layer_table",
    "is_plain",
    "count_tuples",
    "intertwiner_residual",
    "path_tuples",
    "apply_gather",
    "lift_gather",
]


def _grouped(table: TripleTable) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(order, starts, counts): the triples sorted by output index and each row's range."""
    order = np.argsort(table.out_index, kind="stable")
    counts = np.bincount(table.out_index, minlength=table.shape[0])
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    return order, starts, counts


def is_plain(spec: ConvSpec) -> bool:
    """True for an ordinary convolution: every channel pair shares one spatial pattern."""
    return spec.tile is None and spec.channel_table is None


def layer_table(spec: ConvSpec) -> TripleTable:
    """The layer's own triples: for a transposed spec, the forward table with roles swapped.

    ``out_index``/``in_index`` index the *layer's* output and input (its matrix rows and
    columns), unlike :func:`~convalgebra.connectivity.triples`, which keeps the forward roles.

    Examples
    --------
    >>> t = layer_table(ConvSpec((1, 2), 1, 2, transposed=True))
    >>> t.out_index.tolist(), t.in_index.tolist(), t.shape
    ([0, 1, 1, 2], [0, 0, 1, 1], (3, 2))
    """
    t = triples(spec)
    if not spec.transposed:
        return t
    rows, cols = layer_rows_cols(spec, t)
    return TripleTable(rows, cols, t.weight_index, (t.shape[1], t.shape[0]), t.n_weights)


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


def _gather_rows(table: TripleTable, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each requested row (a row index of ``table``), its triples: (which request, triple)."""
    order, starts, counts = _grouped(table)
    reps = counts[rows]
    which = np.repeat(np.arange(rows.size), reps)
    offset = np.arange(which.size) - np.repeat(np.cumsum(reps) - reps, reps)
    return which, order[starts[rows][which] + offset]


def intertwiner_residual(
    left: TripleTable, in_src: np.ndarray, right: TripleTable, out_src: np.ndarray
):
    """Residual of ``L P = Q R`` with gathers ``P`` (``in_src``) and ``Q`` (``out_src``).

    ``(L P x)[o] = sum L[o, i] x[in_src[i]]``, ``(Q R x)[o] = (R x)[out_src[o]]``. Returns
    ``(o, j, w, coeff)``: entry ``(o, j)`` of ``L P - Q R`` has coefficient ``coeff`` on
    weight ``w``; empty when the identity holds for every kernel.
    """
    src = in_src[left.in_index]
    ok = src >= 0
    lo, lj, lw = left.out_index[ok], src[ok], left.weight_index[ok]
    rows = np.flatnonzero(out_src >= 0)
    which, tri = _gather_rows(right, out_src[rows])
    ro, rj, rw = rows[which], right.in_index[tri], right.weight_index[tri]
    signs = np.concatenate((np.ones(lo.size), -np.ones(ro.size)))
    cols, coeff = count_tuples(
        [np.concatenate((lo, ro)), np.concatenate((lj, rj)), np.concatenate((lw, rw))],
        [left.shape[0], right.shape[1], max(left.n_weights, right.n_weights)],
        signs,
    )
    return cols[0], cols[1], cols[2], coeff


def path_tuples(first: TripleTable, second: TripleTable):
    """Index tuples ``(o, i, w_second, w_first)`` of the product ``second ∘ first``.

    ``(second(first x))[o] = sum over paths o <- m <- i of theta2[w2] theta1[w1] x[i]``.
    """
    which, tri = _gather_rows(first, second.in_index)
    return (
        second.out_index[which],
        first.in_index[tri],
        second.weight_index[which],
        first.weight_index[tri],
    )


def apply_gather(src: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``(P x)[i] = x[src[i]]``, zero where ``src[i] < 0`` (numeric, any dtype)."""
    flat = np.asarray(x).ravel()
    return np.where(src >= 0, flat[np.maximum(src, 0)], 0).astype(flat.dtype, copy=False)


def lift_gather(spatial_src: np.ndarray, n_spatial: int, channel_src: np.ndarray) -> np.ndarray:
    """Gather on ``(C, *spatial)`` from a spatial gather and a channel gather."""
    ch = np.asarray(channel_src)[:, None] * n_spatial
    flat = np.where(spatial_src[None, :] >= 0, ch + spatial_src[None, :], -1)
    return flat.ravel()
