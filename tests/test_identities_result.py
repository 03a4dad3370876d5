"""The dispatcher, errors and the rendering of CheckResult."""

from __future__ import annotations

import numpy as np
import pytest

import convalgebra as ca
from convalgebra.identities import LAWS, CheckResult, Step, check


def test_public_names():
    assert ca.check is check and ca.CheckResult is CheckResult
    assert ca.equivariant_kernels(ca.ConvSpec((1, 5, 5), 1, 3)).dimension == 3
    for law in ["translation_equivariance", "rotation_equivariance", "flip_equivariance",
                "commutativity", "layer_commutativity", "composition", "adjoint",
                "convolution_theorem", "separability"]:
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


@pytest.mark.parametrize("spec, law, opts", [
    (ca.ConvSpec((1, 6, 6), 2, 3, padding=1), "translation_equivariance", {"shift": 1}),
    (ca.ConvSpec((1, 5, 5), 1, 3, padding=1), "rotation_equivariance", {}),
    (ca.ConvSpec((1, 4), 1, 2), "commutativity", {}),
    (ca.ConvSpec((1, 4), 1, 3, padding=1, padding_mode="circular"), "convolution_theorem", {}),
], ids=["translation", "rotation", "commutativity", "dft"])
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
    with pytest.raises(ca.ConvAlgebraError, match="must read the first one's output"):
        check("composition", ca.ConvSpec((1, 6), 1, 3), ca.ConvSpec((1, 6), 1, 3))
