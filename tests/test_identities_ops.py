"""The composition law of grouped layers, decided by ops.prove, against torch.

Two layers with groups (depthwise, grouped, then pointwise or grouped), every option the
composition accepts, at random sizes: the verdict is what torch finds evaluating
``conv(conv(x, v), w)`` and the composed layer on random integers, and a counterexample's
values reproduce in torch.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip(
    "torch", reason="the [torch] extra is not installed: pip install '.[test]'"
)

from ops_oracle import OracleUndefined, evaluate  # noqa: E402

import convalgebra as ca  # noqa: E402
from convalgebra import ConvSpec  # noqa: E402
from convalgebra.identities.operator_laws import composition_expressions  # noqa: E402

F = torch.nn.functional


@st.composite
def grouped_pairs(draw):
    ndim = draw(st.integers(1, 2))
    g1 = draw(st.sampled_from([1, 2, 4]))
    c_in = g1 * draw(st.integers(1, 2))
    c_mid = g1 * draw(st.integers(1, 2))
    g2 = draw(st.sampled_from([g for g in (1, 2, 4) if c_mid % g == 0]))
    c_out = g2 * draw(st.integers(1, 2))
    assume(max(g1, g2) > 1)  # ungrouped pairs are the index tables' (test_identities_brute)
    size = tuple(draw(st.integers(1, 9)) for _ in range(ndim))
    k1, k2 = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    s1, s2 = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    d1, d2 = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    p1, p2 = draw(st.integers(0, 1)), draw(st.integers(0, 1))
    mode = draw(st.sampled_from(["zeros", "circular", "reflect"]))
    try:
        spec1 = ConvSpec(
            (c_in, *size),
            c_mid,
            k1,
            stride=s1,
            dilation=d1,
            padding=p1,
            groups=g1,
            padding_mode=mode,
        )
        spec2 = ConvSpec(
            spec1.output_shape, c_out, k2, stride=s2, dilation=d2, padding=p2, groups=g2
        )
    except ValueError:
        return None
    return spec1, spec2


def _torch_sides(spec1, spec2, values):
    lhs, rhs = composition_expressions(spec1, spec2)
    if rhs is None:  # no single layer of the composed form
        raise OracleUndefined("no composed layer")
    x = {"x": values["x"]}
    return evaluate(lhs, x, values), evaluate(rhs, x, values)


@settings(max_examples=max(10, settings().max_examples // 4))
@given(grouped_pairs())
@example((ConvSpec((4, 6), 4, 3, groups=4), ConvSpec((4, 4), 8, 1)))
@example((ConvSpec((2, 5), 2, 3, padding=1, groups=2), ConvSpec((2, 5), 2, 3, padding=1, groups=2)))
def test_grouped_composition_agrees_with_torch(pair):
    if pair is None:
        return
    spec1, spec2 = pair
    result = ca.check("composition", spec1, spec2)
    rng = np.random.default_rng(0)
    agree = True
    for _ in range(3):
        values = {
            "x": rng.integers(-5, 6, spec1.input_shape),
            "v": rng.integers(-5, 6, spec1.weight_shape),
            "w": rng.integers(-5, 6, spec2.weight_shape),
        }
        try:
            a, b = _torch_sides(spec1, spec2, values)
        except OracleUndefined:
            agree = False
            break
        if a.shape != b.shape or not torch.equal(a, b):
            agree = False
            break
    assert result.holds == agree, result.to_text()
    ce = result.counterexample
    if ce is not None:
        a, b = _torch_sides(spec1, spec2, {k: np.asarray(v) for k, v in ce.inputs.items()})
        assert np.array_equal(a.numpy(), ce.lhs) and np.array_equal(b.numpy(), ce.rhs)
        assert a[ce.position] != b[ce.position]


def test_depthwise_separable_is_pointwise_after_depthwise_for_every_size():
    from convalgebra import ops

    x = ops.signal(channels=4, ndim=2)
    dw, pw = ops.kernel("d", (4, 1, 3, 3)), ops.kernel("p", (8, 4, 1, 1))
    separable = ops.conv(ops.conv(x, dw, padding=1, groups=4), pw)
    one = ops.conv(x, ops.kernel_conv(ops.ungroup_kernel(dw, 4), pw), padding=1)
    proof = ca.prove(separable, one)
    assert proof.holds and str(proof.sizes) == "every size"


@st.composite
def transposed_pairs(draw):
    ndim = draw(st.integers(1, 2))
    g1, g2 = draw(st.sampled_from([1, 2])), draw(st.sampled_from([1, 2]))
    c_in, c_mid, c_out = 2 * draw(st.integers(1, 2)), 2, 2 * draw(st.integers(1, 2))
    size = tuple(draw(st.integers(1, 6)) for _ in range(ndim))
    options = []
    for _ in range(2):
        s, d = draw(st.integers(1, 3)), draw(st.integers(1, 2))
        options.append(
            dict(
                kernel_size=draw(st.integers(1, 3)),
                stride=s,
                dilation=d,
                padding=draw(st.integers(0, 2)),
                output_padding=draw(st.integers(0, max(s, d) - 1)),
            )
        )
    try:
        spec1 = ConvSpec((c_in, *size), c_mid, transposed=True, groups=g1, **options[0])
        spec2 = ConvSpec(spec1.output_shape, c_out, transposed=True, groups=g2, **options[1])
    except ValueError:
        return None
    return spec1, spec2


@settings(max_examples=max(10, settings().max_examples // 4))
@given(transposed_pairs())
@example(
    (
        ConvSpec((2, 5), 2, 3, transposed=True, stride=2, padding=1, output_padding=1),
        ConvSpec((2, 10), 2, 2, transposed=True, stride=3),
    )
)
def test_transposed_composition_agrees_with_torch(pair):
    test_grouped_composition_agrees_with_torch.hypothesis.inner_test(pair)


def test_a_transposed_and_an_ordinary_layer_are_refused_clearly():
    t = ConvSpec((1, 6), 1, 3, transposed=True, stride=2)
    with pytest.raises(ValueError, match="no single convolution|ordinary convolutions"):
        ca.check("composition", t, ConvSpec(t.output_shape, 1, 3))
