"""Composition: two convolutions in a row are one convolution.

For cross-correlations ``y[p] = Σ_a w[a] x[s1·p + d1·a]`` and ``z[q] = Σ_b v[b] y[s2·q + d2·b]``:

    z[q] = Σ_{a,b} v[b] w[a] x[s1·s2·q + d1·a + s1·d2·b] = Σ_c K[c] x[s1·s2·q + c],
    K[c] = Σ_{d1·a + s1·d2·b = c} w[a] v[b]

-- the full convolution of ``w`` with ``v`` dilated by ``s1`` (channels: ``K[o,i] = Σ_m
v[o,m] ∗ w[m,i]``). Extent ``d1(k1−1) + s1·d2(k2−1) + 1``, stride ``s1·s2``, padding
``p1 + s1·p2``, padding mode the inner layer's if it pads, else the outer one's. The composed layer is exact when
the outer layer is unpadded (the inner layer's padding of ``x`` is the composed layer's); the
outer layer's padding of the intermediate image breaks it at the border (unless both layers
are circular and the inner one keeps the grid), and the check says where.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import sympy

from .. import budget, ops
from ..connectivity import tap_weight_order
from ..errors import ConvAlgebraError
from ..spec import ConvSpec
from ..symbolic import weight_symbols
from ..symbolic.exprs import as_expr_array
from .common import eq, is_symbolic, positions
from .decide import OPS_METHOD, counterexample, decide, kernel_values, layer, spec_kernel
from .operator_laws import composition_by_ops
from .result import CheckResult, Step

__all__ = ["composed_spec", "composed_kernel", "composition"]

_CLAIM = "L2 ∘ L1 = one convolution with the composed kernel"


def _validate(spec1: ConvSpec, spec2: ConvSpec) -> None:
    for s in (spec1, spec2):
        if not isinstance(s, ConvSpec):
            raise TypeError(f"composition needs two ConvSpecs, got {type(s).__name__}")
        if s.transposed or s.groups != 1 or s.tile is not None or s.channel_table is not None:
            raise ConvAlgebraError(
                f"composition needs ordinary convolutions (groups=1, not transposed, untiled), "
                f"got {s.describe()}"
            )
    if spec2.in_channels != spec1.out_channels:
        raise ConvAlgebraError(
            f"the second layer reads {spec2.in_channels} channels but the first one gives "
            f"{spec1.out_channels}"
        )


def _outer(spec1: ConvSpec, spec2: ConvSpec) -> ConvSpec:
    """``spec2``'s hyper-parameters applied to ``spec1``'s output (whatever its input size)."""
    _validate(spec1, spec2)
    if spec2.input_shape == spec1.output_shape:
        return spec2
    try:
        return replace(spec2, input_shape=spec1.output_shape)
    except ConvAlgebraError as exc:
        raise ConvAlgebraError(
            f"the second layer cannot run on the first one's output {spec1.output_shape}: {exc}"
        ) from None


def composed_spec(spec1: ConvSpec, spec2: ConvSpec) -> ConvSpec:
    """The single layer equal to ``spec2`` after ``spec1`` (cross-correlation form).

    ``spec2`` gives the second layer's hyper-parameters; it runs on ``spec1``'s output, as in
    PyTorch (its own input size is not used).

    Examples
    --------
    >>> s1 = ConvSpec((1, 9), 1, 3, stride=2)
    >>> s2 = ConvSpec(s1.output_shape, 1, 3)
    >>> c = composed_spec(s1, s2)
    >>> c.kernel_size, c.stride, c.output_shape == s2.output_shape
    ((7,), (2,), True)
    """
    spec2 = _outer(spec1, spec2)
    extent = tuple(
        d1 * (k1 - 1) + s1 * d2 * (k2 - 1) + 1
        for k1, d1, s1, k2, d2 in zip(
            spec1.kernel_size,
            spec1.dilation,
            spec1.stride,
            spec2.kernel_size,
            spec2.dilation,
            strict=True,
        )
    )
    padding = tuple(
        (b1 + s1 * b2, a1 + s1 * a2)
        for (b1, a1), (b2, a2), s1 in zip(spec1.padding, spec2.padding, spec1.stride, strict=True)
    )
    stride = tuple(a * b for a, b in zip(spec1.stride, spec2.stride, strict=True))
    try:
        return ConvSpec(
            spec1.input_shape,
            spec2.out_channels,
            extent,
            stride=stride,
            padding=padding,
            padding_mode=_composed_mode(spec1, spec2),
            bias=False,
        )
    except ConvAlgebraError:  # e.g. reflect padding p1 + s1·p2 as large as the input
        return ConvSpec(
            spec1.input_shape,
            spec2.out_channels,
            extent,
            stride=stride,
            padding=padding,
            bias=False,
        )


def _padded(spec: ConvSpec) -> bool:
    return any(max(p) for p in spec.padding)


def _composed_mode(spec1: ConvSpec, spec2: ConvSpec) -> str:
    """The padding mode of the composed layer: that of the padded layer(s).

    An unpadded layer has no mode that matters. The composed layer pads the input ``x``, as
    the inner layer does, so when both are padded in different modes the inner one's wins
    (the identity then fails where the outer padding enters, and the check says where).
    """
    for s in (spec1, spec2):
        if _padded(s):
            return s.padding_mode
    return "zeros"


def _composed_taps(spec1: ConvSpec, spec2: ConvSpec, extent) -> np.ndarray:
    """Flat composed tap ``c(a, b)`` for spatial taps ``a`` of layer 1 and ``b`` of layer 2."""
    ua = np.indices(spec1.kernel_size).reshape(spec1.ndim, -1)
    ub = np.indices(spec2.kernel_size).reshape(spec2.ndim, -1)
    coords = [
        d1 * ua[ax][None, :] + s1 * d2 * ub[ax][:, None]
        for ax, (d1, s1, d2) in enumerate(
            zip(spec1.dilation, spec1.stride, spec2.dilation, strict=True)
        )
    ]
    return np.ravel_multi_index(tuple(coords), extent)  # (taps2, taps1)


def composed_kernel(spec1: ConvSpec, spec2: ConvSpec, weight1, weight2) -> np.ndarray:
    """Kernel of :func:`composed_spec`: ``K[o,i] = Σ_m v[o,m] ∗ w[m,i]`` (numbers or sympy).

    Examples
    --------
    >>> s1 = ConvSpec((1, 5), 1, 2)
    >>> s2 = ConvSpec(s1.output_shape, 1, 2)
    >>> composed_kernel(s1, s2, [[[1, 2]]], [[[3, 4]]]).tolist()
    [[[3, 10, 8]]]
    """
    spec = composed_spec(spec1, spec2)
    spec2 = _outer(spec1, spec2)
    symbolic = is_symbolic(weight1) or is_symbolic(weight2)
    w1, w2 = (
        as_expr_array(w, s.weight_shape, n) if symbolic else np.asarray(w)
        for w, s, n in ((weight1, spec1, "weight1"), (weight2, spec2, "weight2"))
    )
    for w, s, name in ((w1, spec1, "weight1"), (w2, spec2, "weight2")):
        if w.shape != s.weight_shape:
            raise ConvAlgebraError(f"{name} must have shape {s.weight_shape}, got {w.shape}")
    # effective cross-correlation kernels, taps flattened in spatial order
    e1 = w1.reshape(*w1.shape[:2], -1)[:, :, tap_weight_order(spec1)]
    e2 = w2.reshape(*w2.shape[:2], -1)[:, :, tap_weight_order(spec2)]
    pairs = np.einsum("omb,mia->oiba", e2, e1)
    c = _composed_taps(spec1, spec2, spec.kernel_size)
    out = budget.zeros((*pairs.shape[:2], math.prod(spec.kernel_size)), dtype=pairs.dtype)
    # numpy's stubs type np.add.at's indices as an integer array, not a tuple of slices
    np.add.at(
        out,
        (slice(None), slice(None), c.ravel()),  # type: ignore[arg-type]
        pairs.reshape(*pairs.shape[:2], -1),
    )
    return out.reshape(spec.weight_shape)


def composition(spec1: ConvSpec, spec2: ConvSpec, *, weight1=None, weight2=None) -> CheckResult:
    """Is ``spec2 ∘ spec1`` the single convolution :func:`composed_spec` with :func:`composed_kernel`?

    The second layer runs on the first one's output, whatever ``spec2.input_shape`` says (as
    in PyTorch); when it cannot (its kernel does not fit), the composition is not defined and
    the check fails saying so.

    Examples
    --------
    >>> s1 = ConvSpec((1, 6, 6), 1, 3)
    >>> composition(s1, ConvSpec(s1.output_shape, 1, 2)).holds
    True
    >>> s1 = ConvSpec((1, 6), 1, 3, padding=1)
    >>> composition(s1, ConvSpec(s1.output_shape, 1, 3, padding=1)).failing_positions
    ((0, 0), (0, 5))

    Grouped layers (a depthwise-separable pair) are decided by :func:`convalgebra.ops.prove`
    on the same identity written as operator expressions
    (:func:`~convalgebra.identities.operator_laws.composition_by_ops`):

    >>> dw = ConvSpec((4, 6), 4, 3, groups=4)
    >>> composition(dw, ConvSpec(dw.output_shape, 8, 1)).holds
    True
    """
    specs = (spec1, spec2)
    if all(isinstance(s, ConvSpec) and not s.tile and not s.channel_table for s in specs) and (
        max(spec1.groups, spec2.groups) > 1 or (spec1.transposed and spec2.transposed)
    ):  # grouped or transposed pairs: the identity in the operator language, decided by prove
        return composition_by_ops(spec1, spec2, weight1, weight2)
    _validate(spec1, spec2)
    try:
        spec2 = _outer(spec1, spec2)
    except ConvAlgebraError as exc:
        return CheckResult(
            "composition",
            False,
            _CLAIM,
            f"L2 ∘ L1 is not defined: {exc}.",
            {"L1": spec1.describe(), "L2": spec2.describe()},
        )
    spec = composed_spec(spec1, spec2)
    if spec.output_shape != spec2.output_shape:  # pragma: no cover - floor arithmetic agrees
        raise ConvAlgebraError("internal: composed output shape differs")
    given = None
    if weight1 is not None or weight2 is not None:
        if weight1 is None or weight2 is None:
            raise ConvAlgebraError("give both weight1 and weight2, or neither (symbolic kernels)")
        given = {
            "weight1": kernel_values(weight1, spec1, "weight1"),
            "weight2": kernel_values(weight2, spec2, "weight2"),
        }
    d = decide(*_expressions(spec1, spec2, spec), spec1, given)
    evidence = _evidence(spec1, spec2, spec)
    if given is not None:
        evidence["numeric composed kernel"] = composed_kernel(spec1, spec2, weight1, weight2)
        evidence["max |L2 L1 - M(K)|"] = d.largest
    else:
        evidence["residual terms at this size"] = d.n_terms
    reason = (
        "Every product path x → y → z of the two layers is a tap of the composed kernel."
        if d.holds
        else _failure_reason(spec1, spec2, spec)
    )
    return CheckResult(
        "composition",
        d.holds,
        _CLAIM,
        reason,
        evidence,
        counterexample(d, ("L2(L1 x)", "the composed layer")),
        None if d.holds else positions(d.failing, spec.output_shape),
        _steps(spec1, spec2),
        OPS_METHOD,
        identity=(d.lhs, d.rhs),
    )


def _expressions(spec1: ConvSpec, spec2: ConvSpec, spec: ConvSpec) -> tuple[ops.Op, ops.Op]:
    """``L2(L1 x)`` and the composed layer ``spec`` with the kernel
    ``kernel_conv(dilate(V, d1), dilate(W, s1 d2))`` (``V``, ``W`` in cross-correlation form)."""
    x = ops.signal(spec1.in_channels, spec1.ndim)
    v, w = spec_kernel("weight1", spec1), spec_kernel("weight2", spec2)
    lhs = layer(layer(x, v, spec1), w, spec2)
    first = ops.flip_kernel(v) if spec1.flip else v
    second = ops.flip_kernel(w) if spec2.flip else w
    if max(spec1.dilation) > 1:
        first = ops.dilate_kernel(first, spec1.dilation)
    outer = tuple(s * d for s, d in zip(spec1.stride, spec2.dilation, strict=True))
    if max(outer) > 1:
        second = ops.dilate_kernel(second, outer)
    return lhs, layer(x, ops.kernel_conv(first, second), spec)


def _failure_reason(spec1: ConvSpec, spec2: ConvSpec, spec: ConvSpec) -> str:
    """Why the paths differ: the outer layer pads the intermediate image ``y``, not ``x``."""
    mode = {"zeros": "zero"}.get(spec.padding_mode, spec.padding_mode) if _padded(spec) else "no"
    if not _padded(spec2):  # pragma: no cover - an unpadded outer layer always composes
        return "The product paths of the two layers and of the composed layer differ."
    outer = {"zeros": "zero"}.get(spec2.padding_mode, spec2.padding_mode)
    return (
        f"At the outputs listed the outer layer reads its own {outer} padding "
        "of the intermediate image y, which is not what the composed layer reads through "
        f"its {mode} padding of the input x."
    )


def _evidence(spec1, spec2, spec) -> dict:
    ev = {
        "composed layer": spec.describe(),
        "kernel extent": spec.kernel_size,
        "stride": spec.stride,
    }
    if math.prod(spec.weight_shape) <= 64:
        ev["composed kernel"] = sympy.ImmutableDenseNDimArray(
            composed_kernel(
                spec1, spec2, weight_symbols(spec1, "w"), weight_symbols(spec2, "v")
            ).tolist()
        )
    return ev


def _steps(spec1: ConvSpec, spec2: ConvSpec) -> tuple:
    """The derivation along the first spatial axis, padding included.

    ``x̃``, ``ỹ`` are the padded inputs of the two layers; ``p1``, ``p2`` their padding before
    the first pixel. The substitution of ``ỹ`` by the first layer holds where the second
    layer reads inside ``y``; where it reads its own padding the composed layer reads
    ``x̃`` instead, and the check compares the two there.
    """
    q, a, b, c, m = sympy.symbols("q a b c m", integer=True)
    w, v, K = (sympy.IndexedBase(n) for n in ("w", "v", "K"))
    x, y = sympy.IndexedBase(r"\tilde{x}"), sympy.IndexedBase(r"\tilde{y}")
    s1, s2 = spec1.stride[0], spec2.stride[0]
    d1, d2 = spec1.dilation[0], spec2.dilation[0]
    k1, k2 = spec1.kernel_size[0], spec2.kernel_size[0]
    p1, p2 = spec1.padding[0][0], spec2.padding[0][0]
    pad = p1 + s1 * p2
    inner = sympy.Sum(
        v[b] * w[a] * x[s1 * s2 * q + d1 * a + s1 * d2 * b - pad], (a, 0, k1 - 1), (b, 0, k2 - 1)
    )
    extent = d1 * (k1 - 1) + s1 * d2 * (k2 - 1) + 1
    mode1, mode2 = spec1.padding_mode, spec2.padding_mode
    return (
        Step(
            eq(sympy.Symbol("z_q"), sympy.Sum(v[b] * y[s2 * q + d2 * b - p2], (b, 0, k2 - 1))),
            f"the second layer reads its input y with padding {spec2.padding[0]} "
            f"({mode2}) (first spatial axis shown)",
        ),
        Step(
            eq(y[m], sympy.Sum(w[a] * x[s1 * m + d1 * a - p1], (a, 0, k1 - 1))),
            f"inside y (0 ≤ m < {spec1.output_shape[1]}): the first layer, which pads x with "
            f"{spec1.padding[0]} ({mode1}); outside y the second layer reads its own padding",
        ),
        Step(
            eq(sympy.Symbol("z_q"), inner),
            "substitute the first layer, where the second one reads inside y",
        ),
        Step(
            eq(
                sympy.Symbol("z_q"),
                sympy.Sum(K[c] * x[s1 * s2 * q + c - pad], (c, 0, extent - 1)),
            ),
            f"collect c = {d1}a + {s1 * d2}b: K[c] = Σ w[a] v[b], extent {extent}, stride "
            f"{s1 * s2}, padding p1 + s1·p2 = {pad} before the first pixel",
        ),
    )
