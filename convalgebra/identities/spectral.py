"""The convolution theorem and separability.

**Convolution theorem.** A stride-1 circular convolution whose output grid is its input grid
has a (block) circulant matrix: tap ``t`` of output ``r`` reads input ``(r + off_t) mod n``.
Then for every frequency ``j`` and ``v_j[m] = ω^{j·m}`` (``ω = e^{2πi/n}``)

    (M v_j)[r] = Σ_t w_t ω^{j·(r + off_t)} = λ_j v_j[r],   λ_j = Σ_t w_t ω^{j·off_t},

so ``M = F⁻¹ diag(λ) F`` with ``λ = DFT(h)``, ``h = M e_0`` the kernel embedded circularly
(numpy's ``fft`` convention). The check proves the circulant index identity exactly on the
triple table and, for small sizes, gives every ``λ_j`` symbolically; for large sizes the
eigenvalues are computed with the FFT and verified on random inputs.

**Separability.** A kernel of rank 1, ``w = u ⊗ v (⊗ …)``, makes the layer the composition of
one-dimensional convolutions along each axis -- exactly, for every padding mode, since
padding along one axis commutes with filtering along another.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import sympy

from .. import budget, ops
from ..connectivity import spatial_table, tap_weight_order
from ..errors import ConvAlgebraError
from ..operators import conv_matrix
from ..spec import ConvSpec
from ..symbolic import symbol_array, weight_symbols
from ..symbolic.exprs import as_expr_array
from .common import eq, is_plain, is_symbolic, one_hot, positions, require_spec
from .decide import OPS_METHOD, counterexample, decide, layer
from .result import CheckResult, Counterexample, Step

__all__ = ["convolution_theorem", "separability", "eigenvalues"]

_FACTOR_NAMES = "uvs"  # the 1-D factors of a rank-1 kernel, one per axis


def _circulant_offsets(spec: ConvSpec):
    """Per-axis tap offsets if every tap reads ``(r + off) mod n``; else the failing rows."""
    sp = spatial_table(spec)
    n = spec.input_shape[1:]
    if spec.output_shape[1:] != n:
        return None, np.arange(sp.shape[0])
    r = np.indices(n).reshape(spec.ndim, -1)  # (ndim, P)
    coords = np.unravel_index(np.where(sp >= 0, sp, 0), n)  # each (P, K)
    off = [(c[0] - r[a][0]) % n[a] for a, c in enumerate(coords)]
    good = sp >= 0
    for a, c in enumerate(coords):
        good &= c == (r[a][:, None] + off[a][None, :]) % n[a]
    bad = np.flatnonzero(~good.all(axis=1))
    return (off if bad.size == 0 else None), bad


def eigenvalues(spec: ConvSpec, weight) -> np.ndarray:
    """``λ[co, ci, *freq] = DFT`` of the circularly embedded kernel (numeric, via the FFT).

    Examples
    --------
    >>> spec = ConvSpec((1, 4), 1, 3, padding=1, padding_mode="circular", flip=True)
    >>> np.round(eigenvalues(spec, [[[0, 1, 0]]]).real, 6).tolist()
    [[[1.0, 1.0, 1.0, 1.0]]]
    """
    n = spec.input_shape[1:]
    m = conv_matrix(spec, weight).tocsc()
    p = math.prod(n)
    c_out, c_in = spec.output_shape[0], spec.in_channels
    cols = budget.dense(m[:, [ci * p for ci in range(c_in)]])  # (c_out*p, c_in)
    h = cols.reshape(c_out, *n, c_in)
    h = np.moveaxis(h, -1, 1)  # (c_out, c_in, *n)
    return budget.fftn(h, axes=tuple(range(2, 2 + spec.ndim)))


def _symbolic_eigenvalues(spec: ConvSpec, off) -> list:
    """λ_j (single channel pair) as sympy expressions in the kernel symbols."""
    n = spec.input_shape[1:]
    w = weight_symbols(spec).reshape(spec.weight_shape[0], -1, math.prod(spec.kernel_size))
    order = tap_weight_order(spec)
    lam = []
    for j in np.ndindex(*n):
        terms = 0
        for t in range(len(off[0])):
            e = sum(sympy.Rational(int(j[a]) * int(off[a][t]), n[a]) for a in range(spec.ndim))
            terms += w[0, 0, order[t]] * sympy.exp(2 * sympy.pi * sympy.I * e)
        lam.append(sympy.expand(terms))
    return lam


def convolution_theorem(
    spec: ConvSpec, *, weight=None, symbolic: bool | None = None
) -> CheckResult:
    """Is the layer's matrix diagonalised by the DFT, with eigenvalues the kernel's DFT?

    Examples
    --------
    >>> r = convolution_theorem(ConvSpec((1, 4), 1, 3, padding=1, padding_mode="circular"))
    >>> r.holds, r.evidence["eigenvalues"][1]
    (True, -I*w1 + w2 + I*w3)
    >>> convolution_theorem(ConvSpec((1, 4), 1, 3, padding=1)).holds
    False
    """
    require_spec(spec, "convolution_theorem")
    if spec.transposed or not is_plain(spec) or spec.groups != 1:
        raise ConvAlgebraError(
            f"convolution_theorem needs an ordinary forward convolution, got {spec.describe()}"
        )
    if max(spec.stride) > 1:
        raise ConvAlgebraError(f"convolution_theorem needs stride 1, got {spec.stride}")
    off, bad = _circulant_offsets(spec)
    claim = (
        "$M = F^{-1} \\operatorname{diag}(\\lambda) F$, with $F$ the DFT matrix "
        "($F_{jm} = \\omega^{j m}$, $\\omega = e^{-2\\pi i/n}$) and $\\lambda = F h$ the DFT "
        "of $h = M e_1$, the kernel flipped and embedded circularly (for a real kernel: the "
        "complex conjugate of the DFT of the kernel placed at its tap offsets)"
    )
    n_total = math.prod(spec.input_shape[1:])
    symbolic = (n_total <= 16 and weight is None) if symbolic is None else symbolic
    if off is None:
        if weight is not None and _circulant_for(spec, weight):
            return CheckResult(
                "convolution_theorem",
                True,
                claim,
                "The table is not circulant, but with this kernel the layer equals its "
                "circular-padded version (the taps that would break the wrap-around carry "
                "zero weight), whose matrix the DFT diagonalises.",
                {"non-circulant rows (generic kernel)": bad.size},
                method="matrices",
            )
        return _not_circulant(spec, claim, bad, weight)
    ev: dict = {
        "circulant: every tap reads (r + offset) mod n": True,
        "tap offsets": tuple(tuple(int(v) for v in o) for o in off),
    }
    if symbolic and spec.in_channels == 1 and spec.out_channels == 1:
        ev["eigenvalues"] = _symbolic_eigenvalues(spec, off)
    w = (
        np.random.default_rng(0).standard_normal(spec.weight_shape)
        if weight is None
        else np.asarray(weight, dtype=float)
    )
    err = _numeric_residual(spec, w)
    ev["max |M x − F⁻¹(λ·F x)| on random x"] = err
    holds = err < 1e-8 * max(1.0, float(np.abs(w).max()))
    j = sympy.Symbol("j")
    lam = sympy.Function("lambda")(j)
    steps = (
        Step(
            eq(sympy.Symbol("(M v_j)_r"), sympy.Symbol(r"\sum_t w_t \omega^{-j (r + o_t)}")),
            "with $\\omega = e^{-2\\pi i/n}$ and the Fourier vector $v_j$, "
            "$(v_j)_m = \\omega^{-j m}$: row $r$ of a circulant matrix, whose tap $t$ reads "
            "input $(r + o_t) \\bmod n$ (and $\\omega^n = 1$)",
        ),
        Step(
            eq(sympy.Symbol("(M v_j)_r"), lam * sympy.Symbol(r"\omega^{-j r}")),
            "factor $\\omega^{-j r}$: $\\lambda_j = \\sum_t w_t \\omega^{-j o_t} = "
            "\\sum_m h_m \\omega^{j m}$, the DFT of $h = M e_1$ (the flipped kernel, "
            "$h_{-o_t \\bmod n} = w_t$)",
        ),
        Step(
            eq(
                sympy.MatrixSymbol("M", 1, 1),
                sympy.Symbol(r"F^{-1} \operatorname{diag}(\lambda) F"),
            ),
            "the $v_j$ are $n$ times the columns of $F^{-1}$",
        ),
    )
    return CheckResult(
        "convolution_theorem",
        bool(holds),
        claim,
        "Every tap reads (r + offset) mod n, so each Fourier vector is an "
        "eigenvector (exact, from the triple table); the FFT confirms it numerically.",
        ev,
        None,
        None,
        steps,
        method="index tables + FFT",
    )


def _numeric_residual(spec: ConvSpec, w: np.ndarray) -> float:
    lam = eigenvalues(spec, w)
    m = conv_matrix(spec, w)
    x = np.random.default_rng(1).standard_normal((2, *spec.input_shape))
    axes = tuple(range(1, 1 + spec.ndim))
    worst = 0.0
    for xi in x:
        fx = budget.fftn(xi, axes=axes)  # (c_in, *n)
        y = budget.ifftn(np.einsum("oi...,i...->o...", lam, fx), axes=axes)
        worst = max(worst, float(np.abs(m @ xi.ravel() - y.ravel()).max()))
    return worst


def _circulant_for(spec: ConvSpec, weight) -> bool:
    """Does the layer with this kernel equal its circular-padded version (same grids)?"""
    if spec.output_shape[1:] != spec.input_shape[1:]:
        return False
    try:
        circ = replace(spec, padding_mode="circular")
    except ConvAlgebraError:
        return False
    w = np.asarray(weight, dtype=float)
    diff = (conv_matrix(spec, w) - conv_matrix(circ, w)).tocoo()
    return not np.any(np.abs(diff.data) > 1e-12 * max(1.0, float(np.abs(w).max(initial=0.0))))


def _not_circulant(spec, claim, bad, weight) -> CheckResult:
    n = spec.input_shape[1:]
    p = math.prod(n)
    if spec.output_shape[1:] != n:
        reason = (
            f"The output grid {spec.output_shape[1:]} is not the input grid {n}: M is not square."
        )
        return CheckResult(
            "convolution_theorem", False, claim, reason, {"output shape": spec.output_shape}
        )
    w = budget.ones(spec.weight_shape) if weight is None else np.asarray(weight, dtype=float)
    m = conv_matrix(spec, w)
    coord0 = np.unravel_index(np.arange(p), n)[0]
    ce = None
    for j in range(n[0]):  # the first Fourier vector that is not an eigenvector
        v = np.exp(2j * np.pi * coord0 * j / n[0])
        x = np.tile(v, spec.in_channels)
        mv = m @ x
        lam = np.vdot(v, mv[:p]) / p  # best multiple: least squares
        if not np.allclose(mv[:p], lam * v):
            at = int(np.argmax(np.abs(mv[:p] - lam * v)))
            ce = Counterexample(
                {"x (Fourier vector)": x.reshape(spec.input_shape), "weight": w},
                mv[:p],
                lam * v,
                (at,),
                f"M v is no multiple of the Fourier vector v (frequency {j} along "
                f"axis 0): the best multiple λ v misses at row {at}",
            )
            break
    reason = (
        f"Zero/reflect/replicate padding breaks the wrap-around: {bad.size} output rows "
        "read a tap that is not (r + offset) mod n, so M is not circulant."
    )
    fail = positions(bad, n)
    return CheckResult(
        "convolution_theorem", False, claim, reason, {"non-circulant rows": bad.size}, ce, fail
    )


def _axis_specs(spec: ConvSpec) -> list[ConvSpec]:
    """One 1-D convolution per spatial axis (kernel 1 elsewhere), applied in axis order."""
    specs, shape = [], spec.input_shape
    for a in range(spec.ndim):
        one = [1] * spec.ndim
        k, s, d, p = list(one), list(one), list(one), [(0, 0)] * spec.ndim
        k[a], s[a], d[a], p[a] = (
            spec.kernel_size[a],
            spec.stride[a],
            spec.dilation[a],
            spec.padding[a],
        )
        step = ConvSpec(
            shape,
            1,
            tuple(k),
            stride=tuple(s),
            padding=tuple(p),
            dilation=tuple(d),
            padding_mode=spec.padding_mode,
            flip=spec.flip,
            bias=False,
        )
        specs.append(step)
        shape = step.output_shape
    return specs


def _rank_one_factors(w: np.ndarray, symbolic: bool):
    """Factors (one 1-D array per axis) of a rank-1 kernel, or None; plus the rank found."""
    if symbolic:
        mat = sympy.Matrix(w.reshape(w.shape[0], -1).tolist())
        ranks = [
            sympy.Matrix(np.moveaxis(w, a, 0).reshape(w.shape[a], -1).tolist()).rank(simplify=True)
            for a in range(w.ndim)
        ]
        rank = max(ranks) if mat.rows else 0
    else:
        ranks = []
        for a in range(w.ndim):
            sv = budget.svd(np.moveaxis(w, a, 0).reshape(w.shape[a], -1), compute_uv=False)
            ranks.append(int(np.sum(sv > 1e-10 * max(sv[0], 1e-300))))
        rank = max(ranks)
    if rank > 1:
        return None, rank
    if rank == 0:  # the zero kernel: 0 ⊗ 0 ⊗ … (no pivot to divide by)
        return [budget.zeros(n, dtype=w.dtype) for n in w.shape], 0
    flat = w.ravel()
    pivot = int(
        np.argmax([abs(complex(v)) if not symbolic else (0 if v == 0 else 1) for v in flat])
    )
    at = np.unravel_index(pivot, w.shape)
    factors = [
        w[tuple(slice(None) if b == a else at[b] for b in range(w.ndim))] for a in range(w.ndim)
    ]
    scale = flat[pivot]
    factors[0] = factors[0] / scale ** (w.ndim - 1) if w.ndim > 1 else factors[0]
    return factors, rank


def separability(spec: ConvSpec, *, weight=None) -> CheckResult:
    """A rank-1 kernel ``u ⊗ v`` makes the layer a composition of 1-D convolutions.

    Without ``weight``: proves the identity for symbolic factors and reports that a generic
    kernel is not separable. With ``weight``: detects separability (SVD for numbers, exact
    rank for sympy) and checks the composition with the factors found.

    Examples
    --------
    >>> spec = ConvSpec((1, 5, 5), 1, 3, padding=1)
    >>> separability(spec).holds
    True
    >>> r = separability(spec, weight=[[[[1, 2, 1], [2, 4, 2], [1, 2, 1]]]])
    >>> r.holds, [f.tolist() for f in r.evidence["factors"]]
    (True, [[0.5, 1.0, 0.5], [2.0, 4.0, 2.0]])
    >>> separability(spec, weight=[[[[1, 0, 0], [0, 1, 0], [0, 0, 1]]]]).holds
    False
    """
    require_spec(spec, "separability")
    if spec.in_channels != 1 or spec.out_channels != 1 or spec.transposed or not is_plain(spec):
        raise ConvAlgebraError(
            f"separability needs a single-channel forward convolution, got {spec.describe()}"
        )
    steps = _axis_specs(spec)
    claim = "conv(x, u ⊗ v ⊗ …) = the 1-D convolutions along each axis, composed"
    if weight is None:
        return _separability_symbolic(spec, steps, claim)
    claim = "the kernel has rank 1, w = u ⊗ v ⊗ …, so " + claim
    symbolic = is_symbolic(weight)
    w = (
        as_expr_array(weight, spec.weight_shape, "weight")
        if symbolic
        else np.asarray(weight, dtype=float)
    )
    if w.shape != spec.weight_shape:
        raise ConvAlgebraError(f"weight must have shape {spec.weight_shape}, got {w.shape}")
    factors, rank = _rank_one_factors(w.reshape(spec.kernel_size), symbolic)
    ev: dict = {"rank": rank}
    if factors is None:
        ce = _separability_counterexample(spec, steps, w) if not symbolic else None
        reason = f"The kernel has rank {rank} > 1: it is no outer product of 1-D kernels."
        if ce is None and not symbolic:
            reason += (
                " Yet no input tells its layer from the 1-D layers of the closest separable "
                "kernel (SVD): the two kernels differ only on taps that never reach the input."
            )
        how = "exact rank" if symbolic else "rank by SVD; the counterexample's sides evaluated"
        return CheckResult("separability", False, claim, reason, ev, ce, method=how)
    ev["factors"] = factors
    if symbolic:
        outer = factors[0]
        for f in factors[1:]:
            outer = np.multiply.outer(outer, f)
        ok = all(sympy.simplify(a - b) == 0 for a, b in zip(outer.ravel(), w.ravel()))
        return CheckResult(
            "separability",
            bool(ok),
            claim,
            "The kernel has rank 1 (exact rank).",
            ev,
            method="exact rank",
        )
    mats = [conv_matrix(s, f.reshape(s.weight_shape)) for s, f in zip(steps, factors)]
    prod = mats[0]
    for m in mats[1:]:
        prod = m @ prod
    diff = abs(prod - conv_matrix(spec, w))  # sparse: the largest entry, never densified
    err = float(diff.max()) if diff.nnz else 0.0
    ev["max |M(w) − M_d ⋯ M_1|"] = err
    return CheckResult(
        "separability",
        bool(err < 1e-9 * max(1.0, np.abs(w).max())),
        claim,
        "The kernel has rank 1 (SVD) and the composed 1-D layers give the same matrix.",
        ev,
        method="numeric",
    )


def _separability_symbolic(spec: ConvSpec, steps: list[ConvSpec], claim: str) -> CheckResult:
    """``conv(x, u ⊗ v ⊗ …)`` against the chained 1-D layers, decided by ops.prove: the
    rank-1 kernel is ``kernel_conv`` of the 1-D factors, each a kernel along its own axis."""
    x = ops.signal(1, spec.ndim)
    factors = [
        ops.kernel(name, s.weight_shape) for name, s in zip(_FACTOR_NAMES, steps, strict=False)
    ]
    outer = factors[0]
    for f in factors[1:]:
        outer = ops.kernel_conv(outer, f)  # full convolution of kernels on distinct axes
    lhs = layer(x, outer, spec)
    rhs: ops.Op = x
    for s, f in zip(steps, factors, strict=True):
        rhs = layer(rhs, f, s)
    d = decide(lhs, rhs, spec)
    holds = d.holds
    u = [symbol_array(name, (k,)) for name, k in zip(_FACTOR_NAMES, spec.kernel_size)]
    generic_rank = min(spec.kernel_size) if spec.ndim > 1 else 1
    ev = {
        "factors": u,
        "rank of a generic kernel": generic_rank,
        "parameters": f"{sum(spec.kernel_size)} against {math.prod(spec.kernel_size)}",
    }
    return CheckResult(
        "separability",
        holds,
        claim,
        "Every product term u[a]·v[b]·x[i] appears once on both sides."
        if holds
        else "The chained 1-D layers do not reproduce the kernel's terms.",
        ev,
        counterexample(d, ("conv(x, u ⊗ v ⊗ …)", "the 1-D convolutions")),
        None if holds else positions(d.failing, spec.output_shape),
        (
            Step(eq(sympy.Symbol("w_{ab}"), sympy.Symbol("u_a v_b")), "rank 1"),
            Step(
                sympy.Symbol(r"\sum_{a,b} u_a v_b x_{i+a,j+b} = \sum_a u_a \sum_b v_b x_{i+a,j+b}"),
                "the inner sum is the 1-D convolution along the last axis",
            ),
        ),
        OPS_METHOD,
        identity=(lhs, rhs),
    )


def _separability_counterexample(spec, steps, w) -> Counterexample | None:
    """A one-hot input on which the layer and the chained 1-D layers of the closest separable
    kernel (SVD) differ; ``None`` when no input does (the kernels differ only on taps that
    never reach the input)."""
    kernel = w.reshape(spec.kernel_size)
    factors = [
        budget.svd(np.moveaxis(kernel, a, 0).reshape(kernel.shape[a], -1))[0][:, 0]
        for a in range(kernel.ndim)
    ]
    core = kernel
    for f in factors:  # contract every axis with its leading singular vector
        core = np.tensordot(f, core, axes=(0, 0))
    factors[0] = factors[0] * float(core)
    chain = conv_matrix(steps[0], factors[0].reshape(steps[0].weight_shape))
    for s, f in zip(steps[1:], factors[1:]):
        chain = conv_matrix(s, f.reshape(s.weight_shape)) @ chain
    diff = (conv_matrix(spec, w) - chain).tocoo()
    tol = 1e-9 * max(1.0, float(np.abs(w).max()))
    big = np.flatnonzero(np.abs(diff.data) > tol)
    if big.size == 0:
        return None
    x = one_hot(spec.input_shape, int(diff.col[big[0]]))
    lhs = (conv_matrix(spec, w) @ x.ravel()).reshape(spec.output_shape)
    rhs = (chain @ x.ravel()).reshape(spec.output_shape)
    at = tuple(int(v) for v in np.unravel_index(int(diff.row[big[0]]), spec.output_shape))
    names = dict(zip(_FACTOR_NAMES, factors))
    return Counterexample(
        {"x": x, "weight": w, **names},
        lhs,
        rhs,
        at,
        f"x is a single 1 at input {tuple(int(v) for v in np.argwhere(x)[0])}; the closest "
        f"separable kernel {' ⊗ '.join(names)} (SVD), as 1-D layers in turn, gives a different "
        f"output at {at} ({lhs[at]:g} vs {rhs[at]:g})",
    )
