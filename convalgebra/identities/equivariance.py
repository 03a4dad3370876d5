"""Equivariance laws: translations, 90° rotations, flips, transpositions, rescaling, pooling.

Each law checks ``conv(T x) = T' conv(x)`` for a grid transformation ``T`` of the input and its
counterpart ``T'`` on the output, exactly: with a symbolic kernel by comparing index tables
(written as operator expressions and decided by :func:`convalgebra.ops.prove`), with a given
kernel by evaluating the residual on it. A failure comes
with the output positions where it breaks and a verified one-hot counterexample.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import numpy as np
import sympy

from .. import ops
from ..budget import require_table
from ..connectivity import spatial_table
from ..errors import ConvAlgebraError, shown
from ..spec import ConvSpec
from .channelwise import ChannelDecision, counterexample, decide_channelwise, kernel_nullspace
from .common import eq, ne, positions, require_spec
from .constraints import general_form
from .decide import (
    OPS_METHOD,
    Decision,
    decide,
    kernel_values,
    layer,
    numeric_kernel,
    permuted,
    spec_kernel,
)
from .kernels import grid_kernels
from .result import CheckResult, Counterexample, Step
from .transforms import (
    GridTransform,
    downscale,
    flip,
    normalize_shift,
    rotation,
    shift,
    spatial_axes,
    transposition,
    upscale,
)

__all__ = [
    "translation_equivariance",
    "rotation_equivariance",
    "flip_equivariance",
    "transposition_equivariance",
    "scale_equivariance",
]

_M, _S, _T = (sympy.MatrixSymbol(n, 1, 1) for n in ("M", "S", "T"))


def _border_note(spec: ConvSpec, delta: tuple[int, ...], failing_sp: np.ndarray) -> dict:
    """How many outputs read padding, how many read the |delta| input lines the shift moves
    in or out, and how many failing outputs do either (forward layers only)."""
    if spec.transposed or failing_sp.size == 0:
        return {}
    sp = spatial_table(spec)
    n_in = spec.input_shape[1:]
    coords = np.unravel_index(np.where(sp >= 0, sp, 0), n_in)
    moved = np.zeros(sp.shape, dtype=bool)
    for axis, d in enumerate(delta):
        if d:
            c = coords[axis]
            moved |= (sp >= 0) & ((c < abs(d)) | (c >= n_in[axis] - abs(d)))
    # a tap reads padding when its coordinate falls outside the input, whatever fills it
    pads = (spatial_table(replace(spec, padding_mode="zeros")) < 0).any(axis=1)
    lines = moved.any(axis=1)
    either = np.logical_or(pads, lines)
    return {
        "outputs whose receptive field reads padding": int(pads.sum()),
        "outputs whose receptive field reads an input line the shift moves in or out": int(
            lines.sum()
        ),
        "failing outputs that read either": f"{int(either[failing_sp].sum())} of {failing_sp.size}",
    }


def _out_shift(spec: ConvSpec, delta: tuple[int, ...]):
    """Output shift for an input shift: delta/s (forward), delta*s (transposed); None if not integral."""
    if spec.transposed:
        return tuple(d * s for d, s in zip(delta, spec.stride))
    if all(d % s == 0 for d, s in zip(delta, spec.stride)):
        return tuple(d // s for d, s in zip(delta, spec.stride))
    return None


def translation_equivariance(
    spec: ConvSpec,
    shift: int | tuple = 1,
    axis: int = 0,
    *,
    weight=None,
    boundary: str | None = None,
) -> CheckResult:
    """Is the layer equivariant to translating its input by ``shift``?

    Parameters
    ----------
    spec : ConvSpec
    shift : int or tuple of int
        Input shift (along ``axis``, or one entry per spatial axis): ``x'[p] = x[p - shift]``.
    axis : int, default 0
        Spatial axis of an int ``shift``.
    weight : array_like, optional
        A kernel (numbers or sympy expressions); default: a generic symbolic kernel.
    boundary : {"zeros", "circular"}, optional
        How the shifted input is filled: with zeros, or cyclically. Default: cyclic for a
        circular-padded layer, zeros otherwise.

    Examples
    --------
    >>> translation_equivariance(ConvSpec((1, 8), 1, 3, padding=1, padding_mode="circular")).holds
    True
    >>> r = translation_equivariance(ConvSpec((1, 6), 1, 3, padding=1))
    >>> r.holds, r.failing_positions
    (False, ((0, 0), (0, 5)))
    """
    spec = require_spec(spec, "translation_equivariance")
    boundary = boundary or ("circular" if spec.padding_mode == "circular" else "zeros")
    if boundary not in ("zeros", "circular"):
        raise ConvAlgebraError(f"boundary must be 'zeros' or 'circular', got {shown(boundary)}")
    circ = boundary == "circular"
    delta = normalize_shift(shift, axis, spec.ndim)
    n_in = spec.input_shape[1:]
    if any(abs(d) >= n for d, n in zip(delta, n_in)):
        raise ConvAlgebraError(
            f"shift {delta} must be smaller than the input size {n_in} on every axis"
        )
    out_delta = _out_shift(spec, delta)
    if out_delta is None:
        return _non_multiple(spec, delta, circ, weight)
    d = _translation(spec, delta, out_delta, circ, weight)
    holds = d.holds
    rule = "×" if spec.transposed else "/"
    kind = "cyclic" if circ else "zero-fill"
    claim = (
        f"conv(S x) = S' conv(x), S the {kind} shift by {delta}, S' the shift by {out_delta} "
        f"(= shift {rule} stride {spec.stride})"
    )
    evidence: dict = {"residual terms at this size": d.n_terms}
    failing_sp = np.unique(d.failing % math.prod(spec.output_shape[1:]))
    if holds:
        reason = "Both sides pair every weight with the same input at every output: the index tables agree."
    else:
        reason = (
            f"The index tables differ at {failing_sp.size} of {math.prod(spec.output_shape[1:])} "
            "output positions (in every output channel): those whose receptive field "
            "crosses the border, where padding or the shifted-out lines enter."
        )
        evidence.update(_border_note(spec, delta, failing_sp))
    ce = counterexample(d, ("conv(S x)", "S' conv(x)"))
    steps = _translation_steps(spec, delta, out_delta, holds, failing_sp.size)
    return CheckResult(
        "translation_equivariance",
        holds,
        claim,
        reason,
        evidence,
        ce,
        None if holds else positions(d.failing, spec.output_shape),
        steps,
        method=OPS_METHOD,
        identity=(d.lhs, d.rhs),
    )


def _translation(
    spec: ConvSpec, delta, out_delta, circ: bool, weight
) -> Decision | ChannelDecision:
    """``conv(S x) == S' conv(x)`` at the spec's size, decided by ops.prove (on one channel
    pair where exact)."""
    mode = "circular" if circ else "zeros"

    def law(s: ConvSpec) -> tuple[ops.Op, ops.Op]:
        x, w = ops.signal(s.in_channels, s.ndim), spec_kernel("weight", s)
        return layer(ops.shift(x, delta, mode), w, s), ops.shift(layer(x, w, s), out_delta, mode)

    given = None if weight is None else {"weight": kernel_values(weight, spec)}
    return decide_channelwise(law, spec, given)


def _translation_steps(spec, delta, out_delta, holds, n_fail) -> tuple:
    axis = next((a for a, d in enumerate(delta) if d), 0)
    s = spec.stride[axis]
    o, k = sympy.symbols("o k", integer=True)
    w, x = sympy.IndexedBase("w"), sympy.IndexedBase("x")
    d, dp = delta[axis], out_delta[axis]
    if spec.transposed:
        lhs_idx, rhs_idx = None, None
    else:
        # unevaluated and 1-based, so each side's index reads as that side computes it:
        # output o reads, through tap k, the input s(o - 1) + D(k - 1) + 1 - P
        dil, pad = spec.dilation[axis], spec.padding[axis][0]

        def times(c, e):
            return e if c == 1 else sympy.Mul(c, e, evaluate=False)

        def read(out):
            terms = [
                times(s, sympy.Add(out, -1, evaluate=False)),
                times(dil, sympy.Add(k, -1, evaluate=False)),
                1,
            ]
            return terms + ([-pad] if pad else [])

        lhs_idx = sympy.Add(*read(o), -d, evaluate=False)
        rhs_idx = sympy.Add(*read(sympy.Add(o, -dp, evaluate=False)), evaluate=False)
    steps = [
        Step(
            eq(_M * _S, _T * _M),
            "the claim, with $S$ the input shift and $T = S'$ the output shift: "
            f"shift the input by {delta}, the output by {out_delta}",
        )
    ]
    if lhs_idx is not None:
        steps.append(
            Step(
                eq(w[k] * x[lhs_idx], w[k] * x[rhs_idx]),
                f"tap $k$ of output $o$ along axis {axis + 1} (1-based, padding $P = "
                f"{spec.padding[axis][0]}$ before): $M S x$ reads $x$ at "
                "$s(o - 1) + D(k - 1) + 1 - P - \\delta$, $T M x$ at "
                "$s(o - \\delta' - 1) + D(k - 1) + 1 - P$; equal because "
                f"$s \\delta' = \\delta$ ($s = {s}$)",
            )
        )
    verdict = (
        "the index tables agree at every output"
        if holds
        else f"away from the border the tables agree; at {n_fail} output positions a "
        "tap reads padding on one side and data on the other"
    )
    steps.append(
        Step(
            eq(_M * _S - _T * _M, sympy.ZeroMatrix(1, 1))
            if holds
            else ne(_M * _S - _T * _M, sympy.ZeroMatrix(1, 1)),
            verdict,
        )
    )
    return tuple(steps)


def _non_multiple(spec: ConvSpec, delta, circ: bool, weight) -> CheckResult:
    """A shift that is not a multiple of the stride: is ``conv(S x)`` equal to some translate
    ``S_d conv(x)`` (``d`` along the shifted axes)? Exact: an integer instance refutes every
    ``d`` it does not match (a certificate); the ``d`` it matches are decided on the index
    tables."""
    # the integer instance evaluates the whole layer
    require_table(spec, "translation_equivariance by a shift not a multiple of the stride")
    ranges = [
        range(-n + 1, n) if d else range(1)
        for d, n in zip(delta, spec.output_shape[1:], strict=True)
    ]
    shifts = list(itertools.product(*ranges))
    claim = f"conv(S x) is a translate of conv(x) for the input shift {delta}"
    rng = np.random.default_rng(1)
    instance = _integer_instance(spec, delta, circ, weight, shifts, rng)
    for d in instance[3]:
        decision = _translation(spec, delta, d, circ, weight)
        if decision.holds:
            matched = (
                Step(
                    eq(_M * _S, _T * _M),
                    "the claim, with $S$ the input shift and $T$ the output shift: shift the "
                    f"input by {delta}, the output by {d}",
                ),
                Step(
                    eq(_M * _S - _T * _M, sympy.ZeroMatrix(1, 1)),
                    "the index tables agree at every output",
                ),
            )
            return CheckResult(
                "translation_equivariance",
                True,
                claim + f" (output shift {d})",
                f"Although {delta} is not a multiple of the stride {spec.stride}, the index "
                f"tables agree with the output shift {d} (degenerate sizes).",
                {"output shift": d},
                steps=matched,
                method=OPS_METHOD,
                identity=(decision.lhs, decision.rhs),
            )
    evidence = {
        "output shifts tried": len(shifts),
        "output shifts refuted by the index tables": len(instance[3]),
    }
    for _ in range(5):  # a single instance that matches no translate at all, if one is found
        if not instance[3]:
            break
        instance = _integer_instance(spec, delta, circ, weight, shifts, rng)
    x, w, (lhs, y), matches = instance
    ce = (
        None
        if matches
        else Counterexample(
            {"x": x, "weight": w},
            lhs,
            y,
            None,
            f"conv(S x) equals no translate S_d conv(x) along the shifted axes ({len(shifts)} "
            "output shifts tried)",
        )
    )
    reason = (
        f"The shift {delta} is not a multiple of the stride {spec.stride}: the "
        "shifted input is sampled on a different sub-grid, so no output "
        "translation matches."
    )
    steps = (Step(ne(_M * _S, _T * _M), "no integer output shift δ/s exists"),)
    return CheckResult(
        "translation_equivariance", False, claim, reason, evidence, ce, None, steps, OPS_METHOD
    )


def _integer_instance(spec: ConvSpec, delta, circ: bool, weight, shifts, rng):
    """Random integer ``x`` and kernel, both sides (evaluated exactly by the operator
    expressions), and the output shifts they match."""
    x = rng.integers(-3, 4, spec.input_shape)
    if weight is None:
        w = rng.integers(-3, 4, spec.weight_shape).astype(float)
    else:
        w = numeric_kernel(kernel_values(weight, spec), rng).reshape(spec.weight_shape)
    signal, k = ops.signal(spec.in_channels, spec.ndim), spec_kernel("weight", spec)
    mode = "circular" if circ else "zeros"
    sides = ops.evaluate_sides(
        layer(ops.shift(signal, delta, mode), k, spec),
        layer(signal, k, spec),
        spec.input_shape[1:],
        {"x": x},
        {"weight": w},
    )
    lhs, y = (np.asarray(v.tolist(), dtype=float) for v in sides)
    x = x.astype(float)
    # integer data: any difference is at least 1; the tolerance only absorbs float rounding
    # of a given non-integer kernel
    tol = 1e-9 * max(1.0, float(np.abs(y).max(initial=0.0)))
    matches = [d for d in shifts if np.allclose(lhs, shift(d, circ).apply(y), rtol=0, atol=tol)]
    return x, w, (lhs, y), matches


def _symmetry(
    law: str, spec: ConvSpec, t: GridTransform, g, weight, in_perm, out_perm
) -> CheckResult:
    """Equivariance to a grid symmetry mapping both the input and the output grid onto itself.

    ``t`` is the symmetry on grids (its name and shapes), ``g`` the same symmetry as an
    operator expression: ``conv(g(P_in x)) == g(P_out conv(x))`` is decided by ops.prove.
    """
    n_in, n_out = spec.input_shape[1:], spec.output_shape[1:]
    if t.out_shape(n_in) != n_in or t.out_shape(n_out) != n_out:
        raise ConvAlgebraError(
            f"{law}: the {t.name} must map the grids onto themselves; input {n_in} and "
            f"output {n_out} must be square in the transformed axes"
        )

    def sides(s: ConvSpec) -> tuple[ops.Op, ops.Op]:
        x, w = ops.signal(s.in_channels, s.ndim), spec_kernel("weight", s)
        lhs = layer(g(permuted(x, in_perm, "in_perm")), w, s)
        return lhs, g(permuted(layer(x, w, s), out_perm, "out_perm"))

    given = None if weight is None else {"weight": kernel_values(weight, spec)}
    if in_perm is None and out_perm is None:
        d = decide_channelwise(sides, spec, given)
    else:  # channel permutations mix the pairs: the whole layer
        d = decide(*sides(spec), spec, given)
    holds = d.holds
    claim = f"conv(G x) = G conv(x) for G the {t.name}" + (
        " with channel permutations" if in_perm is not None or out_perm is not None else ""
    )
    evidence: dict = {"residual terms at this size": d.n_terms}
    if holds:
        reason = "The index tables of both sides agree: the identity holds" + (
            " for every kernel." if weight is None else " for this kernel."
        )
    else:
        reason = f"The tables differ at {d.failing.size} outputs" + (
            " for a generic kernel; it holds only for the kernels below."
            if weight is None
            else " for this kernel."
        )
    if weight is None and not holds:
        basis = kernel_nullspace(d)
        evidence["dimension of the kernels for which it holds (this size)"] = basis.shape[0]
        if basis.shape[1] <= 400:
            evidence["those kernels"] = general_form(basis, spec.weight_shape)
        try:
            grid = grid_kernels(spec, [t], in_perm, out_perm)
            evidence["invariant kernels (kernel-level constraint)"] = grid.shape[0]
        except ConvAlgebraError:
            pass
    steps = (
        Step(
            eq(_M * sympy.MatrixSymbol("G", 1, 1), sympy.MatrixSymbol("G", 1, 1) * _M)
            if holds
            else ne(_M * sympy.MatrixSymbol("G", 1, 1), sympy.MatrixSymbol("G", 1, 1) * _M),
            reason,
        ),
    )
    return CheckResult(
        law,
        holds,
        claim,
        reason,
        evidence,
        counterexample(d, ("conv(G x)", "G conv(x)")),
        None if holds else positions(d.failing, spec.output_shape),
        steps,
        method=OPS_METHOD,
        identity=(d.lhs, d.rhs),
    )


def rotation_equivariance(
    spec: ConvSpec, k: int = 1, axes=(0, 1), *, weight=None, in_perm=None, out_perm=None
) -> CheckResult:
    """Equivariance to rotating by ``k`` quarter turns (exact on a square grid).

    ``in_perm``/``out_perm`` give the channel representation: the transformed input is
    ``x'[c] = rot(x[in_perm[c]])`` (likewise the output with ``out_perm``).

    Examples
    --------
    >>> spec = ConvSpec((1, 5, 5), 1, 3, padding=1)
    >>> r = rotation_equivariance(spec)
    >>> r.holds, r.evidence["dimension of the kernels for which it holds (this size)"]
    (False, 3)
    >>> rotation_equivariance(spec, weight=[[[[1, 2, 1], [2, 5, 2], [1, 2, 1]]]]).holds
    True
    """
    spec = require_spec(spec, "rotation_equivariance")
    t = rotation(k, axes, spec.ndim)
    a, b = spatial_axes(axes, spec.ndim, "axes", 2)
    return _symmetry(
        "rotation_equivariance",
        spec,
        t,
        lambda e: ops.rot90(e, k, (a + 1, b + 1)),
        weight,
        in_perm,
        out_perm,
    )


def flip_equivariance(
    spec: ConvSpec, axis: int = 0, *, weight=None, in_perm=None, out_perm=None
) -> CheckResult:
    """Equivariance to mirroring along a spatial ``axis``.

    Examples
    --------
    >>> flip_equivariance(ConvSpec((1, 6), 1, 3, padding=1), weight=[[[1, 0, 1]]]).holds
    True
    """
    spec = require_spec(spec, "flip_equivariance")
    (a,) = spatial_axes(axis, spec.ndim, "axis", 1)
    return _symmetry(
        "flip_equivariance",
        spec,
        flip(axis, spec.ndim),
        lambda e: ops.flip(e, (a + 1,)),
        weight,
        in_perm,
        out_perm,
    )


def transposition_equivariance(
    spec: ConvSpec, axes=(0, 1), *, weight=None, in_perm=None, out_perm=None
) -> CheckResult:
    """Equivariance to swapping two spatial axes (image transposition).

    Examples
    --------
    >>> transposition_equivariance(ConvSpec((1, 4, 4), 1, 2)).holds
    False
    """
    spec = require_spec(spec, "transposition_equivariance")
    a, b = spatial_axes(axes, spec.ndim, "axes", 2)
    return _symmetry(
        "transposition_equivariance",
        spec,
        transposition(axes, spec.ndim),
        # swapping two axes is a quarter turn in their plane, then a flip of the first
        lambda e: ops.flip(ops.rot90(e, 1, (a + 1, b + 1)), (a + 1,)),
        weight,
        in_perm,
        out_perm,
    )


def scale_equivariance(
    spec: ConvSpec, factor: int = 2, direction: str = "up", *, weight=None
) -> CheckResult:
    """Equivariance to integer rescaling: ``conv(U x) = U conv(x)``, fails in general.

    ``direction="up"`` repeats every pixel ``factor`` times along each axis (nearest
    neighbour); ``"down"`` keeps every ``factor``-th pixel. The left side runs the same layer
    on the rescaled input.

    Examples
    --------
    >>> scale_equivariance(ConvSpec((1, 4, 4), 1, 3, padding="same")).holds
    False
    >>> scale_equivariance(ConvSpec((1, 4, 4), 1, 1)).holds
    True
    """
    spec = require_spec(spec, "scale_equivariance")
    if direction not in ("up", "down"):
        raise ConvAlgebraError(f"direction must be 'up' or 'down', got {shown(direction)}")
    t = (upscale if direction == "up" else downscale)(factor, spec.ndim)
    try:
        left = replace(spec, input_shape=(spec.input_shape[0], *t.out_shape(spec.input_shape[1:])))
    except ConvAlgebraError as exc:
        raise ConvAlgebraError(f"the layer cannot run on the rescaled input: {exc}") from exc
    claim = f"conv(U x) = U conv(x), U the {t.name}"
    want = t.out_shape(spec.output_shape[1:])
    if left.output_shape[1:] != want:
        reason = (
            f"The sides do not even have the same shape: conv(U x) is "
            f"{left.output_shape[1:]}, U conv(x) is {want}."
        )
        return CheckResult(
            "scale_equivariance",
            False,
            claim,
            reason,
            {"shape of conv(U x)": left.output_shape, "shape of U conv(x)": want},
        )
    rescale = ops.upsample_nearest if direction == "up" else ops.subsample

    def law(s: ConvSpec) -> tuple[ops.Op, ops.Op]:
        x, w = ops.signal(s.in_channels, s.ndim), spec_kernel("weight", s)
        return layer(rescale(x, factor), w, s), rescale(layer(x, w, s), factor)

    given = None if weight is None else {"weight": kernel_values(weight, spec)}
    d = decide_channelwise(law, spec, given, out_shape=left.output_shape)
    reason = (
        "The index tables agree."
        if d.holds
        else f"The index tables differ at {d.failing.size} outputs: a kernel tap that reads a "
        "neighbour at distance 1 reads, after rescaling, a copy of the same pixel."
    )
    return CheckResult(
        "scale_equivariance",
        d.holds,
        claim,
        reason,
        {"residual terms at this size": d.n_terms},
        counterexample(d, ("conv(U x)", "U conv(x)")),
        None if d.holds else positions(d.failing, left.output_shape),
        method=OPS_METHOD,
        identity=(d.lhs, d.rhs),
    )
