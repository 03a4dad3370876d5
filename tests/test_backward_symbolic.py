"""Symbolic backward equations: against the numeric (torch-checked) gradients, and the book's
general formulas (eq. 9.8, 9.11, 9.13) against the instantiated equations."""

from dataclasses import replace

import numpy as np
import pytest
import sympy
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from strategies import conv_specs

import convalgebra as ca
from convalgebra.symbolic.backward import (
    GradSymbol,
    check_general_formulas,
    general_formulas,
    grad_symbol,
    symbolic_backward,
)

small_specs = conv_specs(transposed=None, max_size=4, max_channels=2)


def _values(bw, seed):
    rng = np.random.default_rng(seed)
    arrays = {
        "x": rng.integers(-4, 5, bw.input.shape),
        "w": rng.integers(-4, 5, bw.weight.shape),
        "b": rng.integers(-4, 5, bw.bias.shape),
        "g": rng.integers(-4, 5, bw.grad_output.shape),
    }
    symbols = (bw.input, bw.weight, bw.bias, bw.grad_output)
    subs = {}
    for sym, arr in zip(symbols, arrays.values()):
        subs.update(zip(sym.ravel().tolist(), arr.ravel().tolist()))
    return arrays, subs


def _numbers(equations, subs):
    return np.array([int(sympy.sympify(eq.rhs).xreplace(subs)) for eq in equations])


@settings(max_examples=40)
@given(spec=small_specs, seed=st.integers(0, 2**31))
def test_equations_evaluate_to_the_numeric_gradients(spec, seed):
    bw = symbolic_backward(spec)
    arrays, subs = _values(bw, seed)
    x, w, b, g = arrays.values()
    forward = ca.conv_matrix(spec, w) @ x.ravel() + np.repeat(b, np.prod(spec.output_shape[1:]))
    assert np.array_equal(_numbers(bw.forward, subs), forward)
    assert np.array_equal(
        _numbers(bw.weight_gradient, subs), ca.weight_gradient(spec, x, g).ravel()
    )
    assert np.array_equal(_numbers(bw.input_gradient, subs), ca.input_gradient(spec, w, g).ravel())
    assert np.array_equal(_numbers(bw.bias_gradient, subs), ca.bias_gradient(spec, g))


@settings(max_examples=30)
@given(spec=conv_specs(transposed=None, max_size=3, max_channels=2))
def test_gradient_equations_are_the_chain_rule_of_the_forward_ones(spec):
    bw = symbolic_backward(spec)
    z = [eq.rhs for eq in bw.forward]
    g = bw.grad_output.ravel()
    assume(len(z) * (bw.weight.size + bw.input.size) <= 800)  # one sympy.diff per pair

    def chain(variable):  # sum over outputs of dz_o/dvariable * dL/dz_o, by sympy.diff
        return sympy.Add(*(sympy.diff(zo, variable) * go for zo, go in zip(z, g)))

    for variable, eq in zip(bw.weight.ravel(), bw.weight_gradient):
        assert sympy.expand(chain(variable) - eq.rhs) == 0
    for variable, eq in zip(bw.input.ravel(), bw.input_gradient):
        assert sympy.expand(chain(variable) - eq.rhs) == 0
    for variable, eq in zip(bw.bias.ravel(), bw.bias_gradient):
        assert sympy.expand(chain(variable) - eq.rhs) == 0


@settings(max_examples=25)
@given(spec=conv_specs(ndims=(1, 2), max_size=3, max_channels=2))
def test_general_formulas_hold_for_every_forward_variant(spec):
    padded = [n + b + a for n, (b, a) in zip(spec.input_shape[1:], spec.padding)]
    assume(np.prod(padded) * spec.in_channels <= 72)  # sympy expansion: keep each case small
    assert check_general_formulas(symbolic_backward(spec))


def test_general_formulas_hold_in_3d():
    spec = ca.ConvSpec(
        (1, 3, 3, 3),
        2,
        2,
        stride=(2, 1, 1),
        padding=((1, 0), 0, 0),
        padding_mode="replicate",
        flip=True,
    )
    assert check_general_formulas(symbolic_backward(spec))


def test_general_formulas_hold_for_a_channel_table():
    spec = ca.ConvSpec((2, 4, 4), 3, 2, stride=2, channel_table=((1, 0), (1, 1), (0, 1)))
    assert check_general_formulas(symbolic_backward(spec))


# A layer with distinct sizes everywhere, so that any index mix-up changes some equation.
MIXED = ca.ConvSpec((2, 5, 6), 3, (3, 2), stride=2, padding=((1, 0), (0, 1)))
S = sympy.Symbol("s", integer=True, positive=True)


def _swap(eq, old, new):
    return sympy.Eq(eq.lhs, eq.rhs.xreplace({old: new}), evaluate=False)


def _wrong(formulas, which):
    eq = getattr(formulas, which)
    if which == "forward":  # stride off by one
        return replace(formulas, forward=_swap(eq, S, S + 1))
    term, *limits = eq.rhs.args
    if which == "weight_gradient":  # G indexed by the kernel channel instead of the output one
        i, j = eq.lhs.indices[:2]
        G = sympy.IndexedBase("G")
        bad = term.xreplace({G[(i, *term.args[0].indices[1:])]: G[(j, *term.args[0].indices[1:])]})
        return replace(formulas, weight_gradient=sympy.Eq(eq.lhs, sympy.Sum(bad, *limits)))
    # input gradient: the book's K[q, i, m, p] with the tap order reversed
    K = sympy.IndexedBase("K")
    kernel = next(f for f in term.args if isinstance(f, sympy.Indexed) and f.base == K)
    q, i, m, p = kernel.indices
    bad = term.xreplace({kernel: K[q, i, p, m]})
    return replace(formulas, input_gradient=sympy.Eq(eq.lhs, sympy.Sum(bad, *limits)))


@pytest.mark.parametrize("which", ["forward", "weight_gradient", "input_gradient"])
def test_a_wrong_general_formula_is_detected(which):
    bw = symbolic_backward(MIXED)
    formulas = general_formulas(MIXED)
    assert check_general_formulas(bw, formulas)
    assert not check_general_formulas(bw, _wrong(formulas, which))


def test_general_formulas_are_the_books_in_2d():
    f = general_formulas(MIXED)
    assert str(f.forward.lhs) == "Z[i, j, k]"
    assert str(f.weight_gradient.lhs) == "g[i, j, k, l]"
    assert str(f.input_gradient.lhs) == "h[i, j, k]"
    assert "KroneckerDelta(j, m + s*(l - 1))" in str(f.input_gradient.rhs)
    sizes = {str(k): int(v) for k, v in f.sizes.items()}
    assert sizes == {
        "C_{in}": 2,
        "C_{out}": 3,
        "s": 2,
        "k_h": 3,
        "k_w": 2,
        "H_{out}": 2,
        "W_{out}": 3,
        "H_{pad}": 6,
        "W_{pad}": 7,
    }


def test_per_axis_strides_get_their_own_symbols():
    f = general_formulas(ca.ConvSpec((1, 6, 6), 1, 2, stride=(1, 2)))
    assert {"s_h", "s_w"} <= {str(x) for x in f.sizes}


# ------------------------------------------------------------------ symbols and errors
def test_grad_symbol_prints_and_renders():
    g = grad_symbol(sympy.Symbol("w_{1,2,1,1}"))
    assert isinstance(g, GradSymbol) and str(g) == "dL/dw_{1,2,1,1}"
    assert g.variable == sympy.Symbol("w_{1,2,1,1}")
    assert sympy.latex(g) == r"\frac{\partial L}{\partial w_{1,2,1,1}}"


def test_multichannel_symbols_use_indices():
    bw = symbolic_backward(ca.ConvSpec((2, 3), 2, 2))
    assert str(bw.weight_gradient[0].lhs) == "dL/dw_{1,1,1}"
    assert str(bw.input_gradient[0].lhs) == "dL/da_{1,1}"
    assert str(bw.bias_gradient[1]) == "Eq(dL/db2, dL/dz_{2,1} + dL/dz_{2,2})"


def test_unread_inputs_have_zero_gradient():
    bw = symbolic_backward(ca.ConvSpec((1, 7), 1, 3, stride=3))
    assert bw["dL/da7"].rhs == 0


def test_transposed_equations_follow_its_matrix():
    spec = ca.ConvSpec((1, 2), 1, 2, stride=2, transposed=True, bias=False)
    bw = symbolic_backward(spec)
    assert [str(eq) for eq in bw.forward] == [
        "Eq(z1, a1*w1)",
        "Eq(z2, a1*w2)",
        "Eq(z3, a2*w1)",
        "Eq(z4, a2*w2)",
    ]


@pytest.mark.parametrize(
    "spec",
    [ca.ConvSpec((1, 3), 1, 2, transposed=True), ca.ConvSpec((1, 6), 1, 2, tile=2)],
    ids=["transposed", "tiled"],
)
def test_general_formulas_outside_the_books_scope_raise(spec):
    with pytest.raises(ca.ConvAlgebraError, match="describe a forward convolution"):
        general_formulas(spec)


def test_unknown_equation_names_the_valid_ones():
    bw = symbolic_backward(ca.ConvSpec((1, 3), 1, 2))
    with pytest.raises(KeyError, match="no equation for dL/dq1"):
        bw["dL/dq1"]


def test_large_layers_are_refused():
    with pytest.raises(ca.ConvAlgebraError, match="max_terms=10"):
        symbolic_backward(ca.ConvSpec((1, 8), 1, 3), max_terms=10)


def test_evaluate_checks_its_arguments():
    f = general_formulas(ca.ConvSpec((1, 5), 1, 3))
    with pytest.raises(ca.ConvAlgebraError, match="index must have 2 entries"):
        f.evaluate("forward", (1,))
    with pytest.raises(ca.ConvAlgebraError, match="which must be"):
        f.summed("backward")


def test_not_a_spec_is_a_type_error():
    with pytest.raises(TypeError, match="spec must be a ConvSpec"):
        symbolic_backward((1, 5))
