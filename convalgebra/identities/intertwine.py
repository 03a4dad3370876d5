"""Decide ``L P = Q R`` for layers ``L``, ``R`` and grid gathers ``P``, ``Q`` (equivariance).

``L`` and ``R`` are usually the same layer; they differ when the transformation changes the
grid size (rescaling), where ``L`` is the layer on the transformed input. Both share one
kernel. With a symbolic kernel the identity is decided on index tables (see
:mod:`.engine`); for a plain spec and a spatial transformation only one channel pair's
spatial table is needed, because every channel pair repeats it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..connectivity import tap_weight_order
from ..errors import ConvAlgebraError
from ..operators import conv_matrix
from ..spec import ConvSpec
from .common import is_symbolic
from .engine import (
    apply_gather,
    dense_rows,
    intertwiner_residual,
    is_plain,
    layer_table,
    lift_gather,
    rational_nullspace,
    spatial_layer_table,
)
from .result import Counterexample
from .transforms import GridTransform

__all__ = ["Intertwining", "intertwine", "numeric_sides", "weight_values"]


@dataclass(frozen=True)
class Intertwining:
    """Outcome of :func:`intertwine`.

    ``failing`` are flat output indices of ``L P - Q R`` that are not identically zero;
    ``rows`` the residual's distinct constraint rows (generic kernel only, else ``None``);
    ``spatial`` tells whether ``rows`` act on one channel pair's taps (plain fast path).
    """

    failing: np.ndarray
    witness: tuple | None  # (x flat index, weight array or None, output flat index)
    rows: np.ndarray | None
    spatial: bool
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
    from ..exprs import as_expr_array

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
    for r, c, k in zip(inv.tolist(), coeff.tolist(), w.tolist()):
        sums[r] += c * wflat[k]
    vals = [sympy.expand(s) for s in sums]
    keep = np.array([v != 0 for v in vals], dtype=bool)
    return uniq[keep, 0], uniq[keep, 1], [v for v, k in zip(vals, keep) if k]


def intertwine(left: ConvSpec, right: ConvSpec, in_t: GridTransform, out_t: GridTransform,
               weight=None, in_perm=None, out_perm=None) -> Intertwining:
    """Residual of ``L(P x) = Q(R x)`` over all kernels (``weight=None``) or for one kernel."""
    in_spatial = right.input_shape[1:]
    in_src = in_t.gather(in_spatial)
    out_src = out_t.gather(right.output_shape[1:])
    if in_src.size != math.prod(left.input_shape[1:]) or out_src.size != math.prod(left.output_shape[1:]):
        raise ConvAlgebraError("internal: transformed grids do not match the layer shapes")
    if weight is None and in_perm is None and out_perm is None and is_plain(left) and is_plain(right):
        lt, rt = spatial_layer_table(left), spatial_layer_table(right)
        o, j, w, c = intertwiner_residual(lt, in_src, rt, out_src)
        spatial_fail = np.unique(o)
        n_sp = math.prod(left.output_shape[1:])
        failing = (np.arange(left.output_shape[0])[:, None] * n_sp + spatial_fail[None, :]).ravel()
        witness = None
        if o.size:
            wt = np.zeros(math.prod(left.weight_shape))
            wt[tap_weight_order(left)[w[0]]] = 1.0
            witness = (int(j[0]), wt.reshape(left.weight_shape), int(o[0]))
        return Intertwining(np.sort(failing), witness, dense_rows(o, j, w, c, lt.n_w), True, len(lt.out))
    c_in, c_out = right.input_shape[0], right.output_shape[0]
    lt, rt = layer_table(left), layer_table(right)
    in_full = lift_gather(in_src, math.prod(in_spatial), _channel_src(in_perm, c_in, "in_perm"))
    out_full = lift_gather(out_src, math.prod(right.output_shape[1:]),
                           _channel_src(out_perm, c_out, "out_perm"))
    o, j, w, c = intertwiner_residual(lt, in_full, rt, out_full)
    if weight is None:
        witness = None
        if o.size:
            wt = np.zeros(lt.n_w)
            wt[w[0]] = 1.0
            witness = (int(j[0]), wt.reshape(left.weight_shape), int(o[0]))
        rows = dense_rows(o, j, w, c, lt.n_w) if lt.n_w <= 400 else None
        return Intertwining(np.unique(o), witness, rows, False, len(lt.out))
    wflat = weight_values(weight, left)
    fo, fj, _ = _evaluate_rows(o, j, w, c, wflat)
    witness = (int(fj[0]), None, int(fo[0])) if fo.size else None
    return Intertwining(np.unique(fo), witness, None, False, len(lt.out))


def numeric_sides(left: ConvSpec, right: ConvSpec, in_t: GridTransform, out_t: GridTransform,
                  x: np.ndarray, weight: np.ndarray, in_perm=None, out_perm=None):
    """``(L(P x), Q(R x))`` evaluated with sparse matrices, shaped as ``left.output_shape``."""
    c_in, c_out = right.input_shape[0], right.output_shape[0]
    in_full = lift_gather(in_t.gather(right.input_shape[1:]), math.prod(right.input_shape[1:]),
                          _channel_src(in_perm, c_in, "in_perm"))
    out_full = lift_gather(out_t.gather(right.output_shape[1:]), math.prod(right.output_shape[1:]),
                           _channel_src(out_perm, c_out, "out_perm"))
    lhs = conv_matrix(left, weight) @ apply_gather(in_full, x)
    rhs = apply_gather(out_full, conv_matrix(right, weight) @ np.asarray(x, float).ravel())
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
        values = dict(zip(free, rng.integers(-3, 4, len(free)).tolist()))
        w = np.array([float(v.subs(values)) for v in wflat]).reshape(spec.weight_shape)
        if check(w):
            return w
    raise ConvAlgebraError("internal: no numeric kernel separates the two sides")


def make_counterexample(left, right, in_t, out_t, result: Intertwining, weight, in_perm=None,
                        out_perm=None, names=("L(P x)", "Q(L x)")) -> Counterexample:
    """Turn the witness of a failing check into verified numbers (one-hot input and kernel)."""
    j, wt, _ = result.witness
    x = np.zeros(math.prod(right.input_shape))
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
        {"x": x, "weight": w}, lhs, rhs, at,
        f"x is a single 1 at input {src}, with {kind}: {names[0]} and {names[1]} differ at "
        f"output {at} ({lhs[at]:g} vs {rhs[at]:g})",
    )


def kernel_solutions(result: Intertwining, spec: ConvSpec):
    """The kernels for which the identity holds at this size, as ``(dimension, general)``.

    ``general`` is a sympy array of ``spec.weight_shape`` in parameters ``c1, c2, ...``.
    ``None`` when the constraint system was too large to solve exactly.
    """
    import sympy

    if result.rows is None:
        return None
    k = math.prod(spec.kernel_size)
    n = result.rows.shape[1]
    basis = rational_nullspace(result.rows, n)
    if not result.spatial:
        params = sympy.symbols(f"c1:{len(basis) + 1}")
        vec = sum((p * b for p, b in zip(params, basis)), sympy.zeros(n, 1))
        return len(basis), sympy.ImmutableDenseNDimArray(list(vec), spec.weight_shape)
    # one channel pair's taps (spatial order); every pair gets its own parameters
    order = tap_weight_order(spec)
    pairs = math.prod(spec.weight_shape) // k
    entries, count = [], 0
    for pair in range(pairs):
        params = sympy.symbols(f"c{count + 1}:{count + len(basis) + 1}")
        count += len(basis)
        vec = sum((p * b for p, b in zip(params, basis)), sympy.zeros(n, 1))
        taps = [0] * k
        for spatial_tap, value in enumerate(vec):
            taps[order[spatial_tap]] = value
        entries += taps
    return count, sympy.ImmutableDenseNDimArray(entries, spec.weight_shape)
