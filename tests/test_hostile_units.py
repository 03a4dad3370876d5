"""The defences against hostile input, each held against an independent computation in torch.

* the resource estimator's counts (budget.py) against the non-zeros of torch's Jacobian;
* read/written positions by arithmetic against torch's Jacobian columns/rows;
* colliding sizes by arithmetic against torch accepting each size;
* the string converter (exprs.py): numbers and names only, never code;
* the write helper (files.py): regular files only, no clobbering, umask, stdout.
"""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from oracle import F, torch, torch_conv
from strategies import conv_specs

import convalgebra as ca
from convalgebra.budget import triple_count
from convalgebra.cli.files import write_files
from convalgebra.errors import shown
from convalgebra.symbolic.exprs import as_expr, as_expr_array, parse_arithmetic


def _torch_ok(spec: ca.ConvSpec) -> bool:
    """torch_conv has the op (transposed specs only with zero, symmetric padding)."""
    return not spec.transposed or (
        spec.padding_mode == "zeros" and all(b == a for b, a in spec.padding)
    )


# ------------------------------------------------------------------ resource estimator
def _ones_probe(spec: ca.ConvSpec):
    """torch on all-ones input and kernel: the outputs count their in-bounds taps, and the
    gradient of their sum is non-zero exactly at the inputs some tap reads."""
    x = torch.ones(spec.input_shape, dtype=torch.float64, requires_grad=True)
    y = torch_conv(spec, x, np.ones(spec.weight_shape))
    (grad,) = torch.autograd.grad(y.sum(), x)
    return y.detach().numpy(), grad.numpy()


@given(conv_specs(transposed=None, max_size=6, max_channels=3))
def test_triple_count_is_what_torch_sums_over_ones(spec):
    if not _torch_ok(spec):
        return
    y, _ = _ones_probe(spec)
    assert triple_count(spec) == int(round(y.sum()))


@given(conv_specs(transposed=None, max_size=6, max_channels=3))
def test_unread_and_unwritten_positions_are_what_torch_never_touches(spec):
    if not _torch_ok(spec):
        return
    y, grad = _ones_probe(spec)
    read, written = (grad != 0)[0], (y != 0)[0]
    for mask, positions in ((read, spec.unread_inputs), (written, spec.unwritten_outputs)):
        expected = np.ones(mask.shape, dtype=bool)
        for axis, missing in enumerate(positions):
            shape = [1] * mask.ndim
            shape[axis] = -1
            line = np.ones(mask.shape[axis], dtype=bool)
            line[list(missing)] = False
            expected = expected & line.reshape(shape)
        np.testing.assert_array_equal(expected, mask)


def _torch_sizes(spec: ca.ConvSpec) -> list[tuple[int, int]]:
    """(size, output_padding) along axis 0 that torch accepts with the spec's strided side."""
    s, d, k = spec.stride[0], spec.dilation[0], spec.kernel_size[0]
    (before, after), n_out = spec.padding[0], spec.forward_output_spatial[0]
    found = []
    if spec.transposed:
        for op in range(max(s, d) + 2):
            try:
                y = F.conv_transpose1d(
                    torch.zeros(1, 1, n_out, dtype=torch.float64),
                    torch.zeros(1, 1, k, dtype=torch.float64),
                    stride=s,
                    padding=before,
                    output_padding=op,
                    dilation=d,
                )
            except RuntimeError:
                continue
            found.append((y.shape[-1], op))
        return found
    smallest = (n_out - 1) * s + d * (k - 1) + 1 - before - after
    for n in range(1, smallest + s + 3):
        mode = "constant" if spec.padding_mode == "zeros" else spec.padding_mode
        try:
            x = F.pad(torch.zeros(1, 1, n, dtype=torch.float64), [before, after], mode=mode)
            y = F.conv1d(x, torch.zeros(1, 1, k, dtype=torch.float64), stride=s, dilation=d)
        except RuntimeError:
            continue
        if y.shape[-1] == n_out:
            found.append((n, n - smallest))
    return found


@given(conv_specs(ndims=(1,), transposed=None, max_size=9, max_channels=1, bias=None))
def test_colliding_sizes_are_the_sizes_torch_maps_to_one_output(spec):
    if not _torch_ok(spec):
        return
    axis = ca.colliding_input_sizes(spec).axes[0]
    assert list(zip(axis.input_sizes, axis.output_padding, strict=True)) == _torch_sizes(spec)


def test_colliding_sizes_of_a_huge_stride_are_computed_not_listed():
    axis = ca.colliding_input_sizes(ca.ConvSpec((1, 10**9), 1, 3, stride=10**8)).axes[0]
    assert len(axis.input_sizes) == 10**8 and axis.input_sizes[0] == 900_000_003
    assert (
        10**9 in axis.input_sizes
        and axis.output_padding[axis.input_sizes.index(10**9)] == 99_999_997
    )


# ------------------------------------------------------------------------ converter
NAMES = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,8}", fullmatch=True)


@given(
    st.one_of(
        st.integers(-(10**6), 10**6), NAMES, st.tuples(st.integers(-99, 99), st.integers(1, 99))
    )
)
def test_strings_are_numbers_or_names(value):
    import sympy

    if isinstance(value, tuple):
        assert as_expr(f"{value[0]}/{value[1]}", "w") == sympy.Rational(*value)
    elif isinstance(value, int):
        assert as_expr(str(value), "w") == value
    else:
        assert as_expr(value, "w") == sympy.Symbol(value)


@given(st.text(max_size=60))
def test_any_other_string_is_a_type_error_and_runs_nothing(text):
    import re

    number = re.fullmatch(
        r"\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*|\s*[+-]?\d+/\d+\s*", text, re.ASCII
    )
    name = re.fullmatch(r"\s*[A-Za-z][A-Za-z0-9_]*\s*", text, re.ASCII)
    if number or name:
        return
    with pytest.raises(TypeError, match="entries must be numbers"):
        as_expr(text, "weight")


@pytest.mark.parametrize(
    "entry",
    [
        "__import__('os').system('touch PWNED')",
        "lambda: 1",
        "x.__class__",
        "1+1",
        "w[0]",
        "１",
        "exec('1')",
        "a b",
        "",
    ],
    ids=["import", "lambda", "dunder", "sum", "index", "unicode-digit", "exec", "space", "empty"],
)
@pytest.mark.parametrize(
    "call",
    [
        lambda e: ca.symbolic_matrix(ca.ConvSpec((1, 3), 1, 1, bias=False), [[[e]]]),
        lambda e: ca.symbolic.symbolic_output(ca.ConvSpec((1, 3), 1, 1), x=[[e, "a", 1]]),
        lambda e: ca.check("translation_equivariance", ca.ConvSpec((1, 4), 1, 1), weight=[[[e]]]),
        lambda e: ca.check("flip_equivariance", ca.ConvSpec((1, 4), 1, 1), weight=[[[e]]]),
        lambda e: ca.check(
            "separability", ca.ConvSpec((1, 3, 3), 1, 2), weight=[[[[e, "a"], [1, 2]]]]
        ),
    ],
    ids=["symbolic_matrix", "symbolic_output", "translation", "flip", "separability"],
)
def test_code_in_weights_is_refused_before_anything_runs(call, entry, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TypeError, match="must be numbers, sympy expressions or names"):
        call(entry)
    assert list(tmp_path.iterdir()) == []


def test_names_become_symbols_in_the_symbolic_matrix():
    import sympy

    m = ca.symbolic_matrix(ca.ConvSpec((1, 3), 1, 2, bias=False), [[["alpha", "1/2"]]])
    a = sympy.Symbol("alpha")
    assert m == sympy.Matrix([[a, sympy.Rational(1, 2), 0], [0, a, sympy.Rational(1, 2)]])


@pytest.mark.parametrize(
    "text", ["open(1)", "(1).real", "a[0]", "'x'", "x.__class__", "lambda: 1", "__builtins__"]
)
def test_the_round_trip_parser_reads_arithmetic_only(text):
    with pytest.raises(ca.ConvAlgebraError, match="not arithmetic"):
        parse_arithmetic(text)


def test_as_expr_array_checks_shape_and_ragged_input():
    with pytest.raises(ca.ConvAlgebraError, match=r"shape \(1, 2\)"):
        as_expr_array([1, 2, 3], (1, 2), "x")
    with pytest.raises(TypeError, match="x must be an array"):
        as_expr_array("w1", (1,), "x")


def test_shown_bounds_any_value():
    bomb: list = ["x"]
    for _ in range(80):
        bomb = [bomb, bomb]
    assert len(shown(bomb)) <= 200 and len(shown("y" * 10**6)) == 200
    assert shown((1, 2)) == "(1, 2)"


# ------------------------------------------------------------------------ writing files
def test_new_file_respects_the_umask_and_never_clobbers(tmp_path):
    old = os.umask(0o027)
    try:
        write_files({tmp_path / "a.txt": b"one"})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o640
    with pytest.raises(ca.ConvAlgebraError, match="exists .*--force"):
        write_files({tmp_path / "a.txt": b"two"})
    (tmp_path / "a.txt").chmod(0o600)
    write_files({tmp_path / "a.txt": b"two"}, force=True)
    assert (tmp_path / "a.txt").read_bytes() == b"two"
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


@pytest.mark.parametrize("kind", ["symlink", "fifo", "folder", "dangling"])
def test_special_targets_are_refused_even_with_force(tmp_path, kind):
    target = tmp_path / "t"
    (tmp_path / "real").write_bytes(b"keep")
    if kind == "symlink":
        target.symlink_to(tmp_path / "real")
    elif kind == "dangling":
        target.symlink_to(tmp_path / "nowhere")
    elif kind == "fifo":
        os.mkfifo(target)
    else:
        target.mkdir()
    before = sorted((p.name, p.is_symlink()) for p in tmp_path.iterdir())
    with pytest.raises(ca.ConvAlgebraError, match="cannot write"):
        write_files({tmp_path / "other.txt": b"x", target: b"data"}, force=True)
    assert sorted((p.name, p.is_symlink()) for p in tmp_path.iterdir()) == before
    assert (tmp_path / "real").read_bytes() == b"keep"


def test_a_device_is_refused():
    with pytest.raises(ca.ConvAlgebraError, match="not a regular file"):
        write_files({__import__("pathlib").Path("/dev/null"): b"x"}, force=True)


def test_dash_is_standard_output(capfdbinary, tmp_path):
    from convalgebra.cli import main

    code = main(["derive", "output_size", "--in", "1x5", "-k", "3", "-o", "-"])
    out, err = capfdbinary.readouterr()
    assert code == 0 and b"Output size" in out and b"wrote -" in err


def test_a_contradiction_of_sympys_cached_facts_is_decided_afresh(monkeypatch):
    """sympy can raise InconsistentAssumptions on a tree whose facts an earlier query in
    another order half-deduced; the parse clears sympy's cache and decides once more."""
    import sympy
    from sympy.core.facts import InconsistentAssumptions

    from convalgebra.symbolic import exprs

    real, calls, cleared = exprs._check_powers, [], []

    def contradicts_once(expr):
        calls.append(expr)
        if len(calls) == 1:
            raise InconsistentAssumptions("zero", True)
        real(expr)

    monkeypatch.setattr(exprs, "_check_powers", contradicts_once)
    monkeypatch.setattr(sympy.core.cache, "clear_cache", lambda: cleared.append(True))
    assert exprs.parse_arithmetic("floor((16 - 1 + 2*0)/2) + 1") == 8
    assert len(calls) == 2 and cleared == [True]
