"""Seed example 17: back-propagation through a strided convolution, symbol for symbol."""

import numpy as np
import pytest
import sympy

import convalgebra as ca
from convalgebra.symbolic.backward import grad_symbol

SPEC = ca.ConvSpec((1, 5, 5), 1, 3, stride=2, bias=False)
a = {k: sympy.Symbol(f"a{k}") for k in range(1, 26)}
w = {k: sympy.Symbol(f"w{k}") for k in range(1, 10)}
dz = {k: grad_symbol(f"z{k}") for k in range(1, 5)}


def _sum(pairs):
    return sympy.Add(*(x * y for x, y in pairs))


# z_o = sum_t w_t a_(top-left of patch o + offset of tap t), typed out from the example
PATCH = {
    1: [1, 2, 3, 6, 7, 8, 11, 12, 13],
    2: [3, 4, 5, 8, 9, 10, 13, 14, 15],
    3: [11, 12, 13, 16, 17, 18, 21, 22, 23],
    4: [13, 14, 15, 18, 19, 20, 23, 24, 25],
}

# dL/dw_t as printed in the example (a_i of each output's patch times dL/dz_o)
WEIGHT_GRADIENT = {
    1: [1, 3, 11, 13],
    2: [2, 4, 12, 14],
    3: [3, 5, 13, 15],
    4: [6, 8, 16, 18],
    5: [7, 9, 17, 19],
    6: [8, 10, 18, 20],
    7: [11, 13, 21, 23],
    8: [12, 14, 22, 24],
    9: [13, 15, 23, 25],
}


@pytest.fixture(scope="module")
def backward():
    return ca.symbolic_backward(SPEC)


@pytest.mark.parametrize("o", [1, 2, 3, 4], ids=lambda o: f"z{o}")
def test_forward_equations(backward, o):
    eq = backward[f"z{o}"]
    assert eq.lhs == sympy.Symbol(f"z{o}")
    assert eq.rhs == _sum((w[t], a[i]) for t, i in zip(range(1, 10), PATCH[o]))
    assert backward.factors(f"z{o}") == tuple((w[t], a[i]) for t, i in zip(range(1, 10), PATCH[o]))


def test_z1_reads_a6_not_the_slides_a4(backward):
    rhs = backward["z1"].rhs
    assert rhs.coeff(w[4]) == a[6]
    assert a[4] not in rhs.free_symbols


@pytest.mark.parametrize("t", range(1, 10), ids=lambda t: f"dL/dw{t}")
def test_kernel_gradients_eq_9_11(backward, t):
    eq = backward[f"dL/dw{t}"]
    assert eq.lhs == grad_symbol(w[t])
    assert eq.rhs == _sum((a[i], dz[o]) for o, i in zip(range(1, 5), WEIGHT_GRADIENT[t]))


def test_input_gradient_of_a13_eq_9_13(backward):
    eq = backward["dL/da13"]
    assert eq.rhs == w[9] * dz[1] + w[7] * dz[2] + w[3] * dz[3] + w[1] * dz[4]
    assert backward.factors("dL/da13") == (
        (w[9], dz[1]),
        (w[7], dz[2]),
        (w[3], dz[3]),
        (w[1], dz[4]),
    )


def test_input_gradient_is_the_matrix_transpose(backward):
    m = ca.symbolic_matrix(SPEC)
    g = sympy.Matrix(list(dz.values()))
    expected = m.T * g
    got = [eq.rhs for eq in backward.input_gradient]
    assert [sympy.expand(x - y) for x, y in zip(got, expected)] == [0] * 25


def test_latex_of_the_book_form(backward):
    assert sympy.latex(backward["dL/dw1"]) == (
        r"\frac{\partial L}{\partial w_{1}} = \frac{\partial L}{\partial z_{1}} a_{1} + "
        r"\frac{\partial L}{\partial z_{2}} a_{3} + \frac{\partial L}{\partial z_{3}} a_{11} + "
        r"\frac{\partial L}{\partial z_{4}} a_{13}"
    )


def test_general_formulas_agree(backward):
    assert backward.check_general()


def test_numbers_match_the_numeric_gradients(backward):
    rng = np.random.default_rng(17)
    x, weight, g = (
        rng.integers(-5, 6, (1, 5, 5)),
        rng.integers(-5, 6, (1, 1, 3, 3)),
        rng.integers(-5, 6, (1, 2, 2)),
    )
    values = {
        **dict(zip(a.values(), x.ravel().tolist())),
        **dict(zip(w.values(), weight.ravel().tolist())),
        **dict(zip(dz.values(), g.ravel().tolist())),
    }
    dw = [int(eq.rhs.xreplace(values)) for eq in backward.weight_gradient]
    assert dw == ca.weight_gradient(SPEC, x, g).ravel().tolist()
    da = [int(eq.rhs.xreplace(values)) for eq in backward.input_gradient]
    assert da == ca.input_gradient(SPEC, weight, g).ravel().tolist()
