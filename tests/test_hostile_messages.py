"""Errors in the family under hostile values (a raising repr, a lying int, tensors that require
grad, huge and unparsable text), and printed names that cannot forge output.

Each reproducer of the hostile-input review is pinned (parametrized or ``@example``); the
hypothesis families around them run derandomized under the "ci" profile, every call under the
time cap of :mod:`hostile`; the outcomes are tallied there (printed with ``-s``).
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from hostile import (
    TALLY,
    BadRepr,
    LyingInt,
    capped,
    fuzz_settings,
    one_error_line,
    outcome,
    run_cli,
)
from hypothesis import example, given
from hypothesis import strategies as st

pytest.importorskip("torch", reason="the [torch] extra is not installed: pip install '.[test]'")

import convalgebra as ca  # noqa: E402
from convalgebra.errors import printable, shown  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    print("\nhostile tally (all suites so far):", dict(sorted(TALLY.items())))


# -------------------------------------------------------------- errors outside the family
SPEC = ca.ConvSpec((1, 5), 1, 3)


def _tensor(requires_grad=True, dtype=None):
    import torch

    return (
        torch.arange(1.0, 4.0, dtype=dtype or torch.float32)
        .reshape(1, 1, 3)
        .requires_grad_(requires_grad)
    )


def test_triples_rows_that_are_not_a_slice():
    for rows in (3, "0:2", [0, 1], slice("a"), slice(0, 4, 0)):
        kind, exc = outcome(lambda rows=rows: ca.triples(SPEC, rows=rows))
        assert kind == "clear" and "rows" in str(exc)


def test_a_tensor_that_requires_grad_is_data():
    w = np.arange(1.0, 4.0).reshape(1, 1, 3)
    assert ca.symbolic_matrix(SPEC, _tensor()) == ca.symbolic_matrix(SPEC, w)
    for law in ("translation_equivariance", "flip_equivariance"):
        got = ca.check(law, SPEC, weight=_tensor())
        assert got.holds == ca.check(law, SPEC, weight=w).holds
    np.testing.assert_array_equal(
        ca.conv_matrix(SPEC, _tensor()).toarray(), ca.conv_matrix(SPEC, w).toarray()
    )


def test_a_bfloat16_tensor_is_widened_exactly():
    import torch

    got = ca.conv_matrix(SPEC, _tensor(dtype=torch.bfloat16)).toarray()
    np.testing.assert_array_equal(got, ca.conv_matrix(SPEC, _tensor(False).numpy()).toarray())


@pytest.mark.parametrize("value", ["3", 3.5, True, None, [3], "tensor"])
def test_derive_display_limits_name_the_argument(value):
    value = _tensor()[0, 0, 1] if value == "tensor" else value
    kind, exc = outcome(lambda: ca.derive("matrix", SPEC, max_rows=value))
    assert kind == "clear" and "max_rows" in str(exc)


def test_an_integer_tensor_is_a_display_limit():
    import torch

    text = ca.derive("matrix", SPEC, max_rows=torch.tensor(2)).to_text()
    assert text == ca.derive("matrix", SPEC, max_rows=2).to_text()


@pytest.mark.parametrize(
    "text",
    ["1+", "(" * 1000, "(" * 100_000 + "1" + ")" * 100_000, "9**9**9**9", "2**10**8",
     "9**-9**9", "Float(1, 10**7)", "9" * 5000, "floor(9**99999)", "Max(9**9**9, 1)"],
    ids=["syntax", "open", "deep", "tower", "2**10**8", "negative", "precision", "digits",
         "floor", "max"],
)  # fmt: skip
def test_parse_arithmetic_refuses_in_milliseconds(text):
    from convalgebra.symbolic.exprs import parse_arithmetic

    start = time.monotonic()
    kind, exc = outcome(lambda: parse_arithmetic(text))
    assert kind == "clear" and isinstance(exc, ca.ConvAlgebraError)
    assert time.monotonic() - start < 2.0


ARITHMETIC = st.recursive(
    st.one_of(st.integers(-12, 12).map(str), st.sampled_from(["x", "n", "oo", "I", "1.5"])),
    lambda inner: st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "**"]), inner).map(
        lambda t: f"({t[0]}){t[1]}({t[2]})"
    ),
    max_leaves=8,
)


@fuzz_settings(1)
@given(ARITHMETIC)
@example("(9)**((9)**((9)**(9)))")
@example("((12)**(12))**((12)**(12))")
def test_parse_arithmetic_answers_or_refuses_within_the_cap(text):
    """Any arithmetic: the exact sympy value (compared with sympy's own evaluation, on a
    bounded case), or a clear refusal, always within the time cap."""
    import sympy
    from sympy.parsing.sympy_parser import parse_expr

    from convalgebra.symbolic.exprs import parse_arithmetic

    kind, value = outcome(lambda: parse_arithmetic(text))
    if kind == "accepted":
        names = {"oo": sympy.oo, "I": sympy.I, "x": sympy.Symbol("x"), "n": sympy.Symbol("n")}
        with capped():
            expected = parse_expr(text, local_dict=names)
        if value != expected:
            TALLY["wrong value"] += 1
        assert value == expected or (value is sympy.nan and expected is sympy.nan)


def test_lying_int_subclasses_are_read_by_their_value():
    spec = ca.ConvSpec((LyingInt(5), 5), LyingInt(2), LyingInt(3), padding=LyingInt(1))
    assert spec.input_shape == (5, 5) and spec.out_channels == 2 and spec.kernel_size == (3,)
    assert spec.padding == ((1, 1),)
    assert all(type(v) is int for v in (*spec.input_shape, spec.out_channels))


def test_a_raising_repr_does_not_break_the_error_path():
    graph = ca.zoo.get("lenet5")
    from convalgebra.figures import conv_tikz
    from convalgebra.symbolic.matrix import symbol_array

    calls = [
        lambda: graph.receptive_field("conv1", gates=BadRepr()),
        lambda: symbol_array("w", (2,), style=BadRepr()),
        lambda: ca.derive("matrix", SPEC, max_rows=BadRepr()),
        lambda: ca.ConvSpec((1, 5), 1, BadRepr()),
        lambda: conv_tikz(SPEC, output=BadRepr()),
        lambda: ca.check("translation_equivariance", SPEC, shift=BadRepr()),
    ]
    for call in calls:
        kind, exc = outcome(call)
        assert kind == "clear" and "<BadRepr>" in str(exc), str(exc)


def test_shown_and_printable_survive_anything():
    class BadIter(list):
        def __iter__(self):
            raise RuntimeError

    assert shown(BadRepr()) == "<BadRepr>" and shown(BadIter(range(500))) == "<BadIter>"
    assert printable(BadRepr()) == "<BadRepr>"


def test_the_200_character_cut_everywhere():
    from convalgebra.figures import conv_tikz

    graph = ca.zoo.get("lenet5")
    for call in (
        lambda: graph.receptive_field("conv1", gates="x" * 10**6),
        lambda: conv_tikz(SPEC, output="x" * 10**6),
        lambda: conv_tikz(SPEC, output=(10**6,) * 10**5),
        lambda: graph.unit_receptive_field("conv1", (1,) * 10**5),
    ):
        kind, exc = outcome(call)
        assert kind == "clear" and len(str(exc)) < 600, len(str(exc))
    unit = "x".join(["1"] * 30_000)
    code, _, err = run_cli(["rf", "--in", "1x7x7", "-k", "3", "--unit", unit])
    assert code == 2 and len(one_error_line(err)) < 600
    code, _, err = run_cli(["rf", "--in", "1x7x7", "-k", "3", "--unit", "9" * 5000 + "x1"])
    assert code == 2 and len(one_error_line(err)) <= 1100


# ------------------------------------------------------------------------ printed names
NAMES = st.text(
    st.characters(codec="utf-8", categories=["L", "N", "P", "S", "Zs", "Cc", "Cf"]),
    min_size=1,
    max_size=12,
)
FORGERIES = ["a\nerror: forged", "\x1b[2J\x1b[Hclear", "b\rerror: over", "c\u202eevil", "\x07"]


@fuzz_settings(0.5)
@given(st.lists(NAMES, min_size=2, max_size=2, unique=True), st.sampled_from(
    [["analyze"], ["params"], ["rf"], ["analyze", "--format", "csv"],
     ["analyze", "--format", "markdown"], ["rf", "--format", "json"]]))  # fmt: skip
@example(FORGERIES[:2], ["analyze"])
@example(FORGERIES[2:4], ["rf"])
@example(FORGERIES[3:5], ["params", "--format", "csv"])
def test_node_names_are_printed_escaped(tmp_path_factory, names, argv):
    """Output lines are the same in number as with plain names; no control character
    (other than the newline between lines) reaches the terminal."""
    folder = tmp_path_factory.mktemp("names")

    def document(a, b):
        return {
            "input": [1, 8, 8],
            "layers": [
                {"name": a, "kind": "conv", "out_channels": 2, "kernel_size": 3},
                {"name": b, "kind": "relu"},
            ],
        }

    (folder / "g.json").write_text(json.dumps(document(*names)))
    (folder / "plain.json").write_text(json.dumps(document("n1", "n2")))
    code, out, err = run_cli([argv[0], "g.json", *argv[1:]], cwd=folder)
    if code == 2:  # a name the graph refuses: not printable, or the input's own name
        assert "printable" in one_error_line(err) or "already in the graph" in err, err
        assert err.isprintable() or err.endswith("\n") and err[:-1].isprintable()
        return
    assert code == 0, err
    plain = run_cli([argv[0], "plain.json", *argv[1:]], cwd=folder)[1]
    assert len(out.splitlines()) == len(plain.splitlines())
    assert all(line.isprintable() for line in out.splitlines())
    assert not any(line.startswith("error") for line in out.splitlines())


def test_error_lines_escape_what_they_quote(tmp_path):
    doc = {"input": [1, 8, 8], "layers": [{"name": "x\x1b[2J", "kind": "nope"}]}
    (tmp_path / "g.json").write_text(json.dumps(doc))
    code, _, err = run_cli(["analyze", "g.json"], cwd=tmp_path)
    assert code == 2 and "\x1b" not in err
    one_error_line(err)
