"""Derivations: every printed equation parses back to what the library computed, and the
numbers they print agree with an independent oracle (torch, float64)."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import replace

import numpy as np
import pytest
import sympy
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from oracle import torch_conv, torch_grads, torch_jacobian
from strategies import conv_specs

import convalgebra as ca
from convalgebra.derivations import Derivation, Equation, Expr, Step, combine
from convalgebra.derivations.printing import linear, sum_of_products, tex, tex_to_text, text
from convalgebra.derivations.verify import RoundTripError, latex_parser_available, verify

KINDS = ("output_size", "matrix", "forward", "backward")
FAST = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
SLOW = settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
SMALL = conv_specs(transposed=None, max_size=5, max_channels=2)


def _derive(what: str, spec: ca.ConvSpec) -> Derivation:
    options = {"max_outputs": 6} if what in ("forward", "backward") else {}
    if what == "backward":
        options["check_general"] = False  # seconds per layer; tested once below
    return ca.derive(what, spec, **options)


# ------------------------------------------------------------------- round trips
@FAST
@given(SMALL, st.sampled_from(KINDS))
def test_every_equation_round_trips_as_text(spec, what):
    d = _derive(what, spec)
    assert verify(d, latex=False) > 0


@pytest.mark.skipif(
    not latex_parser_available(), reason="sympy's LaTeX parser needs antlr4-python3-runtime 4.11"
)
@SLOW
@given(SMALL, st.sampled_from(KINDS))
def test_every_equation_round_trips_as_latex(spec, what):
    assert verify(_derive(what, spec), latex=True) > 0


def _tamper(d: Derivation, field: str, old: str, new: str) -> Derivation:
    """A copy of ``d`` whose first ``field`` ("tex" or "text") containing ``old`` has it replaced."""
    done = []

    def fix_expr(e):
        if not done and isinstance(e, Expr) and e.value is not None and old in getattr(e, field):
            done.append(e)
            return replace(e, **{field: getattr(e, field).replace(old, new, 1)})
        return e

    def fix_step(s):
        math = tuple(
            replace(m, sides=tuple(fix_expr(x) for x in m.sides)) if isinstance(m, Equation) else m
            for m in s.math
        )
        return replace(s, math=math, substeps=tuple(fix_step(t) for t in s.substeps))

    out = replace(d, steps=tuple(fix_step(s) for s in d.steps))
    assert done, f"{old!r} not found"
    return out


def test_a_misprinted_term_is_caught():
    """The slides' typo (w4 a4 in z1 instead of w4 a6) cannot be printed."""
    d = ca.derive("forward", ca.ConvSpec((1, 5, 5), 1, 3, stride=2, bias=False))
    verify(d, latex=False)
    with pytest.raises(RoundTripError, match="w4"):
        verify(_tamper(d, "text", "w4*a6", "w4*a4"), latex=False)
    if latex_parser_available():
        with pytest.raises(RoundTripError, match="LaTeX"):
            verify(_tamper(d, "tex", "w_{4} a_{6}", "w_{4} a_{4}"), latex=True)


def test_an_unequal_chain_is_caught():
    d = ca.derive("output_size", ca.ConvSpec((1, 7), 1, 3, stride=3))
    bad = Derivation(
        "bad",
        (
            Step(
                "x",
                (
                    Equation(
                        (
                            Expr("O", "O"),
                            Expr("2", "2", sympy.Integer(2)),
                            Expr("3", "3", sympy.Integer(3)),
                        )
                    ),
                ),
            ),
        ),
    )
    verify(d, latex=False)
    with pytest.raises(RoundTripError, match="2 != 3"):
        verify(bad, latex=False)


# ----------------------------------------------------------------------- oracles
@FAST
@given(conv_specs(ndims=(1, 2), transposed=False, max_size=4, max_channels=2), st.data())
def test_forward_numbers_match_torch(spec, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    w = rng.integers(-3, 4, size=spec.weight_shape)
    x = rng.integers(-3, 4, size=spec.input_shape)
    d = ca.derive("forward", spec, weight=w, x=x, max_outputs=10**6)
    grids = [e.sides[1].value for e in d.equations() if re.fullmatch(r"Z(_\d+)?", e.sides[0].text)]
    expected = torch_conv(spec, x.astype(float), w.astype(float))
    shown = np.array([g.tolist() for g in grids], dtype=float)
    np.testing.assert_array_equal(shown.ravel(), expected.ravel())
    verify(d, latex=False)


@FAST
@given(SMALL)
def test_matrix_entries_match_torch_jacobian(spec):
    assume(not spec.transposed or all(b == a for b, a in spec.padding))  # what torch has
    rng = np.random.default_rng(0)
    w = rng.integers(1, 9, size=spec.weight_shape)
    d = ca.derive("matrix", spec, weight=w, max_rows=10**4, max_cols=10**4)
    (grid,) = [e.sides[1] for e in d.equations() if e.sides[0].text == "M"][:1]
    shown = np.array(grid.value.tolist(), dtype=float)
    np.testing.assert_array_equal(shown, torch_jacobian(spec, w.astype(float)))


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(conv_specs(ndims=(1, 2), transposed=None, max_size=4, max_channels=2), st.data())
def test_backward_equations_match_torch_autograd(spec, data):
    assume(not spec.transposed or all(b == a for b, a in spec.padding))  # what torch has
    d = ca.derive("backward", spec, max_outputs=10**6, max_terms=10**6, check_general=False)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    bw = d.result
    values = {}
    for array in (bw.weight, bw.input, bw.grad_output, bw.bias):
        values.update(
            {s: int(v) for s, v in zip(array.ravel(), rng.integers(-3, 4, size=array.size))}
        )
    w = np.array([values[s] for s in bw.weight.ravel()], float).reshape(spec.weight_shape)
    x = np.array([values[s] for s in bw.input.ravel()], float).reshape(spec.input_shape)
    g = np.array([values[s] for s in bw.grad_output.ravel()], float).reshape(spec.output_shape)
    b = (
        np.array([values[s] for s in bw.bias.ravel()], float)
        if spec.bias
        else np.zeros(spec.out_channels)
    )
    gx, gw, _ = torch_grads(spec, x, w, b, g)
    shown = {
        e.sides[0].value.name: e.sides[1].value
        for e in d.equations()
        if e.sides[0].value is not None and len(e.sides) == 2
    }
    for symbol, expected in [
        *zip(bw.weight.ravel(), gw.ravel()),
        *zip(bw.input.ravel(), gx.ravel()),
    ]:
        assert float(sympy.sympify(shown["dL/d" + symbol.name]).xreplace(values)) == pytest.approx(
            expected
        )


def test_seed_17_prints_a6_not_a4():
    d = ca.derive("backward", ca.ConvSpec((1, 5, 5), 1, 3, stride=2, bias=False))
    assert "agree with the instantiated equations" in d.to_text()
    lines = {
        line.split(" = ")[0].strip(): line.split(" = ", 1)[1]
        for line in d.to_text().splitlines()
        if re.match(r"\s+(z\d|dL/d)", line)
    }
    assert lines["z1"] == "w1*a1 + w2*a2 + w3*a3 + w4*a6 + w5*a7 + w6*a8 + w7*a11 + w8*a12 + w9*a13"
    assert lines["dL/dw1"] == "a1*dL/dz1 + a3*dL/dz2 + a11*dL/dz3 + a13*dL/dz4"
    assert lines["dL/dw9"] == "a13*dL/dz1 + a15*dL/dz2 + a23*dL/dz3 + a25*dL/dz4"
    assert lines["dL/da13"] == "w9*dL/dz1 + w7*dL/dz2 + w3*dL/dz3 + w1*dL/dz4"


@pytest.mark.parametrize(
    "spec, expected",
    [
        (ca.ConvSpec((1, 7), 1, 3), (1, 5)),
        (ca.ConvSpec((1, 7), 1, 3, stride=3), (1, 2)),
        (ca.ConvSpec((3, 32, 32), 10, 5, padding=2), (10, 32, 32)),
        (ca.ConvSpec((1, 5), 1, 3, padding="full"), (1, 7)),
        (ca.ConvSpec((1, 3), 1, 3, stride=2, transposed=True, output_padding=1), (1, 8)),
    ],
    ids=["valid", "not-tiling", "cs231n", "full", "transposed"],
)
def test_output_size_result_and_final_number(spec, expected):
    d = ca.derive("output_size", spec)
    assert d.result == expected == spec.output_shape
    finals = [e.sides[-1].value for e in d.equations() if e.sides[0].text.startswith("O_")]
    assert tuple(finals) == expected[1:]


def test_not_tiling_names_the_unread_input():
    text = ca.derive("output_size", ca.ConvSpec((1, 7), 1, 3, stride=3)).to_text()
    assert "7/3 ≈ 2.33" in text and "never read by any output (1-based): 7." in text


# ---------------------------------------------------------------- bad input, size
def test_huge_matrix_is_truncated_with_a_stated_rule():
    spec = ca.ConvSpec((1, 1000, 1000), 1, 3, padding=1)  # a 10^6 x 10^6 matrix
    d = ca.derive("matrix", spec, max_rows=8, max_cols=8)
    md = d.to_markdown()
    assert len(md) < 20_000
    assert "first 7 and the last of its 1,000,000 rows" in md
    assert r"\vdots" in md and r"\cdots" in md and r"\ddots" in md
    verify(d, latex=False)


def test_long_sums_and_many_outputs_are_truncated():
    spec = ca.ConvSpec((8, 5, 5), 6, 3, bias=False)  # 72 products per output, 54 outputs
    d = ca.derive("forward", spec, max_outputs=5, max_terms=10)
    text = d.to_text()
    assert "Truncated: of the 54 outputs the first 4 and the last are shown" in text
    assert "sums of more than 10 products" in text and " + … + " in text
    verify(d, latex=False)


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda: ca.derive("bogus", ca.ConvSpec((1, 3), 1, 2)), ca.ConvAlgebraError),
        (lambda: ca.derive("matrix", None), ca.ConvAlgebraError),
        (lambda: ca.derive("matrix", "conv"), TypeError),
        (lambda: ca.derive(42), TypeError),
        (
            lambda: ca.derive("forward", ca.ConvSpec((1, 3), 1, 2), weight=[[[1, 2]]]),
            ca.ConvAlgebraError,
        ),
        (
            lambda: ca.derive(
                "forward", ca.ConvSpec((1, 3), 1, 2), weight=[[[1, 2, 3]]], x=[[1, 2, 3]]
            ),
            ca.ConvAlgebraError,
        ),
        (lambda: ca.derive("matrix", ca.ConvSpec((1, 3), 1, 2), max_rows=1), ca.ConvAlgebraError),
        (lambda: ca.derive("params", "lenet"), ca.ConvAlgebraError),
        (
            lambda: ca.derive("receptive_field", [ca.ConvSpec((1, 5), 1, 3)], axes=[3]),
            ca.ConvAlgebraError,
        ),
    ],
    ids=[
        "unknown-kind",
        "no-object",
        "not-a-spec",
        "not-a-kind",
        "weight-without-x",
        "bad-weight-shape",
        "tiny-limit",
        "params-of-a-string",
        "bad-axis",
    ],
)
def test_bad_input_raises_a_named_error(call, error):
    with pytest.raises(error):
        call()


# ---------------------------------------------------------------------- printing
def test_textbook_order_of_indices_and_limits():
    m, k, n_, o = sympy.symbols("m k N o")
    assert tex(m - k) == "m - k" and text(n_ - 1) == "N - 1" and text(k + o - 1) == "k + o - 1"
    assert linear([(2, "(j - 1)"), (1, "m")]).tex == "2(j - 1) + m"
    assert tex_to_text(r"\frac{\partial L}{\partial z_{1}}") == "(∂L)/(∂z1)"


def test_sum_of_products_keeps_the_given_order():
    w1, w2, a1, a2 = sympy.symbols("w1 w2 a1 a2")
    e = sum_of_products([(w2, a2), (w1, a1)])
    assert e.tex == "w_{2} a_{2} + w_{1} a_{1}" and e.value == w1 * a1 + w2 * a2


def test_renderings_and_notebook_hooks():
    d = ca.derive("matrix", ca.ConvSpec((1, 4), 1, 2, bias=False))
    md, tx = d._repr_markdown_(), str(d)
    assert md.startswith("## The matrix of") and md.count("$$") % 2 == 0
    assert d._repr_latex_() == d.to_latex() and d.to_latex().startswith(r"\section*{")
    doc = d.to_latex(standalone=True)
    assert doc.startswith(r"\documentclass") and doc.rstrip().endswith(r"\end{document}")
    assert "[w1 w2  0  0]" in tx


def test_combine_nests_parts_as_steps():
    parts = [ca.derive("output_size", ca.ConvSpec((1, n), 1, 3)) for n in (5, 6)]
    d = combine("both", parts)
    assert [s.rule for s in d.steps] == ["part", "part"] and len(list(d.equations())) == 2


def test_params_and_receptive_field_of_lenet():
    from convalgebra.network.layers import AvgPool, Conv, Flatten, Linear

    g = ca.LayerGraph.sequential(
        (1, 28, 28),
        [
            Conv(6, 5, padding=2),
            AvgPool(2, 2),
            Conv(16, 5),
            AvgPool(2, 2),
            Flatten(),
            Linear(120),
            Linear(84),
            Linear(10),
        ],
    )
    d = ca.derive("params", g)
    assert d.result == (61_706, ca.param_count(g) and g.macs())
    assert "156 + 2,416 + 48,120 + 10,164 + 850 = 61,706" in d.to_text()
    rf = ca.derive("receptive_field", g, axes=[0])
    assert rf.result[:4] == [5, 6, 14, 16]
    verify(d, latex=False), verify(rf, latex=False)


def test_check_results_derive_themselves():
    r = ca.check("commutativity", ca.ConvSpec((1, 3), 1, 2))
    d = ca.derive(r)
    assert d.title == "commutativity: FAILS" and ca.derive("check", r).title == d.title
    assert any(s.rule == "counterexample" for s in d.walk())
    verify(d, latex=False)


# ---------------------------------------------------------------------- LaTeX
@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
def test_standalone_documents_compile(tmp_path):
    specs = [
        ca.ConvSpec((2, 5, 5), 2, 3, stride=2, padding=1, groups=2),
        ca.ConvSpec((1, 4, 4), 1, 3, padding=1, padding_mode="circular", flip=True),
        ca.ConvSpec((1, 3), 1, 3, stride=2, transposed=True),
    ]
    docs = [ca.derive(what, s).to_latex(standalone=True) for s in specs for what in KINDS]
    for i, doc in enumerate(docs):
        path = tmp_path / f"d{i}.tex"
        path.write_text(doc, encoding="utf-8")
        run = subprocess.run(
            ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", path.name],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stdout[-2000:]
        assert (tmp_path / f"d{i}.pdf").stat().st_size > 1000
