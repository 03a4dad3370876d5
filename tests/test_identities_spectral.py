"""Convolution theorem, separability and the all-size proofs, against numpy/torch."""

from __future__ import annotations

import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st
from oracle import torch_conv

import convalgebra as ca
from convalgebra.identities import check, eigenvalues
from convalgebra.identities.proofs import commutativity_proof, translation_proof
from convalgebra.operators import conv_matrix


@st.composite
def circular_specs(draw, max_size=6):
    nd = draw(st.sampled_from([1, 2]))
    n = tuple(draw(st.integers(2, max_size)) for _ in range(nd))
    k = tuple(draw(st.integers(1, m)) for m in n)
    before = tuple(draw(st.integers(0, kk - 1)) for kk in k)
    c_in, c_out = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    return ca.ConvSpec(
        (c_in, *n),
        c_out,
        k,
        padding=tuple((b, kk - 1 - b) for b, kk in zip(before, k)),
        padding_mode="circular",
        flip=draw(st.booleans()),
        bias=False,
    )


@settings(max_examples=40)
@given(circular_specs(), st.integers(0, 2**31))
def test_dft_diagonalises_circular_convolution(spec, seed):
    r = check("convolution_theorem", spec)
    assert r.holds
    w = np.random.default_rng(seed).standard_normal(spec.weight_shape)
    m = conv_matrix(spec, w).toarray()
    p = int(np.prod(spec.input_shape[1:]))
    lam = eigenvalues(spec, w)
    # independent: the DFT matrix conjugates every channel block into a diagonal
    f = np.ones((1, 1))
    for n in spec.input_shape[1:]:
        f = np.kron(f, np.fft.fft(np.eye(n)))
    for co in range(spec.out_channels):
        for ci in range(spec.in_channels):
            block = m[co * p : (co + 1) * p, ci * p : (ci + 1) * p]
            d = f @ block @ np.linalg.inv(f)
            assert np.allclose(d, np.diag(lam[co, ci].ravel()), atol=1e-8)
    if "eigenvalues" in r.evidence:  # symbolic eigenvalues at these numbers
        syms = ca.weight_symbols(spec).ravel().tolist()
        vals = dict(zip(syms, w.ravel().tolist()))
        got = np.array([complex(sympy.N(e.subs(vals))) for e in r.evidence["eigenvalues"]])
        assert np.allclose(got, lam[0, 0].ravel())


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate"])
def test_non_circular_padding_is_not_diagonalised(mode):
    spec = ca.ConvSpec((1, 6), 1, 3, padding=1, padding_mode=mode)
    r = check("convolution_theorem", spec)
    assert not r.holds
    ce = r.counterexample
    mv = conv_matrix(spec, ce.inputs["weight"]) @ ce.inputs["x (Fourier vector)"].ravel()
    v = ce.inputs["x (Fourier vector)"].ravel()
    lam = np.vdot(v, mv) / np.vdot(v, v)
    assert not np.allclose(mv, lam * v)
    assert np.allclose(mv, ce.lhs)


def test_large_circular_numeric_route():
    spec = ca.ConvSpec((3, 64, 64), 4, 3, padding=1, padding_mode="circular", bias=False)
    r = check("convolution_theorem", spec)
    assert r.holds and "eigenvalues" not in r.evidence
    assert r.evidence["max |M x − F⁻¹(λ·F x)| on random x"] < 1e-9


@settings(max_examples=30)
@given(
    st.sampled_from([1, 2, 3]),
    st.integers(1, 3),
    st.sampled_from(["zeros", "circular", "reflect", "replicate"]),
    st.booleans(),
    st.integers(0, 2**31),
)
def test_rank_one_kernels_separate(nd, k, mode, flip, seed):
    rng = np.random.default_rng(seed)
    spec = ca.ConvSpec((1,) + (5,) * nd, 1, k, padding=k // 2, padding_mode=mode, flip=flip)
    factors = [rng.integers(1, 4, k).astype(float) for _ in range(nd)]
    w = factors[0]
    for f in factors[1:]:
        w = np.multiply.outer(w, f)
    w = w.reshape(spec.weight_shape)
    r = check("separability", spec, weight=w)
    assert r.holds
    # independent: torch, one axis at a time with the factors found
    x = rng.standard_normal(spec.input_shape)
    y = x
    for axis, f in enumerate(r.evidence["factors"]):
        ks = [1] * nd
        ks[axis] = k
        pad = [(0, 0)] * nd
        pad[axis] = spec.padding[axis]
        step = ca.ConvSpec(y.shape, 1, tuple(ks), padding=tuple(pad), padding_mode=mode, flip=flip)
        y = torch_conv(step, y, np.asarray(f, float).reshape(step.weight_shape)).numpy()
    assert np.allclose(y, torch_conv(spec, x, w).numpy())
    if nd >= 2 and k >= 2:
        r2 = check("separability", spec, weight=w + rng.standard_normal(w.shape))
        assert not r2.holds and r2.evidence["rank"] >= 2


def test_separability_symbolic_rank():
    a, b, c, d = sympy.symbols("a b c d")
    spec = ca.ConvSpec((1, 4, 4), 1, 2)
    assert check("separability", spec, weight=[[[[a * c, a * d], [b * c, b * d]]]]).holds
    assert not check("separability", spec, weight=[[[[a, b], [c, d]]]]).holds
    assert check("separability", spec).evidence["rank of a generic kernel"] == 2


@pytest.mark.parametrize("nd", [1, 2])
@pytest.mark.parametrize("circular", [False, True])
def test_all_size_proofs(nd, circular):
    assert commutativity_proof(nd, True, circular).holds
    assert not commutativity_proof(nd, False, circular).holds
    assert translation_proof(nd, False, circular).holds
    assert translation_proof(nd, True, circular).holds


def test_proof_uses_change_of_variable():
    r = check("commutativity", ndim=1)
    i, n = sympy.Symbol("i", integer=True), sympy.Symbol("n", integer=True)
    I, K = sympy.IndexedBase("I"), sympy.IndexedBase("K")
    assert r.steps[1].statement.dummy_eq(sympy.Sum(I[i - n] * K[n], (n, -sympy.oo, sympy.oo)))
    assert "change of summation variable" in r.steps[1].justification
    assert (
        check("translation_equivariance", ndim=2, circular=True).method == "index proof (all sizes)"
    )
