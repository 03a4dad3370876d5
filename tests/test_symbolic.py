"""Symbolic matrices: the same triples as the numeric path, checked on concrete numbers."""

import numpy as np
import sympy
from hypothesis import given
from hypothesis import strategies as st
from strategies import conv_specs

import convalgebra as ca
from convalgebra.symbolic import input_symbols, symbolic_output, weight_symbols


@given(conv_specs(ndims=(1, 2), transposed=None, max_size=5, max_channels=2), st.integers(0, 2**31))
def test_symbolic_matrix_substituted_equals_numeric_matrix(spec, seed):
    rng = np.random.default_rng(seed)
    w = rng.integers(-4, 5, spec.weight_shape)
    symbols = weight_symbols(spec).ravel()
    m = ca.symbolic_matrix(spec).xreplace(
        dict(zip(symbols, map(sympy.Integer, w.ravel().tolist())))
    )
    numeric = ca.conv_matrix(spec, w).toarray()
    assert np.array_equal(np.array(m.tolist(), dtype=np.int64), numeric)


@given(conv_specs(ndims=(1, 2), transposed=None, max_size=5, max_channels=2), st.integers(0, 2**31))
def test_symbolic_output_is_the_matrix_times_the_input(spec, seed):
    rng = np.random.default_rng(seed)
    w = rng.integers(-4, 5, spec.weight_shape)
    x = rng.integers(-4, 5, spec.input_shape)
    subs = dict(zip(weight_symbols(spec).ravel(), map(sympy.Integer, w.ravel().tolist())))
    subs.update(zip(input_symbols(spec).ravel(), map(sympy.Integer, x.ravel().tolist())))
    out = np.array(
        [sympy.sympify(e).xreplace(subs) for e in symbolic_output(spec).ravel()], dtype=np.int64
    )
    assert np.array_equal(out, ca.conv_matrix(spec, w) @ x.ravel())


def test_toeplitz_matrix_of_a_1d_convolution_with_symbolic_kernel():
    # seed example 19: true convolution of a length-5 signal with a 3-tap kernel (full)
    spec = ca.ConvSpec((1, 5), 1, 3, padding="full", flip=True)
    w1, w2, w3 = sympy.symbols("w1 w2 w3")
    m = ca.symbolic_matrix(spec)
    assert m.shape == (7, 5)
    assert m[:3, :3] == sympy.Matrix([[w1, 0, 0], [w2, w1, 0], [w3, w2, w1]])
    assert ca.is_toeplitz(ca.conv_matrix(spec, [[[1, 2, 3]]]))


def test_doubly_block_circulant_matrix_with_symbolic_kernel():
    spec = ca.ConvSpec((1, 3, 3), 1, 3, padding=1, padding_mode="circular")
    m = ca.symbolic_matrix(spec)
    w = sympy.symbols("w1:10")
    # row 0 is output (0, 0): taps (-1,-1)..(1,1) wrap to rows 2, 0, 1 and columns 2, 0, 1
    assert list(m.row(0)) == [w[4], w[5], w[3], w[7], w[8], w[6], w[1], w[2], w[0]]
    blocks = [m[3 * i : 3 * i + 3, 3 * j : 3 * j + 3] for i in range(3) for j in range(3)]
    assert blocks[0] == blocks[4] == blocks[8]  # block circulant: C0 on the diagonal
    assert blocks[1] == blocks[5] == blocks[6]  # C1 one block to the right, wrapping
