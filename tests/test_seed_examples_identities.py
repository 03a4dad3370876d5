"""Seed examples 20-26 (../shared/seed-examples.md): the identities, with hand-checked values."""

from __future__ import annotations

import numpy as np
import scipy.signal
import sympy
from oracle import torch_conv

import convalgebra as ca
from convalgebra.identities import (
    adjoint_conv_spec,
    check,
    composed_kernel,
    composed_spec,
    equivariant_kernels,
)
from convalgebra.operators import conv_matrix


# 20 ------------------------------------------------------------------------------------------
def test_20_convolution_commutes_cross_correlation_does_not():
    assert check("commutativity", ca.ConvSpec((1, 3, 3), 1, 2, flip=True)).holds
    r = check("commutativity", ca.ConvSpec((1, 3), 1, 2))
    assert not r.holds
    x, k = r.counterexample.inputs["x"], r.counterexample.inputs["k"]
    assert x.tolist() == [1, 0, 0] and k.tolist() == [0, 1]
    # by hand: x ⋆ k = [1, 0, 0, 0] (full), k ⋆ x = [0, 0, 0, 1]
    assert scipy.signal.correlate(x, k).tolist() == [1, 0, 0, 0]
    assert scipy.signal.correlate(k, x).tolist() == [0, 0, 0, 1]


def test_20_the_index_proof_of_the_book():
    """(I∗K)(i,j) = Σ I(m,n) K(i−m, j−n) = Σ I(i−m, j−n) K(m,n), for every size."""
    r = check("commutativity", ndim=2)
    assert r.holds and r.method == "index proof (all sizes)"
    i, j, m, n = sympy.symbols("i1 i2 m1 m2", integer=True)
    I, K = sympy.IndexedBase("I"), sympy.IndexedBase("K")
    inf = (-sympy.oo, sympy.oo)
    assert r.steps[0].statement.rhs == sympy.Sum(I[m, n] * K[i - m, j - n], (m, *inf), (n, *inf))
    assert r.steps[1].statement.dummy_eq(sympy.Sum(I[i - m, j - n] * K[m, n], (m, *inf), (n, *inf)))


# 21 ------------------------------------------------------------------------------------------
def test_21_cross_correlation_is_convolution_with_flipped_kernel_and_its_adjoint():
    spec = ca.ConvSpec((1, 4), 1, 3, bias=False)
    x = np.array([1, 2, 3, 4])
    corr = conv_matrix(spec, [[[1, 2, 3]]])
    conv = conv_matrix(ca.ConvSpec((1, 4), 1, 3, flip=True), [[[3, 2, 1]]])
    assert (corr @ x).tolist() == [14, 20] == (conv @ x).tolist()
    r = check("adjoint", spec)
    assert r.holds and r.evidence["M ⋆ w = M ∗ flip(w)"]
    adj = adjoint_conv_spec(spec)
    assert adj.flip and adj.padding == ((2, 2),) and adj.input_shape == (1, 2)
    assert conv_matrix(adj, [[[1, 2, 3]]]).toarray().tolist() == [[1, 0], [2, 1], [3, 2], [0, 3]]
    assert (corr.toarray().T == conv_matrix(adj, [[[1, 2, 3]]]).toarray()).all()


# 22 ------------------------------------------------------------------------------------------
def test_22_translation_circular_exact_zero_padding_border():
    circ = ca.ConvSpec((1, 5, 5), 1, 3, padding=1, padding_mode="circular")
    assert check("translation_equivariance", circ, shift=1, axis=1).holds
    zero = ca.ConvSpec((1, 5, 5), 1, 3, padding=1)
    r = check("translation_equivariance", zero, shift=1, axis=1)  # I'(x, y) = I(x − 1, y)
    assert not r.holds
    assert set(r.failing_positions) == {(0, row, col) for row in range(5) for col in (0, 4)}
    ce = r.counterexample
    xs = np.roll(ce.inputs["x"], 1, axis=2)
    xs[:, :, 0] = 0
    lhs = torch_conv(zero, xs, ce.inputs["weight"]).numpy()
    y = torch_conv(zero, ce.inputs["x"], ce.inputs["weight"]).numpy()
    rhs = np.roll(y, 1, axis=2)
    rhs[:, :, 0] = 0
    assert lhs[ce.position] != rhs[ce.position]


def test_22_stride_only_multiples():
    spec = ca.ConvSpec((1, 8, 8), 1, 2, stride=2, padding_mode="circular")
    assert check("translation_equivariance", spec, shift=2, axis=0).holds  # output moves by 1
    assert not check("translation_equivariance", spec, shift=1, axis=0).holds


def test_22_rotation_and_scaling():
    spec = ca.ConvSpec((1, 5, 5), 1, 3, padding=1)
    r = check("rotation_equivariance", spec)
    assert not r.holds and r.counterexample is not None
    ek = equivariant_kernels(spec, "rotation")
    assert ek.dimension == 3
    c1, c2, c3 = sympy.symbols("c1:4")
    assert ek.general.tolist() == [[[[c1, c2, c1], [c2, c3, c2], [c1, c2, c1]]]]
    w = np.array([[[[1, 2, 1], [2, 4, 2], [1, 2, 1]]]])
    assert check("rotation_equivariance", spec, weight=w).holds
    x = np.random.default_rng(0).standard_normal((1, 5, 5))
    assert np.allclose(
        torch_conv(spec, np.rot90(x, axes=(1, 2)).copy(), w).numpy(),
        np.rot90(torch_conv(spec, x, w).numpy(), axes=(1, 2)),
    )
    assert not check("scale_equivariance", ca.ConvSpec((1, 4, 4), 1, 3, padding="same")).holds


# 23 ------------------------------------------------------------------------------------------
def test_23_multichannel_layers_commute_only_for_special_kernels():
    r = check("layer_commutativity", ca.ConvSpec((2, 4, 4), 3, 1), ca.ConvSpec((3, 4, 4), 2, 1))
    assert not r.holds and "as many output as input channels" in r.reason
    s = ca.ConvSpec((2, 4, 4), 2, 1, bias=False)
    r = check("layer_commutativity", s, s)
    assert not r.holds and "channel-mixing" in r.reason
    w1 = np.array([[1, 1], [0, 1]]).reshape(2, 2, 1, 1)
    w2 = np.array([[1, 0], [1, 1]]).reshape(2, 2, 1, 1)  # W1 W2 = [[2,1],[1,1]] ≠ [[1,1],[1,2]]
    assert not check("layer_commutativity", s, s, weight1=w1, weight2=w2).holds
    w3 = 2 * np.eye(2).reshape(2, 2, 1, 1) + w1  # a polynomial in W1 commutes with it
    assert check("layer_commutativity", s, s, weight1=w1, weight2=w3).holds


# 24 ------------------------------------------------------------------------------------------
def test_24_max_pooling_fraction_unchanged():
    x = np.array([[[0, 5, 0, 0], [0, 0, 0, 3], [4, 0, 0, 0], [0, 0, 2, 0]]])
    r = check("max_pool_invariance", x, 2, shift=1, axis=-1)
    # pooled before [[5, 3], [4, 2]], after a one-pixel shift right [[0, 5], [4, 2]]
    assert r.evidence["fraction unchanged"] == 0.5
    assert r.failing_positions == ((0, 0, 0), (0, 0, 1))


# 25 ------------------------------------------------------------------------------------------
def test_25_one_by_one_is_kronecker_and_fc_is_a_convolution():
    spec = ca.ConvSpec((2, 2, 2), 2, 1, bias=False)
    w = np.array([[1, 2], [3, 4]])
    assert check("one_by_one", spec).holds
    assert (conv_matrix(spec, w.reshape(2, 2, 1, 1)).toarray() == np.kron(w, np.eye(4))).all()
    assert check("fully_connected", input_shape=(3, 2, 2), out_features=4).holds


# 26 ------------------------------------------------------------------------------------------
def test_26_composition_is_one_convolution():
    s1 = ca.ConvSpec((1, 6), 1, 2)
    s2 = ca.ConvSpec(s1.output_shape, 1, 2)
    assert composed_kernel(s1, s2, [[[1, 2]]], [[[3, 4]]]).tolist() == [
        [[3, 10, 8]]
    ]  # 1·3, 1·4+2·3, 2·4
    assert check("composition", s1, s2).holds
    x = np.arange(6.0)
    two = torch_conv(s2, torch_conv(s1, x[None], [[[1, 2]]]), [[[3, 4]]]).numpy()
    one = torch_conv(composed_spec(s1, s2), x[None], [[[3, 10, 8]]]).numpy()
    assert np.allclose(two, one)


def test_26_strided_receptive_field_and_stride():
    s1 = ca.ConvSpec((1, 15, 15), 1, 3, stride=2)
    s2 = ca.ConvSpec(s1.output_shape, 1, 3, stride=2)
    c = composed_spec(s1, s2)
    assert c.kernel_size == (3 + (3 - 1) * 2,) * 2 == (7, 7) and c.stride == (4, 4)
    assert check("composition", s1, s2).holds
