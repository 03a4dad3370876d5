"""Decide ``L P = Q R`` for layers ``L``, ``R`` and grid gathers ``P``, ``Q`` (equivariance).

``L`` and ``R`` are usually the same layer; they differ when the transformation changes the
grid size (rescaling), where ``L`` is the layer on the transformed input. Both share one
kernel. With a symbolic kernel the identity is decided on index tables (see
:mod:`.engine`); for a plain spec, a spatial transformation and a layer that reads no pixel
twice, one channel pair's spatial table is compared tap by tap in O(nnz). Either way the
residual is also returned as the exact equations on the kernel for which the identity holds
(:class:`~.constraints.SparseSystem`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import budget
from ..connectivity import axis_table, spatial_table, tap_weight_order
from ..errors import ConvAlgebraError
from ..operators import conv_operator
from ..spec import ConvSpec
from .common import is_symbolic
from .constraints import SparseSystem, general_form, integer_nullspace
from .engine import apply_gather, intertwiner_residual, is_plain, layer_table, lift_gather
from .result import Counterexample
from .transforms import GridTransform

__all__ = [
    "Intertwining",
    "intertwine",
    "numeric_sides",
    "weight_values",
    "kernel_solutions",
    "residual_system",
    "make_counterexample",
    "numeric_weight",
    "axis_inverse",
]


@dataclass(frozen=True)
class Intertwining:
    """Outcome of :func:`intertwine`.

    ``failing`` are flat output indices of ``L P - Q R`` that are not identically zero;
    ``system`` the equations on the kernel for which the identity holds (generic kernel
    only, else ``None``).
    """

    failing: np.ndarray
    witness: tuple | None  # (x flat index, weight array or None, output flat index)
    system: SparseSystem | None
    n_terms: int


def _channel_src(perm, n: int, name: str) -> np.ndarray:
    if perm is None:
        return np.arange(n)
    perm = np.asarray(perm)
    if perm.shape != (n,) or sorted(perm.tolist()) != list(range(n)):
        raise ConvAlgebraError(f"{name} must be a permutation of range({n}), got {perm.tolist()}")
    return perm.astype(np.int64)


def weight_values(weight, spec: ConvSpec) -> np.ndarray:
    """The kernel as a flat array: numeric (float/int) or object (sympy), shape-checked."""
    array = np.asarray(weight, dtype=object)
    if array.shape != spec.weight_shape:
        raise ConvAlgebraError(
            f"weight must have shape {spec.weight_shape} for {spec.describe()}, got {array.shape}"
        )
    if not is_symbolic(array):
        return np.asarray(weight, dtype=np.float64).ravel()
    from ..symbolic.exprs import as_expr_array

    return as_expr_array(array, spec.weight_shape, "weight").ravel()


def _evaluate_rows(o, j, w, coeff, wflat) -> tuple[np.ndarray, np.ndarray, list]:
    """Residual entries ``(o, j)`` for a given kernel; returns the non-zero ones."""
    pairs = np.stack((o, j), axis=1)
    if pairs.size == 0:
        return pairs[:, 0], pairs[:, 1], []
    uniq, inv = np.unique(pairs, axis=0, return_inverse=True)
    inv = inv.ravel()
    if wflat.dtype != object:
        vals = np.bincount(inv, weights=coeff * wflat[w], minlength=len(uniq))
        scale = max(1.0, float(np.abs(wflat).max(initial=0.0)))
        keep = np.abs(vals) > 1e-9 * scale
        return uniq[keep, 0], uniq[keep, 1], vals[keep].tolist()
    import sympy

    sums = [sympy.Integer(0)] * len(uniq)
    for r, c, k in zip(inv.tolist(), coeff.tolist(), w.tolist(), strict=True):
        sums[r] += c * wflat[k]
    exprs = [sympy.expand(s) for s in sums]
    keep = np.array([v != 0 for v in exprs], dtype=bool)
    return uniq[keep, 0], uniq[keep, 1], [v for v, k in zip(exprs, keep, strict=True) if k]


def axis_inverse(spec: ConvSpec, axis: int) -> np.ndarray | None:
    """``inv[o, c]``: the tap of output ``o`` reading input ``c`` along ``axis`` (-1: none);
    ``None`` when some output reads one input position through two taps."""
    tab = axis_table(spec, axis)
    n_in = spec.forward_input_spatial[axis]
    r, t = np.nonzero(tab >= 0)
    inv = budget.full((tab.shape[0], n_in), -1, dtype=np.int64)
    inv[r, tab[r, t]] = t
    return inv if np.count_nonzero(inv >= 0) == r.size else None


def _tap_reading(inverses, spec: ConvSpec, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Flat spatial tap by which output ``rows`` reads input ``cols`` (-1: none or no row)."""
    ok = (rows >= 0) & (cols >= 0)
    ro = np.unravel_index(np.where(ok, rows, 0), spec.forward_output_spatial)
    co = np.unravel_index(np.where(ok, cols, 0), spec.forward_input_spatial)
    taps = [inv[r, c] for inv, r, c in zip(inverses, ro, co, strict=True)]
    found = ok & np.logical_and.reduce([t >= 0 for t in taps])
    flat = np.ravel_multi_index(tuple(np.maximum(t, 0) for t in taps), spec.kernel_size)
    return np.where(found, flat, -1)


def _fast_applies(left: ConvSpec, right: ConvSpec, in_src: np.ndarray, in_perm, out_perm):
    """The per-axis inverses of both layers when the spatial fast path is exact, else None."""
    if in_perm is not None or out_perm is not None:
        return None
    if not (is_plain(left) and is_plain(right)) or left.transposed or right.transposed:
        return None
    valid = in_src[in_src >= 0]
    if np.bincount(valid, minlength=1).max(initial=0) > 1:
        return None
    inverses = [[axis_inverse(s, a) for a in range(s.ndim)] for s in (left, right)]
    if any(inv is None for pair in inverses for inv in pair):
        return None
    return inverses


def _guesses(inverses, right: ConvSpec, lhs: np.ndarray, out_src: np.ndarray) -> list:
    """Candidate tap maps ``t -> t'``, read off a few sample rows (``-1`` where none)."""
    n, k = lhs.shape
    rows = np.unique(np.linspace(0, n - 1, 7).astype(np.int64))
    found = _tap_reading(inverses, right, np.repeat(out_src[rows], k), lhs[rows].ravel())
    return [g for g in np.unique(found.reshape(rows.size, k), axis=0) if (g >= 0).any()]


def _spatial_intertwine(left, right, in_src, out_src, inverses) -> Intertwining:
    """``L P = Q R`` on one channel pair's spatial tables, compared tap by tap in O(nnz).

    Row ``o`` of ``L P`` reads ``in_src[spL[o, t]]`` through tap ``t``, row ``o`` of ``Q R``
    reads ``spR[out_src[o], t]``; with a generic kernel the rows agree exactly when they agree
    at every tap. A mismatched tap ``t`` is tied to the tap ``t'`` of the other side that reads
    the same input (``theta[t] = theta[t']``), or zeroed when there is none. Tap maps read off
    sample rows tie most entries at once (all of them on a symmetric grid); the rest are
    looked up one by one.
    """
    spl, spr = spatial_table(left), spatial_table(right)
    lhs = np.append(in_src, -1)[spl]  # the trailing -1: padding taps read nothing
    rhs = spr[np.maximum(out_src, 0)]
    rhs[out_src < 0] = -1
    bad = lhs != rhs
    k = spl.shape[1]
    todo = bad & (lhs >= 0)
    tied = np.zeros_like(bad)
    pairs = []
    for g in _guesses(inverses[1], right, lhs, out_src):
        hit = todo & (g >= 0)[None, :] & (lhs == rhs[:, np.maximum(g, 0)])
        cols = np.flatnonzero(hit.any(axis=0))
        pairs.append(cols * k + g[cols])
        tied |= hit
        todo &= ~hit
    o, t = np.nonzero(todo)
    partner = _tap_reading(inverses[1], right, out_src[o], lhs[o, t])
    found = partner >= 0
    pairs.append(t[found] * k + partner[found])
    zeros = [t[~found]]
    matched = tied.sum(axis=1) + np.bincount(o[found], minlength=bad.shape[0])
    need = (bad & (rhs >= 0)).sum(axis=1)
    ob, tb = np.nonzero(bad & (rhs >= 0) & (matched < need)[:, None])
    inv_src = budget.full(max(in_src.max(initial=-1), rhs.max(initial=-1)) + 1, -1, dtype=np.int64)
    inv_src[in_src[in_src >= 0]] = np.flatnonzero(in_src >= 0)
    back = _tap_reading(inverses[0], left, ob, inv_src[rhs[ob, tb]])
    zeros.append(tb[back < 0])
    pairs_all = np.unique(np.concatenate(pairs))
    system = _lift_spatial(left, pairs_all // k, pairs_all % k, np.unique(np.concatenate(zeros)))
    n_sp = math.prod(left.output_shape[1:])
    spatial_fail = np.flatnonzero(bad.any(axis=1))
    failing = (np.arange(left.output_shape[0])[:, None] * n_sp + spatial_fail[None, :]).ravel()
    witness = None
    if spatial_fail.size:
        o0 = int(spatial_fail[0])
        t0 = int(np.argmax(bad[o0]))
        wt = budget.zeros(math.prod(left.weight_shape))
        wt[tap_weight_order(left)[t0]] = 1.0
        j = lhs[o0, t0] if lhs[o0, t0] >= 0 else rhs[o0, t0]
        witness = (int(j), wt.reshape(left.weight_shape), o0)
    return Intertwining(np.sort(failing), witness, system, int((spl >= 0).sum()))


def _lift_spatial(
    spec: ConvSpec, ta: np.ndarray, tb: np.ndarray, zeros: np.ndarray
) -> SparseSystem:
    """Spatial equations ``theta[ta] = theta[tb]``, ``theta[zeros] = 0`` for every channel pair."""
    k = math.prod(spec.kernel_size)
    n_w = math.prod(spec.weight_shape)
    order = tap_weight_order(spec)
    base = np.arange(n_w // k)[:, None] * k
    a, b, z = (base + order[v][None, :] for v in (ta, tb, zeros))
    n_pairs = a.size
    row = np.concatenate((np.arange(n_pairs), np.arange(n_pairs), n_pairs + np.arange(z.size)))
    col = np.concatenate((a.ravel(), b.ravel(), z.ravel()))
    coeff = np.concatenate(
        (budget.ones(n_pairs), -budget.ones(n_pairs), budget.ones(z.size))
    ).astype(np.int64)
    return SparseSystem(row, col, coeff, n_w)


def residual_system(o, j, w, coeff, n_w: int) -> SparseSystem:
    """The equations of a residual ``(o, j, w, coeff)`` sorted by ``(o, j)``: one per entry."""
    new = np.ones(o.size, dtype=bool)
    new[1:] = (o[1:] != o[:-1]) | (j[1:] != j[:-1])
    return SparseSystem(np.cumsum(new) - 1, w.astype(np.int64), coeff.astype(np.int64), n_w)


def intertwine(
    left: ConvSpec,
    right: ConvSpec,
    in_t: GridTransform,
    out_t: GridTransform,
    weight=None,
    in_perm=None,
    out_perm=None,
) -> Intertwining:
    """Residual of ``L(P x) = Q(R x)`` over all kernels (``weight=None``) or for one kernel."""
    in_spatial = right.input_shape[1:]
    in_src = in_t.gather(in_spatial)
    out_src = out_t.gather(right.output_shape[1:])
    if in_src.size != math.prod(left.input_shape[1:]) or out_src.size != math.prod(
        left.output_shape[1:]
    ):
        raise ConvAlgebraError("internal: transformed grids do not match the layer shapes")
    inverses = _fast_applies(left, right, in_src, in_perm, out_perm) if weight is None else None
    if inverses is not None:
        return _spatial_intertwine(left, right, in_src, out_src, inverses)
    c_in, c_out = right.input_shape[0], right.output_shape[0]
    lt, rt = layer_table(left), layer_table(right)
    in_full = lift_gather(in_src, math.prod(in_spatial), _channel_src(in_perm, c_in, "in_perm"))
    out_full = lift_gather(
        out_src, math.prod(right.output_shape[1:]), _channel_src(out_perm, c_out, "out_perm")
    )
    o, j, w, c = intertwiner_residual(lt, in_full, rt, out_full)
    witness: tuple | None
    if weight is None:
        witness = None
        if o.size:
            wt = budget.zeros(lt.n_weights)
            wt[w[0]] = 1.0
            witness = (int(j[0]), wt.reshape(left.weight_shape), int(o[0]))
        return Intertwining(
            np.unique(o), witness, residual_system(o, j, w, c, lt.n_weights), len(lt)
        )
    wflat = weight_values(weight, left)
    fo, fj, _ = _evaluate_rows(o, j, w, c, wflat)
    witness = (int(fj[0]), None, int(fo[0])) if fo.size else None
    return Intertwining(np.unique(fo), witness, None, len(lt))


def numeric_sides(
    left: ConvSpec,
    right: ConvSpec,
    in_t: GridTransform,
    out_t: GridTransform,
    x: np.ndarray,
    weight: np.ndarray,
    in_perm=None,
    out_perm=None,
):
    """``(L(P x), Q(R x))`` evaluated with sparse matrices, shaped as ``left.output_shape``."""
    c_in, c_out = right.input_shape[0], right.output_shape[0]
    in_full = lift_gather(
        in_t.gather(right.input_shape[1:]),
        math.prod(right.input_shape[1:]),
        _channel_src(in_perm, c_in, "in_perm"),
    )
    out_full = lift_gather(
        out_t.gather(right.output_shape[1:]),
        math.prod(right.output_shape[1:]),
        _channel_src(out_perm, c_out, "out_perm"),
    )
    # matrix-free: the counterexample of a huge layer must not build its matrix
    lhs = conv_operator(left, weight) @ apply_gather(in_full, np.asarray(x, float))
    rhs = apply_gather(out_full, conv_operator(right, weight) @ np.asarray(x, float).ravel())
    return lhs.reshape(left.output_shape), rhs.reshape(left.output_shape)


def numeric_weight(weight, spec: ConvSpec, x: np.ndarray, check, seed: int = 0) -> np.ndarray:
    """A numeric kernel for a counterexample: the given numbers, or the symbols replaced by
    small random integers until ``check(w)`` (the two sides differ) is true."""
    wflat = weight_values(weight, spec)
    if wflat.dtype != object:
        return wflat.reshape(spec.weight_shape)
    rng = np.random.default_rng(seed)
    free = sorted(set().union(*[v.free_symbols for v in wflat]), key=str)
    for _ in range(50):
        values = dict(zip(free, rng.integers(-3, 4, len(free)).tolist(), strict=True))
        w = np.array([float(v.subs(values)) for v in wflat]).reshape(spec.weight_shape)
        if check(w):
            return w
    raise ConvAlgebraError("internal: no numeric kernel separates the two sides")


def make_counterexample(
    left,
    right,
    in_t,
    out_t,
    result: Intertwining,
    weight,
    in_perm=None,
    out_perm=None,
    names=("L(P x)", "Q(L x)"),
) -> Counterexample:
    """Turn the witness of a failing check into verified numbers (one-hot input and kernel)."""
    if result.witness is None:
        raise ConvAlgebraError("internal: a counterexample needs the witness of a failing check")
    j, wt, _ = result.witness
    x = budget.zeros(math.prod(right.input_shape))
    x[j] = 1.0
    x = x.reshape(right.input_shape)

    def differs(w):
        lhs, rhs = numeric_sides(left, right, in_t, out_t, x, w, in_perm, out_perm)
        return not np.allclose(lhs, rhs)

    w = wt if wt is not None else numeric_weight(weight, left, x, differs)
    lhs, rhs = numeric_sides(left, right, in_t, out_t, x, w, in_perm, out_perm)
    bad = np.argwhere(~np.isclose(lhs, rhs))
    if bad.size == 0:
        raise ConvAlgebraError("internal: the counterexample does not fail; please report")
    at = tuple(int(v) for v in bad[0])
    src = tuple(int(v) for v in np.unravel_index(j, right.input_shape))
    kind = "a one-hot kernel" if wt is not None else "the kernel below"
    return Counterexample(
        {"x": x, "weight": w},
        lhs,
        rhs,
        at,
        f"x is a single 1 at input {tuple(i + 1 for i in src)} (1-based), with {kind}: "
        f"{names[0]} and {names[1]} differ at output {tuple(i + 1 for i in at)} "
        f"({lhs[at]:g} vs {rhs[at]:g})",
    )


def kernel_solutions(result: Intertwining, spec: ConvSpec):
    """The kernels for which the identity holds at this size, as ``(dimension, general)``.

    ``general`` is a sympy array of ``spec.weight_shape`` in parameters ``c1, c2, ...``
    (``None`` above 400 kernel entries, where only the dimension is reported).
    """
    if result.system is None:
        raise ConvAlgebraError("internal: kernel_solutions needs a generic-kernel residual")
    basis = integer_nullspace(result.system)
    general = general_form(basis, spec.weight_shape) if basis.shape[1] <= 400 else None
    return basis.shape[0], general
