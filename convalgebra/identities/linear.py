"""Adjointness and the linear-layer laws: flipping, transposition, 1×1 convolution, FC layers.

* Cross-correlation with ``w`` is convolution with the flipped kernel: the two triple tables
  coincide after renaming each weight to its mirror tap.
* The transpose of a layer's matrix is the matrix of the transposed convolution with the
  same parameters; for stride 1 it is also an ordinary convolution with the other operation
  (``flip`` toggled), padding ``d(k−1) − p`` and the channel axes of the kernel swapped.
* A 1×1 convolution's matrix is ``W ⊗ S`` (``S = I`` for stride 1, channels first).
* A fully connected layer on a ``C×H×W`` volume is an ``H×W`` convolution without padding.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import sympy

from .. import ops
from ..connectivity import spatial_table, triples
from ..errors import ConvAlgebraError
from ..spec import ConvSpec
from ..transpose import transpose_spec
from .common import eq, positions, require_spec
from .decide import OPS_METHOD, counterexample, decide, layer, spec_kernel
from .result import CheckResult, Step

__all__ = ["adjoint", "one_by_one", "fully_connected", "adjoint_conv_spec"]

_W, _M = sympy.MatrixSymbol("W", 1, 1), sympy.MatrixSymbol("M", 1, 1)


def adjoint_conv_spec(spec: ConvSpec) -> ConvSpec:
    """The ordinary convolution whose matrix is ``M.T`` (stride 1, groups 1, padding ≤ d(k−1)).

    Its kernel is ``weight.swapaxes(0, 1)``.

    Examples
    --------
    >>> adjoint_conv_spec(ConvSpec((1, 5), 1, 3)).padding
    ((2, 2),)
    """
    why = _not_ordinary(spec)
    if why:
        raise ConvAlgebraError(
            f"the adjoint is an ordinary convolution only for stride 1, groups 1, untiled "
            f"forward layers with padding at most d·(k−1); {why} in {spec.describe()} "
            "(use transposed=True instead)"
        )
    pad = tuple(
        (d * (k - 1) - b, d * (k - 1) - a)
        for (b, a), k, d in zip(spec.padding, spec.kernel_size, spec.dilation)
    )
    mode = "circular" if spec.padding_mode == "circular" else "zeros"
    return ConvSpec(
        spec.output_shape,
        spec.in_channels,
        spec.kernel_size,
        padding=pad,
        dilation=spec.dilation,
        flip=not spec.flip,
        padding_mode=mode,
        bias=False,
    )


def _not_ordinary(spec: ConvSpec) -> str:
    """Why the adjoint of ``spec`` is no ordinary convolution, in a few words ("" if it is)."""
    if spec.transposed:
        return "the layer is transposed"
    if max(spec.stride) > 1:
        return f"stride {spec.stride} > 1"
    if spec.groups != 1:
        return f"groups={spec.groups}"
    if spec.tile is not None or spec.channel_table is not None:
        return "the layer is tiled or has a channel table"
    for (b, a), k, d in zip(spec.padding, spec.kernel_size, spec.dilation):
        if max(b, a) > d * (k - 1):
            return f"padding {spec.padding} exceeds d·(k−1) (the adjoint would crop)"
    return ""


_FLIP = "cross-correlation = convolution with the flipped kernel"
_TRANSPOSED = "Mᵀ = the transposed convolution"
_ADJOINT = "Mᵀ = an ordinary convolution (the adjoint layer)"


def _sides(spec: ConvSpec):
    """``x``, ``y`` (a signal of the layer's output shape), the kernel and ``M x``."""
    x = ops.signal(spec.in_channels, spec.ndim)
    y = ops.signal(spec.out_channels, spec.ndim, name="y")
    w = spec_kernel("weight", spec)
    return x, y, w, layer(x, w, spec)


def _transposed_part(spec: ConvSpec):
    """The decision of ``Mᵀ = the transposed convolution`` and its layer, or (None, why)."""
    if spec.transposed:
        return None, "the layer is itself a transposed convolution"
    if spec.padding_mode != "zeros":
        return None, f"{spec.padding_mode} padding has no transposed convolution"
    try:
        tr = replace(transpose_spec(spec), bias=False)
    except ConvAlgebraError as exc:
        return None, f"no transposed convolution expresses it: {exc}"
    _, y, w, m = _sides(spec)
    return decide(ops.adjoint(m, y), layer(y, w, tr), spec), tr


def adjoint(spec: ConvSpec) -> CheckResult:
    """Cross-correlation = convolution with the flipped kernel; ``M.T`` = the adjoint layer.

    Three parts: the flip identity (every layer); ``Mᵀ`` = the transposed convolution
    (forward zero-padded layers); ``Mᵀ`` = an ordinary convolution (stride 1, groups 1,
    padding at most ``d(k−1)``). A part that does not apply is named in the claim and in
    ``not_applicable``, and the verdict covers the others. Each part is an equation between
    operator expressions (``adjoint(M x, y)`` for ``Mᵀ y``), decided by ops.prove.

    Examples
    --------
    >>> r = adjoint(ConvSpec((1, 5), 1, 3))
    >>> r.holds, r.evidence["adjoint as a convolution"]
    (True, 'Conv1d(1, 1, kernel_size=(3,), stride=(1,), padding=((2, 2),), bias=False, flip=True) on input (1, 3)')
    >>> adjoint(ConvSpec((1, 5), 1, 3, padding=1, padding_mode="reflect")).holds
    False
    >>> r = adjoint(ConvSpec((1, 6), 1, 3, stride=2, padding=1, padding_mode="reflect"))
    >>> r.holds, len(r.not_applicable)
    (True, 2)
    >>> print(r.claim)  # doctest: +ELLIPSIS
    cross-correlation = convolution with the flipped kernel (not applicable: Mᵀ = the transposed convolution, as reflect padding ...
    """
    if not isinstance(spec, ConvSpec):
        raise TypeError(f"adjoint needs a ConvSpec, got {type(spec).__name__}")
    x, y, w, m = _sides(spec)
    flipped = replace(spec, flip=not spec.flip)
    flip_ok = decide(m, layer(x, ops.flip_kernel(w), flipped), spec).holds
    shape = (math.prod(spec.output_shape), math.prod(spec.input_shape))
    evidence: dict = {"M ⋆ w = M ∗ flip(w)": flip_ok, "matrix shape": shape}
    checked, skipped, failed = [_FLIP], [], [] if flip_ok else [_FLIP]
    transposed, tr = _transposed_part(spec)
    if transposed is None:
        skipped.append(f"{_TRANSPOSED}, as {tr}")
    else:
        checked.append(_TRANSPOSED)
        evidence["M.T = transposed convolution"] = transposed.holds
        evidence["transposed layer"] = tr.describe()
        failed += [] if transposed.holds else [_TRANSPOSED]
    ce, fail, identity = None, None, (m, layer(x, ops.flip_kernel(w), flipped))
    why, adj = _not_ordinary(spec), None
    if not why:
        try:
            adj = adjoint_conv_spec(spec)
        except ConvAlgebraError as exc:  # e.g. circular padding wider than the output grid
            why = str(exc)
    if adj is None:
        skipped.append(f"{_ADJOINT}, as {why}")
        evidence["adjoint as a convolution"] = f"not applicable: {why}"
    else:
        checked.append(_ADJOINT)
        identity = (ops.adjoint(m, y), layer(y, ops.transpose_kernel(w), adj))
        d = decide(*identity, spec)
        evidence["adjoint as a convolution"] = adj.describe()
        if not d.holds:
            ce = counterexample(d, ("Mᵀ y", "the convolution"), signals=("y",))
            fail = positions(d.failing, spec.input_shape)
            failed.append(_ADJOINT)
    holds = not failed
    claim = " and ".join(checked)
    if skipped:
        claim += " (not applicable: " + "; ".join(skipped) + ")"
    return CheckResult(
        "adjoint",
        holds,
        claim,
        _adjoint_reason(spec, checked, failed),
        evidence,
        ce,
        fail,
        _adjoint_steps(checked),
        OPS_METHOD,
        tuple(skipped),
        identity,
    )


def _adjoint_reason(spec: ConvSpec, checked: list, failed: list) -> str:
    if not failed:
        if len(checked) == 1:
            return "The checked part holds: the index tables coincide after mirroring the taps."
        return (
            f"All {len(checked)} checked parts hold: the index tables coincide after mirroring "
            "the taps, and after swapping rows and columns."
        )
    why = (
        f" The {spec.padding_mode} padding folds border taps back inside, which a "
        "zero-padded convolution cannot reproduce."
        if failed == [_ADJOINT] and spec.padding_mode in ("reflect", "replicate")
        else ""
    )
    return "Failing: " + "; ".join(failed) + " (their index tables differ)." + why


def _adjoint_steps(checked: list) -> tuple:
    steps = [
        Step(
            eq(sympy.Symbol(r"(x \star w)_o"), sympy.Symbol(r"(x \ast \tilde w)_o")),
            "mirroring the kernel taps turns cross-correlation into convolution",
        )
    ]
    if len(checked) > 1:
        steps.append(
            Step(
                eq(_M.T, sympy.MatrixSymbol("M_adj", 1, 1)),
                "(M x)·y = Σ w[k] x[i] y[o] over the same triples as x·(Mᵀ y)",
            )
        )
    return tuple(steps)


def one_by_one(spec: ConvSpec) -> CheckResult:
    """A 1×1 convolution's matrix is ``W ⊗ S`` (channels first), ``S = I`` for stride 1.

    Examples
    --------
    >>> r = one_by_one(ConvSpec((3, 4, 4), 2, 1))
    >>> r.holds, r.evidence["S"]
    (True, 'the identity I_16')
    """
    require_spec(spec, "one_by_one")
    if max(spec.kernel_size) != 1 or spec.transposed or spec.tile or spec.channel_table:
        raise ConvAlgebraError(
            f"one_by_one needs an untiled forward 1×1 convolution, got {spec.describe()}"
        )
    sel = spatial_table(spec)[:, 0]
    p_out, p_in = sel.size, math.prod(spec.input_shape[1:])
    c_out = spec.out_channels
    x, w = ops.signal(spec.in_channels, spec.ndim), spec_kernel("weight", spec)
    lhs = layer(x, w, spec)
    rhs = ops.conv(_selection(x, spec), w, groups=spec.groups)  # W ⊗ I after I ⊗ S
    holds = decide(lhs, rhs, spec).holds
    identity = p_out == p_in and np.array_equal(sel, np.arange(p_in))
    s_text = f"the identity I_{p_in}" if identity else f"a {p_out}×{p_in} selection matrix"
    return CheckResult(
        "one_by_one",
        holds,
        "M = W ⊗ S for a 1×1 convolution (channels first)",
        "Output (o, p) reads input (i, S(p)) with weight W[o, i] only.",
        {"S": s_text, "W shape": (c_out, spec.in_channels)},
        None,
        None,
        (
            Step(
                eq(_M, sympy.KroneckerProduct(_W, sympy.Identity(p_in)))
                if identity
                else eq(_M, sympy.KroneckerProduct(_W, sympy.MatrixSymbol("S", 1, 1))),
                "every pixel gets the same channel-mixing matrix W",
            ),
        ),
        OPS_METHOD,
        identity=(lhs, rhs),
    )


def _selection(x: ops.Op, spec: ConvSpec) -> ops.Op:
    """``I ⊗ S``: the input positions a 1×1 layer reads (padded in its mode, then strided)."""
    pads = tuple(v for pair in reversed(spec.padding) for v in pair)  # F.pad: last axis first
    if any(pads):
        x = ops.pad(x, pads, spec.padding_mode)
    return ops.subsample(x, spec.stride) if max(spec.stride) > 1 else x


def fully_connected(
    spec: ConvSpec | None = None, *, input_shape=None, out_features=None
) -> CheckResult:
    """A fully connected layer on a ``C×H×W`` volume is an ``H×W`` convolution (no padding).

    Its weight ``A`` (``out_features × C·H·W``, channels-first flattening) is the kernel
    ``A.reshape(out_features, C, H, W)``.

    Examples
    --------
    >>> fully_connected(input_shape=(3, 4, 4), out_features=10).holds
    True
    >>> fully_connected(ConvSpec((3, 4, 4), 10, 3)).holds
    False
    """
    if spec is None:
        if input_shape is None or out_features is None:
            raise ConvAlgebraError("give a spec, or input_shape=(C, H, W) and out_features")
        spec = ConvSpec(tuple(input_shape), out_features, tuple(input_shape[1:]))
    if not isinstance(spec, ConvSpec):
        raise TypeError(f"fully_connected needs a ConvSpec, got {type(spec).__name__}")
    rows, cols = math.prod(spec.output_shape), math.prod(spec.input_shape)
    dense_shape = (spec.out_channels, *spec.input_shape)
    x = ops.signal(spec.in_channels, spec.ndim)
    identity = None
    holds = spec.weight_shape == dense_shape and rows == spec.out_channels
    if holds:  # the dense product y[o] = Σ A[o, c, h, w] x[c, h, w] is conv(x, A), unpadded
        a = ops.kernel("weight", dense_shape)
        identity = (layer(x, a, spec), ops.conv(x, a))
        holds = decide(*identity, spec).holds
    n_links = len(triples(spec))
    reason = (
        "Each output reads every input with its own weight A[o, (c, h, w)] = kernel[o, c, h, w]."
        if holds
        else f"The layer has {math.prod(spec.output_shape[1:])} output positions "
        f"per channel and {n_links} of {rows * cols} possible connections: the "
        "kernel must cover the whole input (kernel_size = input size, no padding)."
    )
    return CheckResult(
        "fully_connected",
        holds,
        "FC layer on C×H×W = H×W convolution",
        reason,
        {
            "layer": spec.describe(),
            "connections": n_links,
            "dense connections": rows * cols,
        },
        None,
        None,
        (
            Step(
                eq(sympy.Symbol("y_o"), sympy.Symbol(r"\sum_{c,h,w} A_{o,(c,h,w)} x_{c,h,w}")),
                "a single output position: the convolution sum is the dense product",
            ),
        ),
        OPS_METHOD,
        identity=identity,
    )
