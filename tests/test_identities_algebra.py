"""Commutativity, composition, adjoint, 1×1/FC laws against independent numeric evaluation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.signal
import scipy.sparse as sp
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from oracle import F, torch, torch_conv, torch_jacobian
from strategies import conv_specs

import convalgebra as ca
from convalgebra.identities import (
    adjoint_conv_spec,
    channel_commutator_condition,
    check,
    composed_kernel,
    composed_spec,
)
from convalgebra.operators import conv_matrix


# ----------------------------------------------------------------- commutativity of arguments
@settings(max_examples=30)
@given(
    st.sampled_from([1, 2]),
    st.integers(1, 4),
    st.integers(1, 3),
    st.booleans(),
    st.integers(0, 2**31),
)
def test_argument_commutativity_against_scipy(nd, n, k, flip, seed):
    assume(k <= n)
    spec = ca.ConvSpec((1,) + (n,) * nd, 1, k, flip=flip)
    r = check("commutativity", spec)
    assert r.holds == (flip or n == k == 1)
    if r.holds:
        return
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal((n,) * nd), rng.standard_normal((k,) * nd)
    op = scipy.signal.convolve if flip else scipy.signal.correlate
    assert np.allclose(op(x, w, mode="full"), op(w, x, mode="full")) == flip or k == n == 1
    if not flip:
        ce = r.counterexample
        a = scipy.signal.correlate(ce.inputs["x"], ce.inputs["k"], mode="full")
        b = scipy.signal.correlate(ce.inputs["k"], ce.inputs["x"], mode="full")
        assert not np.allclose(a, b)
        assert np.allclose(a, ce.lhs[0]) and np.allclose(b, ce.rhs[0])
        assert r.evidence["x ⋆ k = reverse(k ⋆ x)"]


def test_argument_commutativity_rejects_strides():
    with pytest.raises(ca.ConvAlgebraError, match="stride 1"):
        check("commutativity", ca.ConvSpec((1, 5), 1, 2, stride=2))


# ----------------------------------------------------------------- two layers
@st.composite
def same_size_pairs(draw, channels=1):
    nd = draw(st.sampled_from([1, 2]))
    n = tuple(draw(st.integers(2, 6)) for _ in range(nd))
    mode = draw(st.sampled_from(["zeros", "circular", "reflect", "replicate"]))
    specs = []
    for _ in range(2):
        k = tuple(draw(st.integers(1, 3)) for _ in range(nd))
        pad = tuple((draw(st.integers(0, kk - 1)),) for kk in k)
        pad = tuple((p[0], kk - 1 - p[0]) for p, kk in zip(pad, k))
        try:
            specs.append(
                ca.ConvSpec(
                    (channels, *n),
                    channels,
                    k,
                    padding=pad,
                    padding_mode=mode,
                    flip=draw(st.booleans()),
                    bias=False,
                )
            )
        except ca.ConvAlgebraError:
            assume(False)
    return specs


@settings(max_examples=50)
@given(same_size_pairs(), st.integers(0, 2**31))
def test_single_channel_layer_commutativity_against_random_kernels(pair, seed):
    s1, s2 = pair
    r = check("layer_commutativity", s1, s2)
    rng = np.random.default_rng(seed)
    w1, w2 = rng.standard_normal(s1.weight_shape), rng.standard_normal(s2.weight_shape)
    m1, m2 = conv_matrix(s1, w1).toarray(), conv_matrix(s2, w2).toarray()
    diff = np.abs(m1 @ m2 - m2 @ m1).max(axis=1) > 1e-9
    differs = set(map(tuple, np.argwhere(diff.reshape(s1.output_shape))))
    assert r.holds == (not differs)
    assert set(r.failing_positions or ()) == differs
    if s1.padding_mode == "circular":
        assert r.holds
    if r.counterexample is not None:
        ce = r.counterexample
        a = torch_conv(
            s1, torch_conv(s2, ce.inputs["x"], ce.inputs["weight2"]), ce.inputs["weight1"]
        )
        b = torch_conv(
            s2, torch_conv(s1, ce.inputs["x"], ce.inputs["weight1"]), ce.inputs["weight2"]
        )
        assert not np.allclose(a.numpy(), b.numpy())


def test_multichannel_layers_fail_generically_with_counterexample():
    s = ca.ConvSpec((2, 5, 5), 2, 3, padding=1, padding_mode="circular", bias=False)
    r = check("layer_commutativity", s, s)
    assert not r.holds
    ce = r.counterexample
    a = torch_conv(s, torch_conv(s, ce.inputs["x"], ce.inputs["weight2"]), ce.inputs["weight1"])
    b = torch_conv(s, torch_conv(s, ce.inputs["x"], ce.inputs["weight1"]), ce.inputs["weight2"])
    assert not np.allclose(a.numpy(), b.numpy())
    assert r.evidence["deciding condition"] == "channel-mixing commutators"
    cond = r.evidence["commutator sums per path class"]
    # circular, stride 1, offsets distinct mod 5: one class per offset, the commutator sums
    offsets = channel_commutator_condition(s, s)
    assert len(cond) == len(offsets) == 25
    assert {m.as_immutable() for m in cond} == {m.as_immutable() for m in offsets}


@pytest.mark.parametrize("mode, commute", [("circular", True), ("zeros", False)])
def test_commuting_tap_matrices_make_layers_commute(mode, commute):
    """Taps that are polynomials in one matrix A commute; with circular padding the layers do."""
    rng = np.random.default_rng(3)
    a = rng.integers(-2, 3, (3, 3)).astype(float)
    powers = np.stack([np.linalg.matrix_power(a, p) for p in range(3)])
    s = ca.ConvSpec((3, 5, 5), 3, 3, padding=1, padding_mode=mode, bias=False)

    def kernel():
        coef = rng.integers(-2, 3, (9, 3)).astype(float)
        return np.einsum("tp,pij->ijt", coef, powers).reshape(s.weight_shape)

    w1, w2 = kernel(), kernel()
    r = check("layer_commutativity", s, s, weight1=w1, weight2=w2)
    assert r.holds == commute
    assert np.allclose(channel_commutator_condition(s, s, w1, w2), 0)


def test_commutator_condition_symbolic_equals_numeric():
    s1 = ca.ConvSpec((2, 5), 2, 2, padding=((1, 0),), padding_mode="circular", bias=False)
    s2 = ca.ConvSpec((2, 5), 2, 3, padding=1, padding_mode="circular", flip=True, bias=False)
    rng = np.random.default_rng(0)
    w1, w2 = rng.integers(-3, 4, s1.weight_shape), rng.integers(-3, 4, s2.weight_shape)
    numeric = channel_commutator_condition(s1, s2, w1, w2)
    subs = dict(
        zip(
            ca.weight_symbols(s1, "w").ravel().tolist()
            + ca.weight_symbols(s2, "u").ravel().tolist(),
            w1.ravel().tolist() + w2.ravel().tolist(),
        )
    )
    symbolic = [
        np.array(m.subs(subs).tolist(), dtype=float) for m in channel_commutator_condition(s1, s2)
    ]
    assert len(numeric) == len(symbolic) == 4
    assert np.allclose(numeric, symbolic)
    # a nonzero condition <=> the layers do not commute (circular, generic sizes)
    m1, m2 = conv_matrix(s1, w1).toarray(), conv_matrix(s2, w2).toarray()
    assert not np.allclose(m1 @ m2, m2 @ m1)


def test_layers_with_different_channel_counts_do_not_commute():
    r = check("layer_commutativity", ca.ConvSpec((2, 4), 3, 1), ca.ConvSpec((3, 4), 2, 1))
    assert not r.holds and "L2 reads 3 channels but x has 2" in r.reason
    assert "not defined" in r.reason


# ----------------------------------------------------------------- composition
@st.composite
def composable(draw):
    s1 = draw(conv_specs(ndims=(1, 2), transposed=False, max_size=7, max_channels=2))
    assume(s1.groups == 1)
    nd = s1.ndim
    k = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    try:
        s2 = ca.ConvSpec(
            s1.output_shape,
            draw(st.integers(1, 2)),
            k,
            stride=tuple(draw(st.integers(1, 2)) for _ in range(nd)),
            dilation=tuple(draw(st.integers(1, 2)) for _ in range(nd)),
            padding=tuple(draw(st.integers(0, 1)) for _ in range(nd)),
            padding_mode=draw(
                st.sampled_from([s1.padding_mode, "zeros", "circular", "reflect", "replicate"])
            ),
            flip=draw(st.booleans()),
        )
        composed_spec(s1, s2)
    except ca.ConvAlgebraError:
        assume(False)
    return s1, s2


@settings(max_examples=60)
@given(composable(), st.integers(0, 2**31))
def test_composition_against_torch(pair, seed):
    s1, s2 = pair
    r = check("composition", s1, s2)
    spec = composed_spec(s1, s2)
    rng = np.random.default_rng(seed)
    w1, w2 = rng.standard_normal(s1.weight_shape), rng.standard_normal(s2.weight_shape)
    x = rng.standard_normal(s1.input_shape)
    two = torch_conv(s2, torch_conv(s1, x, w1), w2).numpy()
    one = torch_conv(spec, x, composed_kernel(s1, s2, w1, w2)).numpy()
    differs = set(map(tuple, np.argwhere(~np.isclose(two, one, atol=1e-9))))
    assert r.holds == (not differs)
    assert set(r.failing_positions or ()) >= differs
    if all(max(p) == 0 for p in s1.padding + s2.padding):
        assert r.holds
    assert spec.kernel_size == tuple(
        d1 * (k1 - 1) + a * d2 * (k2 - 1) + 1
        for k1, d1, a, k2, d2 in zip(
            s1.kernel_size, s1.dilation, s1.stride, s2.kernel_size, s2.dilation
        )
    )
    assert check("composition", s1, s2, weight1=w1, weight2=w2).holds == r.holds or not r.holds


def _torch_differences(s1, s2, draws=3, seed=0):
    """Outputs where L2(L1 x) and the composed layer differ in torch, over random draws."""
    spec = composed_spec(s1, s2)
    rng = np.random.default_rng(seed)
    differs = np.zeros(spec.output_shape, dtype=bool)
    for _ in range(draws):
        w1, w2 = rng.standard_normal(s1.weight_shape), rng.standard_normal(s2.weight_shape)
        x = rng.standard_normal(s1.input_shape)
        two = torch_conv(s2, torch_conv(s1, x, w1), w2).numpy()
        one = torch_conv(spec, x, composed_kernel(s1, s2, w1, w2)).numpy()
        differs |= ~np.isclose(two, one, atol=1e-9)
    return set(map(tuple, np.argwhere(differs).tolist()))


@settings(max_examples=40)
@given(
    conv_specs(ndims=(1, 2), transposed=False, max_size=7, max_channels=2),
    st.sampled_from(["zeros", "circular", "reflect", "replicate"]),
    st.integers(1, 3),
    st.integers(1, 2),
    st.integers(0, 2**31),
)
def test_unpadded_outer_layer_always_composes(s1, mode2, k2, s2_stride, seed):
    # the outer layer pads nothing, so its padding_mode is irrelevant: exact for every s1
    assume(s1.groups == 1)
    try:
        s2 = ca.ConvSpec(s1.output_shape, 2, k2, stride=s2_stride, padding_mode=mode2)
    except ca.ConvAlgebraError:
        assume(False)
    r = check("composition", s1, s2)
    assert _torch_differences(s1, s2, draws=1, seed=seed) == set()
    assert r.holds, r.reason
    assert composed_spec(s1, s2).padding_mode == (
        s1.padding_mode if any(max(p) for p in s1.padding) else "zeros"
    )


def test_circular_inner_valid_outer_composes_as_in_torch():
    # convalgebra check composition --in 1x6 -k 3 -p 1 --mode circular --with "-k 3"
    s1 = ca.ConvSpec((1, 6), 1, 3, padding=1, padding_mode="circular")
    s2 = ca.ConvSpec(s1.output_shape, 1, 3)
    spec = composed_spec(s1, s2)
    assert (spec.kernel_size, spec.padding, spec.padding_mode) == ((5,), ((1, 1),), "circular")
    rng = np.random.default_rng(0)
    w1, w2, x = (
        rng.standard_normal((1, 1, 3)),
        rng.standard_normal((1, 1, 3)),
        rng.standard_normal((1, 6)),
    )
    # independent composed kernel: the full convolution of the two kernels (scipy)
    k = scipy.signal.convolve(w1[0, 0], w2[0, 0], mode="full")
    oracle = ca.ConvSpec((1, 6), 1, 5, padding=1, padding_mode="circular")
    assert np.allclose(
        torch_conv(s2, torch_conv(s1, x, w1), w2).numpy(),
        torch_conv(oracle, x, k[None, None]).numpy(),
    )
    assert np.allclose(composed_kernel(s1, s2, w1, w2)[0, 0], k)
    assert check("composition", s1, s2).holds
    assert check("composition", s1, s2, weight1=w1, weight2=w2).holds


@pytest.mark.parametrize(
    "inner, outer",
    [
        ({"padding": 1, "padding_mode": "circular"}, {"padding": 1}),
        ({}, {"padding": 1, "padding_mode": "circular"}),
        ({"padding": 1, "padding_mode": "reflect"}, {"padding": 1, "padding_mode": "replicate"}),
        (
            {"padding": 1, "padding_mode": "replicate"},
            {"padding": ((0, 1),), "padding_mode": "zeros"},
        ),
        ({"padding": 1, "padding_mode": "circular"}, {"padding": 1, "padding_mode": "circular"}),
        (
            {"padding": 2, "padding_mode": "circular", "stride": 2},
            {"padding": 1, "padding_mode": "circular"},
        ),
        ({"padding": 1}, {"padding": 1, "padding_mode": "reflect"}),
    ],
)
def test_mismatched_padding_modes_against_torch(inner, outer):
    s1 = ca.ConvSpec((2, 7), 2, 3, **inner)
    s2 = ca.ConvSpec(s1.output_shape, 1, 3, **outer)
    r = check("composition", s1, s2)
    differs = _torch_differences(s1, s2)
    assert r.holds == (not differs)
    assert set(r.failing_positions or ()) == differs
    if not r.holds:
        # the outer layer's padding of y is what breaks it, named with its own mode
        word = {"zeros": "zero"}.get(s2.padding_mode, s2.padding_mode)
        assert f"outer layer reads its own {word} padding of the intermediate image" in r.reason
        assert "zeros of the intermediate image" not in r.reason


def test_composed_kernel_is_full_convolution():
    s1 = ca.ConvSpec((1, 7, 7), 1, 3)
    s2 = ca.ConvSpec(s1.output_shape, 1, 2)
    rng = np.random.default_rng(0)
    w1, w2 = rng.standard_normal((1, 1, 3, 3)), rng.standard_normal((1, 1, 2, 2))
    k = composed_kernel(s1, s2, w1, w2)
    assert np.allclose(k[0, 0], scipy.signal.convolve(w1[0, 0], w2[0, 0], mode="full"))


# ----------------------------------------------------------------- adjoint
def _torch_matrix(spec, w):
    """The layer's matrix from torch: its Jacobian (conv or conv_transpose); for an
    asymmetrically padded transposed layer, which torch lacks, the forward Jacobian transposed."""
    if not spec.transposed or all(b == a for b, a in spec.padding):
        return torch_jacobian(spec, w)
    fwd = spec.forward  # its rows that the transposed layer's input indexes (output_padding)
    rows = np.arange(math.prod(fwd.output_shape)).reshape(fwd.output_shape)
    keep = rows[(slice(None), *(slice(0, n) for n in spec.input_shape[1:]))]
    return torch_jacobian(fwd, w)[keep.ravel()].T


@settings(max_examples=60)
@given(conv_specs(ndims=(1, 2), transposed=None, max_channels=3), st.integers(0, 2**31))
def test_adjoint_against_matrices(spec, seed):
    r = check("adjoint", spec)
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(spec.weight_shape)
    x = rng.standard_normal(spec.input_shape)
    flipped = np.flip(w, axis=tuple(range(2, w.ndim))).copy()
    from dataclasses import replace

    # the flip claim against torch: the other operation with the mirrored kernel
    assert r.evidence["M ⋆ w = M ∗ flip(w)"] is True
    other = replace(spec, flip=not spec.flip)
    assert np.allclose(conv_matrix(spec, w).toarray(), _torch_matrix(other, flipped))
    try:
        adj = adjoint_conv_spec(spec)
    except ca.ConvAlgebraError:
        assert not isinstance(r.evidence["adjoint as a convolution"], ca.ConvSpec)
        return
    same = np.allclose(
        conv_matrix(spec, w).toarray().T, conv_matrix(adj, np.swapaxes(w, 0, 1)).toarray()
    )
    assert r.holds == same
    if not same:
        ce = r.counterexample
        k = ce.inputs["weight"]
        lhs = conv_matrix(spec, k).T @ ce.inputs["y"].ravel()
        rhs = conv_matrix(adj, np.swapaxes(k, 0, 1)) @ ce.inputs["y"].ravel()
        assert not np.allclose(lhs, rhs)
    if spec.padding_mode == "zeros" and not spec.transposed:
        # cross-correlation's adjoint via torch autograd: <conv(x), g> = <x, M.T g>
        g = rng.standard_normal(spec.output_shape)
        xt = torch.as_tensor(x, dtype=torch.float64).requires_grad_()
        (torch_conv(spec, xt, w) * torch.as_tensor(g)).sum().backward()
        assert np.allclose(
            xt.grad.numpy().ravel(), conv_matrix(adj, np.swapaxes(w, 0, 1)) @ g.ravel()
        )


# ----------------------------------------------------------------- 1×1 and fully connected
@settings(max_examples=30)
@given(
    st.integers(1, 4),
    st.integers(1, 4),
    st.integers(1, 5),
    st.integers(1, 3),
    st.integers(0, 2**31),
)
def test_one_by_one_is_kronecker(c_in, c_out, n, stride, seed):
    spec = ca.ConvSpec((c_in, n, n), c_out, 1, stride=stride)
    r = check("one_by_one", spec)
    assert r.holds
    w = np.random.default_rng(seed).standard_normal(spec.weight_shape)
    # S: output (i, j) selects input (stride·i, stride·j); built with numpy, independently
    m = (n - 1) // stride + 1
    s1 = np.zeros((m, n))
    s1[np.arange(m), stride * np.arange(m)] = 1.0
    kron = np.kron(w[:, :, 0, 0], np.kron(s1, s1))
    assert np.allclose(conv_matrix(spec, w).toarray(), kron)
    assert np.allclose(torch_jacobian(spec, w), kron)
    if stride == 1:
        assert np.allclose(sp.kron(w[:, :, 0, 0], sp.eye(n * n)).toarray(), kron)


@pytest.mark.parametrize("shape, n_out", [((3, 4, 4), 10), ((1, 5, 3), 2), ((2, 3), 4)])
def test_fully_connected_is_a_convolution(shape, n_out):
    r = check("fully_connected", input_shape=shape, out_features=n_out)
    assert r.holds
    a = np.random.default_rng(0).standard_normal((n_out, math.prod(shape)))
    spec = ca.ConvSpec(shape, n_out, shape[1:])
    x = np.random.default_rng(1).standard_normal(shape)
    assert np.allclose(
        torch_conv(spec, x, a.reshape(n_out, *shape)).numpy().ravel(),
        F.linear(torch.as_tensor(x.ravel()), torch.as_tensor(a)).numpy(),
    )


def test_small_kernel_is_not_fully_connected():
    assert not check("fully_connected", ca.ConvSpec((3, 4, 4), 10, 3)).holds
