"""The dispatcher, errors and the rendering of CheckResult."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import conv_specs

import convalgebra as ca
from convalgebra.identities import LAWS, CheckResult, Step, check


def test_public_names():
    assert ca.check is check and ca.CheckResult is CheckResult
    assert ca.equivariant_kernels(ca.ConvSpec((1, 5, 5), 1, 3)).dimension == 3
    for law in [
        "translation_equivariance",
        "rotation_equivariance",
        "flip_equivariance",
        "commutativity",
        "layer_commutativity",
        "composition",
        "adjoint",
        "convolution_theorem",
        "separability",
    ]:
        assert law in LAWS


def test_unknown_law_and_bad_options():
    spec = ca.ConvSpec((1, 5), 1, 3)
    with pytest.raises(ca.ConvAlgebraError, match="unknown law 'equivariance'"):
        check("equivariance", spec)
    with pytest.raises(ca.ConvAlgebraError, match="unexpected keyword argument 'shfit'"):
        check("translation_equivariance", spec, shfit=1)
    with pytest.raises(TypeError, match="law must be a string"):
        check(3, spec)
    with pytest.raises(TypeError, match="ConvSpec"):
        check("translation_equivariance", "spec")
    with pytest.raises(ca.ConvAlgebraError, match="weight must have shape"):
        check("translation_equivariance", spec, weight=np.ones(3))
    with pytest.raises(ca.ConvAlgebraError, match="boundary"):
        check("translation_equivariance", spec, boundary="mirror")


@pytest.mark.parametrize(
    "spec, law, opts",
    [
        (ca.ConvSpec((1, 6, 6), 2, 3, padding=1), "translation_equivariance", {"shift": 1}),
        (ca.ConvSpec((1, 5, 5), 1, 3, padding=1), "rotation_equivariance", {}),
        (ca.ConvSpec((1, 4), 1, 2), "commutativity", {}),
        (ca.ConvSpec((1, 4), 1, 3, padding=1, padding_mode="circular"), "convolution_theorem", {}),
    ],
    ids=["translation", "rotation", "commutativity", "dft"],
)
def test_renderings(spec, law, opts):
    r = check(law, spec, **opts)
    text, md, tex = r.to_text(), r.to_markdown(), r.to_latex()
    assert r.verdict in text and f"**{law}: {r.verdict}**" in md
    assert tex.startswith(r"\paragraph{" + law.replace("_", r"\_"))
    assert r._repr_markdown_() == md and r._repr_latex_() == tex
    assert bool(r) == r.holds
    assert r.steps and all(isinstance(s, Step) and s.latex and s.justification for s in r.steps)
    if not r.holds and r.counterexample is not None:
        assert "counterexample" in text.lower()


def test_step_latex_of_sentence_and_equation():
    import sympy

    assert Step("a sentence_with", "why").latex == r"\text{a sentence\_with}"
    assert Step(sympy.Eq(sympy.Symbol("x"), 2), "def").text == "x = 2    [def]"


def test_layer_pair_laws_reject_single_spec_misuse():
    with pytest.raises(ca.ConvAlgebraError, match="takes"):
        check("layer_commutativity", ca.ConvSpec((1, 4), 1, 1))
    with pytest.raises(ca.ConvAlgebraError, match="reads 1 channels but the first one gives 2"):
        check("composition", ca.ConvSpec((1, 6), 2, 3), ca.ConvSpec((1, 6), 1, 3))


@pytest.mark.parametrize(
    "law, spec",
    [
        ("one_by_one", ca.ConvSpec((2, 4, 4), 2, 3, stride=2)),
        (
            "convolution_theorem",
            ca.ConvSpec((2, 4), 2, 3, groups=2, padding=1, padding_mode="circular"),
        ),
        ("separability", ca.ConvSpec((2, 4, 4), 1, 3)),
    ],
)
def test_errors_describe_the_spec_not_its_repr(law, spec):
    with pytest.raises(ca.ConvAlgebraError) as info:
        check(law, spec)
    assert spec.describe() in str(info.value)
    assert "ConvSpec(" not in str(info.value) and "channel_table" not in str(info.value)
    with pytest.raises(TypeError, match=f"{law} needs a ConvSpec, got str"):
        check(law, "spec")


def _statements(result):
    from sympy.logic.boolalg import BooleanAtom

    for step in result.steps:
        assert not isinstance(step.statement, (bool, BooleanAtom))
        assert step.text and step.latex


def _second(spec, data):
    """A layer reading ``spec``'s output, or a same-space layer for commutativity."""
    try:
        k = tuple(data.draw(st.integers(1, 3)) for _ in range(spec.ndim))
        mode = data.draw(st.sampled_from(["zeros", "circular", "reflect", "replicate"]))
        pad = data.draw(st.integers(0, 1))
        return ca.ConvSpec(
            spec.output_shape, data.draw(st.integers(1, 2)), k, padding=pad, padding_mode=mode
        )
    except ca.ConvAlgebraError:
        return None


@settings(max_examples=40, deadline=None)
@given(conv_specs(ndims=(1, 2), transposed=None, max_size=5, max_channels=2), st.data())
def test_no_step_of_any_law_evaluates_to_a_boolean(spec, data):
    """Every law over random specs: a result or a ConvAlgebraError, never a Step TypeError."""
    n = spec.input_shape[1:]
    shift = tuple(data.draw(st.integers(-(m - 1), m - 1)) for m in n)
    single = {
        "translation_equivariance": {"shift": shift},
        "rotation_equivariance": {},
        "flip_equivariance": {},
        "transposition_equivariance": {},
        "scale_equivariance": {},
        "commutativity": {},
        "adjoint": {},
        "convolution_theorem": {},
        "separability": {},
        "one_by_one": {},
        "fully_connected": {},
    }
    for law, opts in single.items():
        try:
            result = check(law, spec, **opts)
        except ca.ConvAlgebraError:
            continue
        _statements(result)
    second = _second(spec, data)
    for law in ("composition", "layer_commutativity"):
        if second is None:
            break
        try:
            _statements(check(law, spec, second))
        except ca.ConvAlgebraError:
            pass
    for law in ("translation_equivariance", "commutativity"):
        _statements(check(law, ndim=spec.ndim, flip=spec.flip, circular=data.draw(st.booleans())))


def test_eq_helper_never_evaluates():
    import sympy

    from convalgebra.identities.common import eq, ne

    a = sympy.Symbol("a")
    assert isinstance(eq(a, a), sympy.Eq) and isinstance(ne(a, a), sympy.Ne)
    assert isinstance(eq(sympy.Integer(1), 2), sympy.Eq)
    with pytest.raises(TypeError, match="evaluated"):
        Step(sympy.Eq(a, a), "structurally decided")
