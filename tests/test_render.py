"""The one document model and renderer: a check's own renderings equal its derivation's, the
render package imports neither identities nor derive, and the old names still import."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from strategies import conv_specs

import convalgebra as ca
from convalgebra.render import DataTable, Document, Equation, Expr, Step


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    conv_specs(ndims=(1, 2), max_size=5, max_channels=2),
    st.sampled_from(["translation_equivariance", "commutativity", "adjoint", "flip_equivariance"]),
)
# a shift that is not a multiple of the stride, matched by a translate on degenerate sizes
@example(ca.ConvSpec((1, 2), 1, 1, stride=2, padding=((0, 1),)), "translation_equivariance")
def test_check_result_and_its_derivation_print_the_same_text(spec, law):
    try:
        result = (
            ca.check(law, spec)
            if law != "commutativity"
            else ca.check(law, ca.ConvSpec((1, 5), 1, 3, flip=spec.flip))
        )
    except ca.ConvAlgebraError:
        return  # a law that does not apply to this spec says so
    d = ca.derive(result)
    assert d.to_latex() == result.to_latex()
    assert d.to_markdown() == result.to_markdown()
    assert d.to_text() == result.to_text()
    assert d.verify() > 0


def test_render_imports_neither_identities_nor_derive():
    code = (
        "import sys, convalgebra.render; "
        "print(sorted(m for m in sys.modules if m.startswith(('convalgebra.identities', 'convalgebra.derive'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_verify_does_not_import_the_derivation_model():
    import importlib

    verify = importlib.import_module("convalgebra.derivations.verify")
    assert "Derivation" not in vars(verify)


def test_public_names_still_import_from_derivations():
    from convalgebra.derivations import Derivation, Table
    from convalgebra.derivations import Step as DeriveStep
    from convalgebra.derivations.printing import number
    from convalgebra.derivations.render import PREAMBLE
    from convalgebra.identities import Step as ProofStep

    assert (
        DeriveStep is Step is ProofStep and Table is DataTable and issubclass(Derivation, Document)
    )
    assert number(1200).tex == "1{,}200" and PREAMBLE.startswith(r"\documentclass")


def test_a_proof_step_leads_with_its_reason_as_a_sentence():
    import sympy

    x = sympy.Symbol("x")
    doc = Document("t", (Step(sympy.Eq(x, 2, evaluate=False), "by definition"),))
    assert doc.to_text().splitlines()[2] == "1. By definition:"
    assert "x = 2" in doc.to_text()


def test_latex_notation_symbols_print_as_written():
    """A symbol named by LaTeX notation prints verbatim (it used to print as (M v_{j) r})."""
    import sympy

    doc = Document(
        "t",
        (Step(sympy.Eq(sympy.Symbol("(M v_j)_r"), sympy.Symbol(r"\omega^{j r}")), "eigenvector"),),
    )
    assert r"(M v_j)_r &= \omega^{j r}" in doc.to_latex()
    assert "(M v_j)_r = ω^j r" in doc.to_text()


@pytest.mark.parametrize(
    "text, md", [("output_padding=1", "output_padding=1"), ("_x_", r"\_x\_"), ("a|b", r"a\|b")]
)
def test_markdown_escapes_only_what_markdown_would_read(text, md):
    doc = Document("t", (Step(text),))
    assert f"**Step 1.** {md}" in doc.to_markdown()


def test_pairs_table_reads_as_name_value_lines():
    doc = Document(
        "t", (Step("Facts:", (DataTable(("name", "value"), (("a", "1"),), layout="pairs"),)),)
    )
    assert "a: 1" in doc.to_text() and "- a: 1" in doc.to_markdown()
    assert isinstance(Equation((Expr("x", "x"),)).sides[0], Expr)
