"""Commutativity laws: of a convolution's two arguments, and of two layers.

``x ∗ k = k ∗ x`` (the mathematician's convolution, ``flip=True``) is decided by comparing the
index tuples ``(output, x index, k index)`` of both sides; cross-correlation fails it and a
one-hot counterexample shows where. Two layers commute when the product tuples
``(o, i, w1, w2)`` of ``L1 ∘ L2`` and ``L2 ∘ L1`` agree -- computed by joining the triple
tables on the middle index, never by multiplying matrices.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import sympy

from .. import budget, ops
from ..errors import ConvAlgebraError
from ..spec import ConvSpec
from ..symbolic import weight_symbols
from .common import eq, positions, require_spec
from .decide import (
    OPS_METHOD,
    Decision,
    counterexample,
    decide,
    kernel_values,
    layer,
    spec_kernel,
)
from .result import CheckResult, Counterexample, Step

__all__ = [
    "commutativity",
    "layer_commutativity",
    "channel_commutator_condition",
    "AGREE",
    "CHANNELS",
    "SAMPLING",
    "BORDER",
]

# what decides a symbolic layer_commutativity check (its evidence["deciding condition"])
AGREE = "every product path agrees"
CHANNELS = "channel-mixing commutators"
SAMPLING = "single-channel tap offsets rescaled by a stride"
BORDER = "single-channel products truncated at the border"


def _arguments(spec: ConvSpec) -> tuple[ops.Op, ops.Op, ops.Op]:
    """``(x op k, k op x, k op x reversed)``, each the full-extent result as the output of
    ``conv_transpose(z, u)`` with ``z`` a signal of one entry (its output is ``u`` itself):
    ``u = kernel_conv(x, k)`` is the full convolution ``x ∗ k``, and cross-correlation is
    convolution with the mirrored second argument, ``x ⋆ k = x ∗ flip(k)``."""
    if spec.in_channels != 1 or spec.out_channels != 1 or spec.transposed or spec.tile is not None:
        raise ConvAlgebraError(
            "commutativity of arguments needs a single-channel, non-transposed, untiled spec, "
            f"got {spec.describe()}"
        )
    if max(spec.stride) > 1 or max(spec.dilation) > 1:
        raise ConvAlgebraError(
            f"commutativity of arguments needs stride 1 and dilation 1, got stride={spec.stride}, "
            f"dilation={spec.dilation}"
        )
    x = ops.kernel("x", (1, 1, *spec.input_shape[1:]))
    k = ops.kernel("k", (1, 1, *spec.kernel_size))

    def op(a: ops.Kernel, b: ops.Kernel) -> ops.Kernel:
        return ops.kernel_conv(a, b if spec.flip else ops.flip_kernel(b))

    z = ops.signal(1, spec.ndim, name="z")
    spatial = tuple(range(1, spec.ndim + 1))
    swapped = ops.conv_transpose(z, op(k, x))
    return ops.conv_transpose(z, op(x, k)), swapped, ops.flip(swapped, spatial)


def commutativity(spec: ConvSpec) -> CheckResult:
    """Does the operation commute with its arguments, ``x ∗ k = k ∗ x``?

    Checked on the full (infinite-domain) convolution of an input of ``spec.input_shape`` and
    a kernel of ``spec.kernel_size``, both symbolic: an identity between operator expressions
    (:func:`_arguments`) decided by ops.prove. True for ``flip=True``, false for
    cross-correlation, which satisfies ``x ⋆ k = reverse(k ⋆ x)`` instead.

    Examples
    --------
    >>> commutativity(ConvSpec((1, 3, 3), 1, 2, flip=True)).holds
    True
    >>> r = commutativity(ConvSpec((1, 3), 1, 2))
    >>> r.holds, r.evidence["x ⋆ k = reverse(k ⋆ x)"]
    (False, True)
    """
    lhs, rhs, reversed_rhs = _arguments(require_spec(spec, "commutativity"))
    one = (1,) * spec.ndim
    d = decide(lhs, rhs, one)
    holds = d.holds
    op = "∗" if spec.flip else "⋆"
    name = "convolution" if spec.flip else "cross-correlation"
    evidence: dict = {"residual terms": d.n_terms}
    if not spec.flip:
        evidence["x ⋆ k = reverse(k ⋆ x)"] = decide(lhs, reversed_rhs, one).holds
    from .proofs import commutativity_proof

    proof = commutativity_proof(ndim=spec.ndim, flip=spec.flip)
    reason = (
        f"Every product x[i]·k[j] lands on the same output in x {op} k and k {op} x."
        if holds
        else f"For {name} the product x[i]·k[j] lands on output i - j + const in one order and "
        f"j - i + const in the other: the outputs are mirrored."
    )
    return CheckResult(
        "commutativity",
        holds,
        f"x {op} k = k {op} x ({name}, full extent)",
        reason,
        evidence,
        _swap_counterexample(d, spec, op),
        None
        if holds
        else positions(
            d.failing,
            (1, *(n + k - 1 for n, k in zip(spec.input_shape[1:], spec.kernel_size, strict=True))),
        ),
        proof.steps,
        method="operator expressions + all-size index proof",
        identity=(lhs, rhs),
    )


def _swap_counterexample(d: Decision, spec: ConvSpec, op: str) -> Counterexample | None:
    """One-hot ``x`` and ``k`` at the first residual term (output, then ``x``'s entry, then
    ``k``'s): that product lands on this output in one order only; both sides evaluated."""
    r = d.proof.residual
    if r is None:
        return None
    # symbols sort by kernel name: k's id, then x's
    k_ids, x_ids = r.symbols[:, 0] - r.symbol_offsets["k"], r.symbols[:, 1] - r.symbol_offsets["x"]
    first = np.lexsort((k_ids, x_ids, r.out))[0]
    x = budget.zeros(r.symbol_shapes["x"], dtype=np.int64)
    k = budget.zeros(r.symbol_shapes["k"], dtype=np.int64)
    x.flat[x_ids[first]], k.flat[k_ids[first]] = 1, 1
    sides = ops.evaluate_sides(
        d.lhs, d.rhs, d.size, {"z": [[1] * math.prod(d.size)]}, {"x": x, "k": k}
    )
    lhs, rhs = (np.asarray(v.tolist(), dtype=float) for v in sides)
    at = tuple(int(v) for v in np.argwhere(lhs != rhs)[0])
    return Counterexample(
        {
            "x": x.reshape(spec.input_shape[1:]).astype(float),
            "k": k.reshape(spec.kernel_size).astype(float),
        },
        lhs,
        rhs,
        at,
        f"with x = 1 at {_one_based(x.reshape(spec.input_shape[1:]))}, k = 1 at "
        f"{_one_based(k.reshape(spec.kernel_size))} and 0 elsewhere, x {op} k and k {op} x "
        f"differ at output {tuple(i + 1 for i in at)} (1-based; {lhs[at]:g} vs {rhs[at]:g})",
    )


def _one_based(one_hot: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) + 1 for i in np.argwhere(one_hot)[0])


def _hyper(spec: ConvSpec) -> str:
    """The layer without its input size, e.g. ``Conv2d(1, 1, kernel_size=(3, 3), ...)``."""
    return spec.describe().split(" on input")[0]


def _at_size(spec: ConvSpec, shape: tuple[int, ...]) -> ConvSpec:
    """``spec``'s hyper-parameters applied to an input of ``shape`` (as torch would)."""
    if spec.input_shape == shape:
        return spec
    return replace(spec, input_shape=shape)


def _chain(first: ConvSpec, second: ConvSpec, shape: tuple[int, ...]):
    """``(first at shape, second at first's output)``, or a sentence saying why it cannot run."""
    try:
        a = _at_size(first, shape)
    except ConvAlgebraError as exc:
        return f"{_hyper(first)} cannot run on {shape}: {exc}"
    try:
        b = _at_size(second, a.output_shape)
    except ConvAlgebraError as exc:
        return f"{_hyper(second)} cannot run on {a.output_shape}: {exc}"
    return a, b


def _orders(spec1: ConvSpec, spec2: ConvSpec):
    """Both orders applied to ``x`` of ``spec1.input_shape``: ((L2 then L1), (L1 then L2)),
    or the first condition that fails, as a sentence."""
    shape = spec1.input_shape
    for s, name in ((spec1, "L1"), (spec2, "L2")):
        if s.in_channels != shape[0]:
            return (
                f"{name} reads {s.in_channels} channels but x has {shape[0]}: the order "
                f"starting with {name} is not defined (two layers can only commute when "
                "each has as many output as input channels)"
            )
    for s, name in ((spec1, "L1"), (spec2, "L2")):
        if s.out_channels != shape[0]:
            return (
                f"{name} maps {shape[0]} channels to {s.out_channels}: the two orders "
                "cannot both be defined with the same shape (two layers can only commute "
                "when each has as many output as input channels)"
            )
    inner_first = _chain(spec2, spec1, shape)  # L1(L2 x)
    outer_first = _chain(spec1, spec2, shape)  # L2(L1 x)
    for chain, name in ((inner_first, "L1(L2 x)"), (outer_first, "L2(L1 x)")):
        if isinstance(chain, str):
            return f"{name} is not defined: {chain}"
    a_out, b_out = inner_first[1].output_shape, outer_first[1].output_shape
    if a_out != b_out:
        return f"the two orders give different shapes: L1(L2 x) is {a_out}, L2(L1 x) is {b_out}"
    return inner_first, outer_first


def layer_commutativity(
    spec1: ConvSpec, spec2: ConvSpec, *, weight1=None, weight2=None
) -> CheckResult:
    """Do two layers commute, ``L1(L2 x) = L2(L1 x)``, each applied at the size reaching it?

    ``x`` has ``spec1.input_shape``; each spec gives a layer's hyper-parameters and runs on
    whatever size arrives, as in PyTorch (``spec2``'s own input size is not used). The layers
    commute when both orders are defined, give the same shape and agree for every kernel
    (symbolic, the default) or for ``weight1`` and ``weight2``; the reason names the first
    condition that fails.

    Examples
    --------
    >>> circ = ConvSpec((1, 6), 1, 3, padding=1, padding_mode="circular")
    >>> layer_commutativity(circ, circ).holds
    True
    >>> zero = ConvSpec((1, 6), 1, 3, padding=1)
    >>> layer_commutativity(zero, zero).failing_positions
    ((0, 0), (0, 5))
    >>> layer_commutativity(ConvSpec((1, 8, 8), 1, 3), ConvSpec((1, 8, 8), 1, 5)).holds
    True
    """
    for s in (spec1, spec2):
        if not isinstance(s, ConvSpec):
            raise TypeError(f"layer_commutativity needs two ConvSpecs, got {type(s).__name__}")
    if (weight1 is None) != (weight2 is None):
        raise ConvAlgebraError("give both weight1 and weight2, or neither (symbolic kernels)")
    claim = "L1 ∘ L2 = L2 ∘ L1"
    orders = _orders(spec1, spec2)
    if isinstance(orders, str):
        return CheckResult(
            "layer_commutativity",
            False,
            claim,
            orders[0].upper() + orders[1:] + ".",
            {"L1": spec1.describe(), "L2": spec2.describe()},
        )
    inner_first, outer_first = orders
    if weight1 is not None:
        return _numeric_commutativity(inner_first, outer_first, weight1, weight2, claim)
    d = _both_orders(inner_first, outer_first)
    holds = d.holds
    evidence: dict = {
        "residual terms at this size": d.n_terms,
        "output shape": inner_first[1].output_shape,
    }
    deciding, reason = _deciding(inner_first, outer_first, holds)
    evidence["deciding condition"] = deciding
    if deciding == CHANNELS:
        evidence["commutator sums per path class"] = _channel_condition(inner_first, d)
    steps = (
        Step(
            eq(
                sympy.MatrixSymbol("M_1", 1, 1) * sympy.MatrixSymbol("M_2", 1, 1),
                sympy.MatrixSymbol("M_2", 1, 1) * sympy.MatrixSymbol("M_1", 1, 1),
            ),
            "the claim",
        ),
        Step(reason, "product tuples (o, i, w1, w2) compared"),
    )
    out_shape = inner_first[1].output_shape
    return CheckResult(
        "layer_commutativity",
        holds,
        claim,
        reason,
        evidence,
        counterexample(d, ("L1(L2 x)", "L2(L1 x)")),
        None if holds else positions(d.failing, out_shape),
        steps,
        OPS_METHOD,
        identity=(d.lhs, d.rhs),
    )


def _both_orders(inner_first, outer_first, given: dict | None = None) -> Decision:
    """``L1(L2 x) == L2(L1 x)``, each layer at the size reaching it, decided by ops.prove."""
    (l2a, l1a), (l1b, l2b) = inner_first, outer_first
    x = ops.signal(l2a.in_channels, l2a.ndim)
    k1, k2 = spec_kernel("weight1", l1a), spec_kernel("weight2", l2a)
    lhs = layer(layer(x, k2, l2a), k1, l1a)
    rhs = layer(layer(x, k1, l1b), k2, l2b)
    return decide(lhs, rhs, l2a, given)


def _single_channel(spec: ConvSpec) -> ConvSpec:
    """``spec`` with one input and one output channel (its spatial pattern only)."""
    return replace(
        spec,
        input_shape=(1, *spec.input_shape[1:]),
        out_channels=1,
        groups=1,
        channel_table=None,
    )


def _deciding(inner_first, outer_first, holds: bool) -> tuple[str, str]:
    """The condition that decides a symbolic check of two layers, and the reason citing it.

    With one channel the orders differ exactly when the single-channel product tuples
    differ; when those agree, the channel-mixing matrices decide (their commutators summed
    over each class of paths).
    """
    if holds:
        return AGREE, (
            "Both orders are defined, give the same shape, and hold the same weight pairs "
            "on the same input at every output: equal for every kernel."
        )
    single = [tuple(_single_channel(s) for s in order) for order in (inner_first, outer_first)]
    if single != [inner_first, outer_first] and _both_orders(single[0], single[1]).holds:
        return CHANNELS, (
            "Both orders are defined and give the same shape, and with one channel they hold "
            "the same tap pairs (a, b) on the same paths; so they commute exactly when, for "
            "every class of paths, the sum of the commutators [W1[a], W2[b]] of the "
            "channel-mixing matrices over its tap pairs vanishes, which fails for generic "
            "kernels (the equations are in the evidence)."
        )
    l2, l1 = inner_first
    why = _interior_mismatch(l1, l2)
    if why is not None:
        return SAMPLING, (
            "Both orders are defined and give the same shape, but even with one channel they "
            f"differ, on every grid large enough: {why}."
        )
    return BORDER, (
        "Both orders are defined and give the same shape, but even with one channel they "
        "differ at the outputs listed, through the borders only: away from them every tap "
        "pair reads the same input in both orders ((s2 − 1)·o1 = (s1 − 1)·o2 for all tap "
        "offsets o = d·a − p), and the padding or cropping of one layer truncates products "
        "that the other order keeps."
    )


def _tap_offsets_axis(spec: ConvSpec, axis: int) -> list[int]:
    """Offsets ``d·a − p`` of the taps along ``axis`` (before-padding ``p``)."""
    d, p = spec.dilation[axis], spec.padding[axis][0]
    return [d * a - p for a in range(spec.kernel_size[axis])]


def _interior_mismatch(l1: ConvSpec, l2: ConvSpec) -> str | None:
    """Why ``L1 L2`` and ``L2 L1`` differ away from every border (one channel), or ``None``.

    Notes
    -----
    Along one axis a forward layer reads input ``s·q + o`` for output ``q`` and a transposed
    one writes output ``s·i + o`` from input ``i``, ``o = d·a − p`` for tap ``a``. For two
    layers of the same direction the orders read ``s1·s2·q + s2·o1 + o2`` and
    ``s1·s2·q + s1·o2 + o1``: for generic kernels (each tap pair its own monomial) they
    agree exactly when ``(s2 − 1)·o1 = (s1 − 1)·o2`` for every tap pair. For a forward and a
    transposed layer the same equation decides, and also ``gcd(s1, s2) = 1`` (otherwise one
    order reaches only every ``gcd``-th input the other reaches).
    """
    for axis in range(l1.ndim):
        s1, s2 = l1.stride[axis], l2.stride[axis]
        if l1.transposed != l2.transposed and math.gcd(s1, s2) > 1:
            return (
                f"along axis {axis} one layer samples down and the other up, by strides "
                f"{s1} and {s2} with a common factor {math.gcd(s1, s2)}"
            )
        o1, o2 = _tap_offsets_axis(l1, axis), _tap_offsets_axis(l2, axis)
        bad = [(a, b) for a in o1 for b in o2 if (s2 - 1) * a != (s1 - 1) * b]
        if bad:
            a, b = bad[0]
            return (
                f"along axis {axis} each stride rescales the other layer's tap offsets "
                f"o = d·a − p: the tap pair with offsets o1 = {a} (L1, stride {s1}) and "
                f"o2 = {b} (L2, stride {s2}) reads input {_affine(s1 * s2, s2 * a + b)} in "
                f"L1(L2 x) and {_affine(s1 * s2, s1 * b + a)} in L2(L1 x)"
                if not l1.transposed
                else f"along axis {axis} each stride rescales the other layer's tap offsets "
                f"o = d·a − p: (s2 − 1)·o1 ≠ (s1 − 1)·o2 for the tap offsets o1 = {a} (L1, "
                f"stride {s1}) and o2 = {b} (L2, stride {s2})"
            )
    return None


def _affine(scale: int, offset: int) -> str:
    """``scale·q ± offset`` as printed (``2·q − 3``, ``q + 1``)."""
    head = "q" if scale == 1 else f"{scale}·q"
    return head if offset == 0 else f"{head} {'+' if offset > 0 else '−'} {abs(offset)}"


def _channel_condition(inner_first, d: Decision, limit: int = 64) -> list | None:
    """The residual as C×C matrices, one per class of spatial paths with equal entries.

    Entry ``(co, ci)`` of a class is ``Σ coeff · w[w1] · u[w2]`` over its residual terms:
    the sum of the commutators of the channel-mixing matrices of its tap pairs. ``None``
    above ``limit`` distinct classes.
    """
    l2, l1 = inner_first
    c = l1.output_shape[0]
    p_out, p_in = math.prod(l1.output_shape[1:]), math.prod(l2.input_shape[1:])
    r = d.proof.residual
    assert r is not None
    # symbols sort by kernel name: weight1's id, then weight2's
    w1 = r.symbols[:, 0] - r.symbol_offsets["weight1"]
    w2 = r.symbols[:, 1] - r.symbol_offsets["weight2"]
    co, osp = np.divmod(r.out, p_out)
    ci, isp = np.divmod(r.src, p_in)
    classes: dict = {}
    for key in np.unique(osp * p_in + isp).tolist():
        sel = (osp * p_in + isp) == key
        entry = tuple(
            sorted(zip(*(a[sel].tolist() for a in (co, ci, w1, w2, r.coeff)), strict=True))
        )
        classes.setdefault(entry, key)
        if len(classes) > limit:
            return None
    sym1, sym2 = weight_symbols(l1, "w").ravel(), weight_symbols(l2, "u").ravel()
    out = []
    for entry in sorted(classes, key=classes.__getitem__):
        m = sympy.zeros(c, c)
        for a, b, k1, k2, k in entry:
            m[a, b] += int(k) * sym1[k1] * sym2[k2]
        out.append(m)
    return out


def _numeric_commutativity(inner_first, outer_first, weight1, weight2, claim) -> CheckResult:
    """The two orders for given kernels: the symbolic residual evaluated at them."""
    l2a, l1a = inner_first
    given = {
        "weight1": kernel_values(weight1, l1a, "weight1"),
        "weight2": kernel_values(weight2, l2a, "weight2"),
    }
    d = _both_orders(inner_first, outer_first, given)
    shape = l1a.output_shape
    evidence = {"max |L1 L2 - L2 L1|": d.largest, "output shape": shape}
    reason = (
        "Both orders are defined, give the same shape, and their matrices agree for these kernels."
        if d.holds
        else f"Both orders are defined and give the same shape, but for these kernels they "
        f"differ at {d.failing.size} outputs."
    )
    return CheckResult(
        "layer_commutativity",
        d.holds,
        claim,
        reason,
        evidence,
        counterexample(d, ("L1(L2 x)", "L2(L1 x)")),
        None if d.holds else positions(d.failing, shape),
        method=OPS_METHOD,
        identity=(d.lhs, d.rhs),
    )


def channel_commutator_condition(
    spec1: ConvSpec, spec2: ConvSpec, weight1=None, weight2=None, max_channels: int = 4
):
    """Per spatial offset ``c``: ``sum_{a+b=c} (W1[a] W2[b] - W2[b] W1[a])``.

    ``W[a]`` is the ``C×C`` channel-mixing matrix of tap ``a``. Two stride-1 layers that keep
    a circular grid commute exactly when every matrix vanishes, provided the offsets are
    distinct modulo the grid size (the shifts of distinct offsets are then linearly
    independent); for any other pair, ``layer_commutativity`` reports the exact condition,
    one matrix per class of paths. Symbolic (``w``, ``u`` symbols) unless weights are given, then
    numeric. ``None`` for grouped layers or above ``max_channels`` channels (symbolic).

    Examples
    --------
    >>> s = ConvSpec((2, 4), 2, 1, bias=False)
    >>> cond = channel_commutator_condition(s, s)
    >>> len(cond), cond[0][0, 0]
    (1, -u_{1,2,1}*w_{2,1,1} + u_{2,1,1}*w_{1,2,1})
    """
    c = spec1.in_channels
    symbolic = weight1 is None or weight2 is None
    if spec1.groups != 1 or spec2.groups != 1 or (symbolic and c > max_channels):
        return None
    w1 = weight_symbols(spec1, "w") if symbolic else np.asarray(weight1, dtype=float)
    w2 = weight_symbols(spec2, "u") if symbolic else np.asarray(weight2, dtype=float)
    a_taps, a_off = _tap_offsets(spec1)
    b_taps, b_off = _tap_offsets(spec2)
    A, B = w1.reshape(c, c, -1)[:, :, a_taps], w2.reshape(c, c, -1)[:, :, b_taps]
    comm = np.einsum("ija,jkb->ikab", A, B) - np.einsum("ijb,jka->ikab", B, A)  # (c, c, a, b)
    offsets = a_off[:, None, :] + b_off[None, :, :]  # (a, b, ndim)
    keys, inverse = np.unique(offsets.reshape(-1, offsets.shape[-1]), axis=0, return_inverse=True)
    sums = budget.zeros((len(keys), c, c), dtype=comm.dtype)
    np.add.at(sums, inverse.ravel(), np.moveaxis(comm.reshape(c, c, -1), -1, 0))
    if not symbolic:
        return list(sums)
    mats = [sympy.Matrix(m.tolist()).expand() for m in sums]
    return [m for m in mats if not m.is_zero_matrix]


def _tap_offsets(spec: ConvSpec) -> tuple[np.ndarray, np.ndarray]:
    """(flat weight taps, the spatial offset each reads relative to the output position)."""
    u = np.indices(spec.kernel_size).reshape(spec.ndim, -1).T
    if spec.flip:
        u = np.asarray(spec.kernel_size) - 1 - u
    return np.arange(u.shape[0]), u * np.asarray(spec.dilation)
