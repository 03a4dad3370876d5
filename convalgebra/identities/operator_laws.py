"""Laws decided by the operator language: the cases the index-table checks do not cover.

``composition`` of grouped layers (a depthwise layer then a pointwise one: the separable
convolution), and of two transposed convolutions, is the identity ``conv(conv(x, v, groups=g1), w, groups=g2) == conv(x, u)`` with
``u`` the composed kernel of the dense (ungrouped) kernels, written in :mod:`convalgebra.ops`
and decided by :func:`convalgebra.ops.prove` at the layers' size, so these cases run on the
one decision procedure that decides every identity.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import ops
from ..errors import ConvAlgebraError
from ..spec import ConvSpec
from .result import CheckResult, Counterexample

__all__ = ["composition_by_ops", "composition_expressions"]

_CLAIM = "L2 ∘ L1 = one convolution with the composed kernel"
METHOD = "operator expressions"  # the method sentence of a CheckResult decided by ops.prove


def _options(spec: ConvSpec) -> dict[str, Any]:
    return {
        "stride": spec.stride,
        "padding": spec.padding,
        "dilation": spec.dilation,
        "groups": spec.groups,
        "padding_mode": spec.padding_mode,
    }


def _kernel(name: str, spec: ConvSpec, weight: Any = None) -> ops.Kernel:
    """The layer's kernel: symbolic, or the given numbers taken exactly."""
    if weight is None:
        k = ops.kernel(name, spec.weight_shape)
    else:
        values = np.asarray(weight)
        if values.shape != spec.weight_shape:
            raise ConvAlgebraError(
                f"weight {name} must have shape {spec.weight_shape}, got {values.shape}"
            )
        k = ops.constant(values)
    return ops.flip_kernel(k) if spec.flip else k


def composition_expressions(
    spec1: ConvSpec, spec2: ConvSpec, weight1: Any = None, weight2: Any = None
) -> tuple[ops.Op, ops.Op | None]:
    """``(L2 ∘ L1, the composed layer)`` as expressions of a signal ``x`` of every size.

    The composed layer is ``None`` where no single layer of that form exists (two transposed
    layers whose composed output padding is not below the composed stride).

    Notes
    -----
    With strides ``s``, dilations ``d`` and padding ``(b, a)`` per axis, the composed layer has
    stride ``s1 s2``, padding ``(b1 + s1 b2, a1 + s1 a2)`` in the mode of the first layer that
    pads, and
    kernel ``u = kernel_conv(dilate(V, d1), dilate(W, s1 d2))``, where ``V`` and ``W`` are the
    dense (ungrouped) kernels: ``u[o, i, r] = Σ_m Σ_{d1 t + s1 d2 s = r} W[o, m, s] V[m, i, t]``.

    Examples
    --------
    >>> s1 = ConvSpec((4, 8), 4, 3, groups=4)
    >>> lhs, rhs = composition_expressions(s1, ConvSpec(s1.output_shape, 2, 1))
    >>> rhs
    conv(x, kernel_conv(ungroup_kernel(v, 4), w))
    """
    for s in (spec1, spec2):
        if s.tile is not None or s.channel_table is not None:
            raise ConvAlgebraError(f"composition needs untiled convolutions, got {s.describe()}")
    if spec1.transposed != spec2.transposed:
        raise ConvAlgebraError(
            "a transposed and an ordinary convolution compose into no single convolution in "
            "general; write the identity you mean with convalgebra.ops and prove it"
        )
    if spec2.in_channels != spec1.out_channels:
        raise ConvAlgebraError(
            f"the second layer reads {spec2.in_channels} channels but the first one gives "
            f"{spec1.out_channels}"
        )
    x = ops.signal(spec1.in_channels, spec1.ndim)
    v, w = _kernel("v", spec1, weight1), _kernel("w", spec2, weight2)
    dense_v = ops.ungroup_kernel(v, spec1.groups) if spec1.groups > 1 else v
    dense_w = ops.ungroup_kernel(w, spec2.groups) if spec2.groups > 1 else w
    stride = tuple(a * b for a, b in zip(spec1.stride, spec2.stride))
    if spec1.transposed:
        return _transposed_composition(spec1, spec2, x, v, w, dense_v, dense_w, stride)
    lhs = ops.conv(ops.conv(x, v, **_options(spec1)), w, **_options(spec2))
    if any(d > 1 for d in spec1.dilation):
        dense_v = ops.dilate_kernel(dense_v, spec1.dilation)
    outer = tuple(s * d for s, d in zip(spec1.stride, spec2.dilation))
    if any(d > 1 for d in outer):
        dense_w = ops.dilate_kernel(dense_w, outer)
    padding = tuple(
        (b1 + s * b2, a1 + s * a2)
        for (b1, a1), (b2, a2), s in zip(spec1.padding, spec2.padding, spec1.stride)
    )
    rhs = ops.conv(
        x,
        ops.kernel_conv(dense_v, dense_w),
        stride=stride if any(v > 1 for v in stride) else 1,
        padding=padding if any(any(p) for p in padding) else 0,
        padding_mode=spec1.padding_mode if any(map(any, spec1.padding)) else spec2.padding_mode,
    )
    return lhs, rhs


def _transposed_composition(spec1, spec2, x, v, w, dense_v, dense_w, stride):
    """Two transposed convolutions: one transposed convolution of stride ``s1 s2``.

    Notes
    -----
    ``T1`` writes ``y[i s1 + t d1] += x[i] v[t]`` and ``T2`` writes ``z[j s2 + s d2] += y[j]
    w[s]``, so ``z[i s1 s2 + t d1 s2 + s d2] += x[i] v[t] w[s]``: the kernel
    ``u = kernel_conv(dilate(W, d2), dilate(V, d1 s2))`` in the transposed layout
    ``(C_in, C_out)``, padding ``p1 s2 + p2`` and output padding ``o1 s2 + o2``.
    """
    lhs = ops.conv_transpose(
        ops.conv_transpose(x, v, **_transposed_options(spec1)), w, **_transposed_options(spec2)
    )
    first = ops.dilate_kernel(dense_v, tuple(d * s for d, s in zip(spec1.dilation, spec2.stride)))
    second = ops.dilate_kernel(dense_w, spec2.dilation)
    padding = tuple(
        (b1 * s + b2, a1 * s + a2)
        for (b1, a1), (b2, a2), s in zip(spec1.padding, spec2.padding, spec2.stride)
    )
    extra = tuple(
        o1 * s + o2 for o1, o2, s in zip(spec1.output_padding, spec2.output_padding, spec2.stride)
    )
    if any(e >= s for e, s in zip(extra, stride)):
        return lhs, None  # output padding allowed by a dilation: no such single layer
    rhs = ops.conv_transpose(
        x,
        ops.kernel_conv(second, first),
        stride=stride if any(v > 1 for v in stride) else 1,
        padding=padding if any(any(p) for p in padding) else 0,
        output_padding=extra if any(extra) else 0,
    )
    return lhs, rhs


def _transposed_options(spec: ConvSpec) -> dict[str, Any]:
    return {
        "stride": spec.stride,
        "padding": spec.padding,
        "output_padding": spec.output_padding,
        "groups": spec.groups,
        "dilation": spec.dilation,
    }


def composition_by_ops(
    spec1: ConvSpec, spec2: ConvSpec, weight1: Any = None, weight2: Any = None
) -> CheckResult:
    """The composition law at ``spec1``'s input size, decided by :func:`convalgebra.ops.prove`.

    Examples
    --------
    >>> s1 = ConvSpec((4, 8), 4, 3, groups=4)                      # depthwise
    >>> r = composition_by_ops(s1, ConvSpec(s1.output_shape, 2, 1))  # then pointwise
    >>> r.holds, r.evidence["decided by"]
    (True, 'ops.prove at size (8,)')
    """
    lhs, rhs = composition_expressions(spec1, spec2, weight1, weight2)
    size = spec1.input_shape[1:]
    if rhs is None:
        reason = (
            "The composed output padding o1 s2 + o2 is not below the composed stride s1 s2: "
            "no single transposed convolution has it."
        )
        return CheckResult("composition", False, _CLAIM, reason, {"L2 ∘ L1": lhs.formula()})
    evidence = {
        "decided by": f"ops.prove at size {size}",
        "L2 ∘ L1": lhs.formula(),
        "composed layer": rhs.formula(),
    }
    try:
        proof = ops.prove(lhs, rhs, size=size)
    except ConvAlgebraError as exc:
        if "not both defined" not in str(exc):
            raise
        reason = "L2 ∘ L1 or the composed layer is not defined at this size (PyTorch refuses it)."
        return CheckResult("composition", False, _CLAIM, reason, evidence)
    if proof.holds:
        reason = "At this size both sides lower to the same table of terms (every kernel value)."
        return CheckResult(
            "composition", True, _CLAIM, reason, evidence, method=METHOD, identity=(lhs, rhs)
        )
    ce = proof.counterexample
    assert ce is not None
    if ce.lhs.shape != ce.rhs.shape:
        reason = f"The two sides have different shapes: {ce.lhs.shape} and {ce.rhs.shape}."
        example = None
    else:
        reason = (
            "At the outputs listed the outer layer reads its own padding of the intermediate "
            "image, which the composed layer does not read."
        )
        first = ce.positions[
            0
        ]  # where these integers separate the sides (not every failing output)
        lhs_values = np.asarray(ce.lhs.tolist(), dtype=float)
        rhs_values = np.asarray(ce.rhs.tolist(), dtype=float)
        example = Counterexample(
            {**ce.inputs, **ce.kernels},
            lhs_values,
            rhs_values,
            first,
            f"with the integer input and kernels shown, L2(L1(x)) and the composed layer differ "
            f"at output {first} ({ce.lhs[first]} vs {ce.rhs[first]})",
        )
    return CheckResult(
        "composition",
        False,
        _CLAIM,
        reason,
        evidence,
        example,
        None,
        method=METHOD,
        identity=(lhs, rhs),
    )
