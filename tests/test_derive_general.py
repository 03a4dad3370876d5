"""General formulas of a derivation: instantiated with numbers they give torch's forward pass and
autograd gradients, over every option of a spec; every derivation that shows them verifies them."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from strategies import conv_specs

import convalgebra as ca
from convalgebra.derivations.general import (
    Factor,
    IndexFormula,
    layer_formulas,
    position,
    sample_positions,
)
from convalgebra.derivations.verify import RoundTripError, verify

torch = pytest.importorskip(
    "torch", reason="the [torch] extra is not installed: pip install '.[test]'"
)
from oracle import torch_conv, torch_grads  # noqa: E402

SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
ALL = conv_specs(transposed=None, max_size=5, max_channels=4, bias=None)


def _torch_ok(spec: ca.ConvSpec) -> bool:
    """Torch has the transposed layer only for symmetric zero padding."""
    return not spec.transposed or all(b == a for b, a in spec.padding)


def _numbers(spec: ca.ConvSpec, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "w": rng.integers(-3, 4, spec.weight_shape).astype(float),
        "a": rng.integers(-3, 4, spec.input_shape).astype(float),
        "g": rng.integers(-3, 4, spec.output_shape).astype(float),
    }


def _flip(spec: ca.ConvSpec, array: np.ndarray) -> np.ndarray:
    return array[(Ellipsis, *(slice(None, None, -1),) * spec.ndim)] if spec.flip else array


@SETTINGS
@given(ALL, st.integers(0, 2**16))
def test_general_formulas_instantiated_equal_torch_autograd(spec, seed):
    assume(_torch_ok(spec))
    f = layer_formulas(spec)
    v = _numbers(spec, seed)
    zero = np.zeros(spec.out_channels)
    layer = f.evaluate("layer", v).reshape(spec.output_shape)
    np.testing.assert_allclose(layer, torch_conv(spec, v["a"], v["w"], zero))
    gx, gw, _ = torch_grads(spec, v["a"], v["w"], zero, v["g"])
    np.testing.assert_allclose(f.evaluate("input", v), gx)
    np.testing.assert_allclose(
        _flip(spec, f.evaluate("kernel", v)), gw
    )  # K is w, flipped when flip
    if spec.transposed:
        return
    np.testing.assert_allclose(f.evaluate("forward", v), torch_conv(spec, v["a"], v["w"], zero))
    padded_shape = f.checks["padded"].shape
    flat = replace(
        spec, input_shape=padded_shape, padding=0, padding_mode="zeros", padding_word=None
    )
    padded = np.zeros(padded_shape)  # dL/dV does not depend on V: any V will do
    gv, _, _ = torch_grads(flat, padded, v["w"], zero, v["g"])
    np.testing.assert_allclose(f.evaluate("padded", v), gv)


@SETTINGS
@given(ALL)
def test_every_general_formula_matches_the_index_table(spec):
    f = layer_formulas(spec)
    for key, check in f.checks.items():  # every position up to 120, else corners and a sample
        assert f.check(key, limit=120) == min(120, np.prod(check.shape))


@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    conv_specs(transposed=None, max_size=4, max_channels=2, bias=None),
    st.sampled_from(["forward", "backward", "matrix"]),
)
def test_derivations_verify_their_general_formulas(spec, what):
    options = {"max_outputs": 4} if what != "matrix" else {}
    d = ca.derive(what, spec, **options)
    checked = [eq for eq in d.equations() if eq.check is not None]
    assert checked, "the layer's index formula is shown and checked"
    assert verify(d, latex=False) >= sum(eq.check() for eq in checked)


@pytest.mark.parametrize(
    "spec",
    [
        ca.tiled((1, 6, 6), 1, 3, 2, bias=False),
        ca.tiled((2, 7), 2, 3, 3),
        ca.locally_connected((1, 5), 1, 2),
    ],
    ids=["tiled-2d", "tiled-1d", "local"],
)
def test_tiled_layer_formula_matches_torch_per_tile(spec):
    f = layer_formulas(spec)
    assert f.check("layer", 10**6) == np.prod(
        spec.output_shape[1:] if spec.in_channels == spec.out_channels == 1 else spec.output_shape
    )
    v = _numbers(spec, 0)
    dense = ca.conv_matrix(spec, v["w"]).toarray() @ v["a"].ravel()
    np.testing.assert_allclose(f.evaluate("layer", v).ravel(), dense)


def _with_index(formula: IndexFormula, factor: int, axis: int, index) -> IndexFormula:
    factors = list(formula.factors)
    old = factors[factor]
    factors[factor] = Factor(
        old.tex,
        old.text,
        old.tensor,
        tuple(index if k == axis else i for k, i in enumerate(old.indices)),
    )
    return replace(formula, factors=tuple(factors), _cache={})


@pytest.mark.parametrize(
    "spec, key, factor, axis",
    [
        (
            ca.ConvSpec((1, 5, 5), 1, 3, stride=2),
            "forward",
            0,
            1,
        ),  # the book's formula without the stride
        (ca.ConvSpec((2, 5), 2, 3, padding=1), "layer", 1, 1),  # the padding offset dropped
        (ca.ConvSpec((2, 6), 2, 2, dilation=2, groups=2), "kernel", 1, 1),  # the dilation dropped
    ],
    ids=["stride", "padding", "dilation"],
)
def test_a_wrong_general_formula_is_rejected(spec, key, factor, axis):
    f = layer_formulas(spec)
    wrong = _with_index(f[key], factor, axis, position("j", "m", 1, 1))
    check = replace(f.checks[key], formula=wrong)
    from convalgebra.derivations.general import check_formula

    with pytest.raises(AssertionError):
        check_formula(check, sample_positions(check.shape, 10**6))


def test_verify_refuses_a_derivation_that_checks_nothing():
    from convalgebra.derivations import Derivation, Equation, Expr, Step

    d = Derivation(
        "notation only", (Step("A formula:", (Equation((Expr("x", "x"), Expr("y", "y"))),)),)
    )
    with pytest.raises(RoundTripError, match="nothing could be verified"):
        verify(d, latex=False)


def test_grouped_backward_prints_the_group_offset_and_the_padded_input():
    d = ca.derive(
        "backward", ca.ConvSpec((2, 4, 4), 2, 2, groups=2, padding=1, bias=False), max_outputs=4
    )
    text = d.to_text()
    assert "V[i, j + m - 1, k + n - 1]" in text  # depthwise: channel i reads channel i
    assert "dL/da[c, x, y] = h[c, x + 1, y + 1]" in text  # V is the input padded by 1
    assert "V is a padded by" in text


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    conv_specs(ndims=(1,), modes=("zeros", "circular"), max_size=7, max_channels=1),
    st.integers(1, 2),
)
def test_translation_index_equation_reads_the_input_the_table_reads(spec, multiple):
    """The printed x[...] index of the translation proof is the table's input position, padding included."""
    import sympy

    from convalgebra.connectivity import padded_positions

    delta = multiple * spec.stride[0]
    assume(not spec.transposed and delta < spec.input_shape[1])
    r = ca.check("translation_equivariance", spec, shift=delta)
    (step,) = [
        s
        for s in r.steps
        if not s.is_prose and s.statement.lhs.atoms(sympy.Indexed) and "x" in str(s.statement.lhs)
    ]
    o, k = sympy.symbols("o k", integer=True)
    (li,) = [e for e in step.statement.lhs.atoms(sympy.Indexed) if str(e.base) == "x"]
    table = padded_positions(spec, 0)  # 0-based coordinate read by (output, tap)
    for (out, tap), pos in np.ndenumerate(table):
        assert li.indices[0].doit().subs({o: out + 1, k: tap + 1}) == pos + 1 - delta
