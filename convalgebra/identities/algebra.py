"""Commutativity laws: of a convolution's two arguments, and of two layers.

``x ∗ k = k ∗ x`` (the mathematician's convolution, ``flip=True``) is decided by comparing the
index tuples ``(output, x index, k index)`` of both sides; cross-correlation fails it and a
one-hot counterexample shows where. Two layers commute when the product tuples
``(o, i, w1, w2)`` of ``L1 ∘ L2`` and ``L2 ∘ L1`` agree -- computed by joining the triple
tables on the middle index, never by multiplying matrices.
"""

from __future__ import annotations

import math

import numpy as np
import sympy

from ..errors import ConvAlgebraError
from ..operators import conv_matrix
from ..spec import ConvSpec
from ..symbolic import weight_symbols
from .common import eq, one_hot, positions, require_spec
from .engine import count_tuples, layer_table, path_tuples
from .result import CheckResult, Counterexample, Step

__all__ = ["commutativity", "layer_commutativity", "channel_commutator_condition"]


def _argument_specs(spec: ConvSpec) -> tuple[ConvSpec, ConvSpec]:
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
    n, k = spec.input_shape[1:], spec.kernel_size
    a = ConvSpec((1, *n), 1, k, padding="full", flip=spec.flip, bias=False)
    b = ConvSpec((1, *k), 1, n, padding="full", flip=spec.flip, bias=False)
    return a, b


def commutativity(spec: ConvSpec) -> CheckResult:
    """Does the operation commute with its arguments, ``x ∗ k = k ∗ x``?

    Checked on the full (infinite-domain) convolution of an input of ``spec.input_shape`` and
    a kernel of ``spec.kernel_size``. True for ``flip=True``, false for cross-correlation,
    which satisfies ``x ⋆ k = reverse(k ⋆ x)`` instead.

    Examples
    --------
    >>> commutativity(ConvSpec((1, 3, 3), 1, 2, flip=True)).holds
    True
    >>> r = commutativity(ConvSpec((1, 3), 1, 2))
    >>> r.holds, r.evidence["x ⋆ k = reverse(k ⋆ x)"]
    (False, True)
    """
    a, b = _argument_specs(require_spec(spec, "commutativity"))
    ta, tb = layer_table(a), layer_table(b)
    n_x, n_k = ta.shape[1], ta.n_weights
    sizes = [ta.shape[0], n_x, n_k]
    signs = np.concatenate((np.ones(len(ta.out_index)), -np.ones(len(tb.out_index))))
    cols, coeff = count_tuples(
        [np.concatenate((ta.out_index, tb.out_index)), np.concatenate((ta.in_index, tb.weight_index)),
         np.concatenate((ta.weight_index, tb.in_index))], sizes, signs)
    holds = cols[0].size == 0
    op = "∗" if spec.flip else "⋆"
    name = "convolution" if spec.flip else "cross-correlation"
    evidence: dict = {"index pairs compared": len(ta.out_index)}
    if not spec.flip:
        rev = ta.shape[0] - 1 - tb.out_index
        _, c2 = count_tuples([np.concatenate((ta.out_index, rev)), np.concatenate((ta.in_index, tb.weight_index)),
                              np.concatenate((ta.weight_index, tb.in_index))], sizes, signs)
        evidence["x ⋆ k = reverse(k ⋆ x)"] = bool(c2.size == 0)
    ce = None if holds else _swap_counterexample(a, b, cols, op)
    from .proofs import commutativity_proof

    proof = commutativity_proof(ndim=spec.ndim, flip=spec.flip)
    reason = (f"Every product x[i]·k[j] lands on the same output in x {op} k and k {op} x."
              if holds else
              f"For {name} the product x[i]·k[j] lands on output i - j + const in one order and "
              f"j - i + const in the other: the outputs are mirrored.")
    return CheckResult("commutativity", holds, f"x {op} k = k {op} x ({name}, full extent)",
                       reason, evidence, ce, None if holds else positions(np.unique(cols[0]),
                                                                          a.output_shape),
                       proof.steps, method="index tables + all-size index proof")


def _swap_counterexample(a: ConvSpec, b: ConvSpec, cols, op: str) -> Counterexample:
    xi, ki = int(cols[1][0]), int(cols[2][0])
    x = np.zeros(math.prod(a.input_shape))
    k = np.zeros(math.prod(b.input_shape))
    x[xi], k[ki] = 1.0, 1.0
    lhs = (conv_matrix(a, k.reshape(a.weight_shape)) @ x).reshape(a.output_shape)
    rhs = (conv_matrix(b, x.reshape(b.weight_shape)) @ k).reshape(b.output_shape)
    bad = np.argwhere(lhs != rhs)
    if bad.size == 0:
        raise ConvAlgebraError("internal: the counterexample does not fail; please report")
    at = tuple(int(v) for v in bad[0])
    return Counterexample(
        {"x": x.reshape(a.input_shape[1:]), "k": k.reshape(a.kernel_size)}, lhs, rhs, at,
        f"one-hot x and k: x {op} k and k {op} x differ at output {at[1:]} "
        f"({lhs[at]:g} vs {rhs[at]:g})")


def _same_space(spec1: ConvSpec, spec2: ConvSpec) -> str | None:
    for name, s in (("L1", spec1), ("L2", spec2)):
        if s.input_shape != s.output_shape:
            return (f"{name} maps {s.input_shape} to {s.output_shape}: a layer can only commute "
                    "with another when it has as many output as input channels and keeps the size")
    if spec1.input_shape != spec2.input_shape:
        return f"the layers act on different spaces {spec1.input_shape} and {spec2.input_shape}"
    return None


def _product_residual(t1, t2):
    """Residual tuples (o, i, w1, w2) of ``L1 L2 - L2 L1``."""
    o_a, i_a, w1_a, w2_a = path_tuples(t2, t1)       # L1 after L2
    o_b, i_b, w2_b, w1_b = path_tuples(t1, t2)       # L2 after L1
    signs = np.concatenate((np.ones(o_a.size), -np.ones(o_b.size)))
    cols, coeff = count_tuples(
        [np.concatenate((o_a, o_b)), np.concatenate((i_a, i_b)),
         np.concatenate((w1_a, w1_b)), np.concatenate((w2_a, w2_b))],
        [t1.shape[0], t1.shape[1], t1.n_weights, t2.n_weights], signs)
    return cols, coeff, o_a.size


def layer_commutativity(spec1: ConvSpec, spec2: ConvSpec, *, weight1=None, weight2=None) -> CheckResult:
    """Do two layers commute, ``L1(L2 x) = L2(L1 x)``?

    With symbolic kernels (default) the answer is for every kernel; give ``weight1`` and
    ``weight2`` (numbers) to check particular kernels.

    Examples
    --------
    >>> circ = ConvSpec((1, 6), 1, 3, padding=1, padding_mode="circular")
    >>> layer_commutativity(circ, circ).holds
    True
    >>> zero = ConvSpec((1, 6), 1, 3, padding=1)
    >>> layer_commutativity(zero, zero).failing_positions
    ((0, 0), (0, 5))
    """
    for s in (spec1, spec2):
        if not isinstance(s, ConvSpec):
            raise TypeError(f"layer_commutativity needs two ConvSpecs, got {type(s).__name__}")
    claim = "L1 ∘ L2 = L2 ∘ L1"
    problem = _same_space(spec1, spec2)
    if problem is not None:
        return CheckResult("layer_commutativity", False, claim, problem + ".",
                           {"L1": spec1.describe(), "L2": spec2.describe()})
    if weight1 is not None or weight2 is not None:
        return _numeric_commutativity(spec1, spec2, weight1, weight2, claim)
    t1, t2 = layer_table(spec1), layer_table(spec2)
    cols, coeff, n_paths = _product_residual(t1, t2)
    holds = cols[0].size == 0
    evidence: dict = {"product paths compared": n_paths}
    multi = spec1.in_channels > 1
    if holds:
        reason = "Both products hold the same weight pairs on the same input at every output."
    elif multi:
        reason = ("The channel-mixing matrices of the taps do not commute for generic kernels. "
                  "The layers commute (circular padding, stride 1) exactly when, for every "
                  "offset c, the sum over taps a + b = c of [W1[a], W2[b]] vanishes; in "
                  "particular when every tap matrix of L1 commutes with every tap matrix of L2 "
                  "(e.g. both depthwise/diagonal, or W[a] = λ_a I, or all polynomials in one "
                  "matrix).")
        cond = channel_commutator_condition(spec1, spec2)
        if cond is not None:
            evidence["condition (one matrix equation per offset)"] = cond
    else:
        reason = ("Away from the border both products agree; at the outputs listed the zero "
                  "padding of the inner layer truncates one product differently from the other.")
    ce = None if holds else _product_counterexample(spec1, spec2, cols)
    steps = (Step(eq(sympy.MatrixSymbol("M_1", 1, 1) * sympy.MatrixSymbol("M_2", 1, 1),
                           sympy.MatrixSymbol("M_2", 1, 1) * sympy.MatrixSymbol("M_1", 1, 1)),
                  "the claim"), Step(reason, "product tuples (o, i, w1, w2) compared"))
    return CheckResult("layer_commutativity", holds, claim, reason, evidence, ce,
                       None if holds else positions(np.unique(cols[0]), spec1.output_shape), steps)


def _product_counterexample(spec1, spec2, cols) -> Counterexample:
    o, i, w1, w2 = (int(c[0]) for c in cols)
    x = one_hot(spec1.input_shape, i).ravel()
    k1, k2 = one_hot(spec1.weight_shape, w1), one_hot(spec2.weight_shape, w2)
    m1, m2 = conv_matrix(spec1, k1), conv_matrix(spec2, k2)
    lhs = (m1 @ (m2 @ x)).reshape(spec1.output_shape)
    rhs = (m2 @ (m1 @ x)).reshape(spec1.output_shape)
    bad = np.argwhere(lhs != rhs)
    if bad.size == 0:
        raise ConvAlgebraError("internal: the counterexample does not fail; please report")
    at = tuple(int(v) for v in bad[0])
    return Counterexample(
        {"x": x.reshape(spec1.input_shape), "weight1": k1, "weight2": k2}, lhs, rhs, at,
        f"one-hot input and kernels: L1(L2 x) and L2(L1 x) differ at output {at} "
        f"({lhs[at]:g} vs {rhs[at]:g})")


def _numeric_commutativity(spec1, spec2, weight1, weight2, claim) -> CheckResult:
    if weight1 is None or weight2 is None:
        raise ConvAlgebraError("give both weight1 and weight2, or neither (symbolic kernels)")
    m1, m2 = conv_matrix(spec1, weight1), conv_matrix(spec2, weight2)
    diff = (m1 @ m2 - m2 @ m1).tocoo()
    scale = max(1.0, abs(m1).max() * abs(m2).max())
    bad = np.abs(diff.data) > 1e-9 * scale
    rows = np.unique(diff.row[bad])
    holds = rows.size == 0
    evidence = {"max |L1 L2 - L2 L1|": float(np.abs(diff.data).max(initial=0.0))}
    ce = None
    if not holds:
        x = np.zeros(diff.shape[1])
        x[diff.col[bad][0]] = 1.0
        lhs, rhs = (m1 @ (m2 @ x)), (m2 @ (m1 @ x))
        at = tuple(int(v) for v in np.unravel_index(int(diff.row[bad][0]), spec1.output_shape))
        ce = Counterexample({"x": x.reshape(spec1.input_shape), "weight1": np.asarray(weight1),
                             "weight2": np.asarray(weight2)}, lhs.reshape(spec1.output_shape),
                            rhs.reshape(spec1.output_shape), at,
                            f"a one-hot input: the two orders differ at output {at}")
    reason = "The products of the two matrices agree." if holds else \
        f"The products differ at {rows.size} outputs."
    return CheckResult("layer_commutativity", holds, claim, reason, evidence, ce,
                       None if holds else positions(rows, spec1.output_shape), method="numeric")


def channel_commutator_condition(spec1: ConvSpec, spec2: ConvSpec, weight1=None, weight2=None,
                                 max_channels: int = 4):
    """Per spatial offset ``c``: ``sum_{a+b=c} (W1[a] W2[b] - W2[b] W1[a])``.

    ``W[a]`` is the ``C×C`` channel-mixing matrix of tap ``a``. The layers commute on a
    circular grid exactly when every matrix vanishes (the shifts of distinct offsets are
    linearly independent). Symbolic (``w``, ``u`` symbols) unless weights are given, then
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
    comm = np.einsum("ija,jkb->ikab", A, B) - np.einsum("ijb,jka->ikab", B, A)   # (c, c, a, b)
    offsets = a_off[:, None, :] + b_off[None, :, :]                                # (a, b, ndim)
    keys, inverse = np.unique(offsets.reshape(-1, offsets.shape[-1]), axis=0, return_inverse=True)
    sums = np.zeros((len(keys), c, c), dtype=comm.dtype)
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
