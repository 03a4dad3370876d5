"""The doors hostile input knocks on: model targets, exit codes, files, messages, printed names.

Each reproducer of the hostile-input review is pinned (parametrized or ``@example``); the
hypothesis families around them run derandomized under the "ci" profile, every call under a
time cap (:func:`capped`, SIGALRM) so that a hang fails as a hang. ``TALLY`` counts outcomes
(printed with ``-s``): inputs, clear errors, wrong type, crash, hang, memory, wrong value.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

pytest.importorskip("torch", reason="the [torch] extra is not installed: pip install '.[test]'")

import convalgebra as ca  # noqa: E402
from convalgebra.cli import main  # noqa: E402
from convalgebra.cli.python_models import build_module, parse_target  # noqa: E402
from convalgebra.errors import printable, shown  # noqa: E402
from convalgebra.files import read_bytes, write_file, write_files  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TALLY: Counter = Counter()
SCALE = settings.default.max_examples  # 200 under "ci"
TIME_CAP = 20.0  # seconds per call, on a loaded 2-core machine
MESSAGE_LIMIT = 1500


def fuzz_settings(factor: float):
    return settings(
        max_examples=max(10, int(SCALE * factor)),
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    print("\nhostile doors tally:", dict(sorted(TALLY.items())))


class Hang(BaseException):
    """A call that ran past :data:`TIME_CAP` (a BaseException: no ``except Exception`` eats it)."""


@contextlib.contextmanager
def capped(seconds: float = TIME_CAP):
    """Fail a call that runs past ``seconds`` (main thread only: SIGALRM)."""

    def _alarm(signum, frame):
        raise Hang(f"over {seconds} s")

    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def outcome(call):
    """``(kind, value)``: ``accepted`` or ``clear`` (the family, short message); anything else
    is tallied (wrong type, crash, hang, memory) and fails the test."""
    TALLY["inputs"] += 1
    try:
        with capped():
            value = call()
    except (ca.ConvAlgebraError, TypeError) as exc:
        message = str(exc)
        assert message.strip() and len(message) <= MESSAGE_LIMIT, message[:300]
        TALLY["clear"] += 1
        return "clear", exc
    except Hang:
        TALLY["hang"] += 1
        raise
    except MemoryError:
        TALLY["memory"] += 1
        raise
    except Exception:
        TALLY["wrong type"] += 1
        raise
    TALLY["accepted"] += 1
    return "accepted", value


def run_cli(argv, cwd=None):
    """``(code, stdout, stderr)`` of ``convalgebra argv`` (in ``cwd``), under the time cap."""
    out, err = io.StringIO(), io.StringIO()
    here = os.getcwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        with capped(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(a) for a in argv])
    finally:
        os.chdir(here)
    TALLY["inputs"] += 1
    TALLY[f"cli exit {code}"] += 1
    return code, out.getvalue(), err.getvalue()


def one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines[:3]
    assert len(lines[0]) <= MESSAGE_LIMIT
    return lines[0]


# ------------------------------------------------------------------------ model targets

EVIL_INIT = """
import os
from os import system
from shutil import rmtree as remove_tree
import torch.nn as nn

SENTINEL = os.path.join(os.path.dirname(__file__), "..", "CALLED")


def _touch(*args, **kwargs):
    open(SENTINEL, "w").close()
    return nn.Conv2d(3, 3, 1)


class Callable:
    def __call__(self, *args, **kwargs):
        return _touch()


gadget = Callable()
touch = _touch  # defined here, uses torch: a model function (called)


def plain(*args, **kwargs):  # defined here too
    return _touch()


class NotAModule:
    def __init__(self, *args, **kwargs):
        _touch()
"""
EVIL_NO_TORCH = """
import os

SENTINEL = os.path.join(os.path.dirname(__file__), "..", "CALLED")


def touch(*args, **kwargs):
    open(SENTINEL, "w").close()
"""
EVIL_REEXPORT = """
from evilpkg import touch as borrowed
from numpy import save
from torch.hub import load
"""


@pytest.fixture
def evil(tmp_path, monkeypatch):
    """A package in the current folder with callables a module target must never call."""
    package = tmp_path / "evilpkg"
    package.mkdir()
    (package / "__init__.py").write_text(EVIL_INIT)
    (tmp_path / "notorch.py").write_text(EVIL_NO_TORCH)
    (tmp_path / "reexport.py").write_text(EVIL_REEXPORT)
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    for name in ("evilpkg", "notorch", "reexport"):
        sys.modules.pop(name, None)


REFUSED_TARGETS = [
    'os:system("touch PWNED")',
    "builtins:exec(\"open('PWNED', 'w')\")",
    'subprocess:getoutput("touch PWNED")',
    'shutil:rmtree("x")',
    "antigravity:x",
    'runpy:run_path("x.py")',
    'torch:load("PWNED")',
    'torch.hub:load("a", "b")',
    'numpy:save("PWNED", 1)',
    "pip.__main__:x",
    "torchvision.models:ResNet.__init__",
    "torchvision.models:resnet18.__globals__",
    'evilpkg:system("touch PWNED")',
    'evilpkg:remove_tree("x")',
    "evilpkg:gadget",
    "evilpkg:NotAModule",
    "notorch:touch",
    "reexport:borrowed",
    'reexport:save("PWNED", 1)',
    'reexport:load("a", "b")',
]


@pytest.mark.parametrize("command", ["analyze", "params", "export", "rf"])
@pytest.mark.parametrize("target", REFUSED_TARGETS)
def test_module_targets_that_are_not_models_are_refused_before_any_call(evil, target, command):
    code, out, err = run_cli([command, target, "--in", "3x8x8"])
    assert code == 2 and out == ""
    assert "refusing the model" in one_error_line(err)
    assert not (evil / "PWNED").exists() and not (evil / "CALLED").exists()
    TALLY["target refused"] += 1


def test_a_standard_library_module_is_not_even_imported(evil):
    assert "antigravity" not in sys.modules
    code, _, err = run_cli(["analyze", "antigravity:x", "--in", "3x8x8"])
    assert code == 2 and "standard library" in err
    assert "antigravity" not in sys.modules


@pytest.mark.parametrize(
    "target",
    ["evilpkg:touch", "evilpkg:plain", "torch.nn:Conv2d(3, 4, 3)", "torchvision.models:resnet18"],
)
def test_model_classes_and_functions_of_the_package_itself_are_called(evil, target):
    code, out, err = run_cli(["params", target, "--in", "3x32x32", "--format", "json"])
    assert code == 0, err
    rows = json.loads(out)
    assert rows[-1]["params"] > 0
    TALLY["target called"] += 1


IDENT = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,11}", fullmatch=True)
NOT_IMPORTED = sorted(set(sys.stdlib_module_names) - set(sys.modules) - {"__main__"})


@fuzz_settings(1)
@given(
    st.sampled_from(NOT_IMPORTED),
    IDENT,
    st.lists(st.sampled_from(["'touch PWNED'", "1", "None", "[1]"]), max_size=2),
)
@example("antigravity", "x", [])
@example("os", "system", ["'touch PWNED'"])
def test_any_standard_library_target_is_refused_unimported(module, attr, args):
    target = f"{module}:{attr}({', '.join(args)})"
    before = module in sys.modules
    kind, exc = outcome(lambda: build_module(parse_target(target)))
    assert kind == "clear" and "standard library" in str(exc)
    assert (module in sys.modules) == before


# --------------------------------------------------------------------------- exit codes
def test_exit_0_1_2_3(monkeypatch):
    ok = run_cli(["check", "translation_equivariance", "--in", "1x6", "-k", "3", "-p", "1",
                  "--mode", "circular"])  # fmt: skip
    fails = run_cli(["check", "commutativity", "--in", "1x3", "-k", "2"])
    bad = run_cli(["check", "translation_equivariance", "--in", "1x0", "-k", "3"])
    from convalgebra.cli import layer_commands

    def boom(ns):
        raise KeyError("a bug")

    monkeypatch.setattr(layer_commands, "check", boom)
    internal = run_cli(["check", "commutativity", "--in", "1x5", "-k", "3"])
    assert [ok[0], fails[0], bad[0], internal[0]] == [0, 1, 2, 3]
    assert fails[2] == "" and ": FAILS" in fails[1]
    one_error_line(bad[2])
    assert internal[2].startswith("internal error (KeyError)")


def test_help_lists_the_exit_codes(capsys):
    assert main(["--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for words in ("0 success", "1 only when check finds that the law fails", "2 bad input",
                  "3 internal error"):  # fmt: skip
        assert words in text


@pytest.mark.parametrize(
    "argv",
    [
        ["rf", "--in", "1x7x7", "-k", "3", "--unit", "1x1", "--plot", "u.png"],
        ["rf", "lenet5", "--plot", "g.png"],
        ["matrix", "--in", "1x4", "-k", "2", "--plot", "m.png"],
        ["spectrum", "--in", "1x6", "-k", "3", "--plot", "s.png"],
        ["derive", "output_size", "--in", "1x5", "-k", "3", "--figure", "f.gif"],
    ],
    ids=["rf-unit", "rf-growth", "matrix", "spectrum", "gif"],
)
def test_a_missing_extra_is_exit_2_with_the_install_line(tmp_path, monkeypatch, argv):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, _, err = run_cli(argv, cwd=tmp_path)
    assert code == 2, err
    assert "convalgebra[plot]" in one_error_line(err)
    assert os.listdir(tmp_path) == []


HUGE_DOCS = {
    "out_channels 10**30": {"kind": "conv", "out_channels": 10**30, "kernel_size": 3},
    "linear 10**35": {"kind": "linear", "out_features": 10**35},
    "linear 1e300": {"kind": "linear", "out_features": 1e300},
    "upsample 1e300": {"kind": "upsample", "scale_factor": 1e300},
    "upsample 1e30": {"kind": "upsample", "scale_factor": 1e30},
    "padding 10**35": {"kind": "conv", "out_channels": 2, "kernel_size": 3, "padding": 10**35},
}


@pytest.mark.parametrize("command", ["analyze", "rf", "params"])
@pytest.mark.parametrize("layer", list(HUGE_DOCS.values()), ids=list(HUGE_DOCS))
def test_graph_documents_with_huge_sizes_are_bad_input(tmp_path, command, layer):
    (tmp_path / "g.json").write_text(json.dumps({"input": [1, 8, 8], "layers": [layer]}))
    code, _, err = run_cli([command, "g.json"], cwd=tmp_path)
    assert code == 2, err
    line = one_error_line(err)
    assert "2**62" in line or "integers" in line


def test_a_size_of_4000_digits_is_bad_input(tmp_path):
    digits = "9" * 4000
    text = f'{{"input": [1, 8, 8], "layers": [{{"kind": "linear", "out_features": {digits}}}]}}'
    (tmp_path / "g.json").write_text(text)
    code, _, err = run_cli(["analyze", "g.json"], cwd=tmp_path)
    assert code == 2 and "2**62" in one_error_line(err)


NUMBERS = st.one_of(
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, 1, 2**62 - 1, 2**62, 10**30, 10**300]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e300, 0.5, -0.0, 3.0]),
)
KINDS = ["conv", "linear", "upsample", "avg_pool", "max_pool", "flatten", "relu"]
KEYS = ["out_channels", "kernel_size", "stride", "padding", "out_features", "scale_factor",
        "dilation", "groups"]  # fmt: skip


@fuzz_settings(1)
@given(
    st.lists(st.integers(1, 40), min_size=1, max_size=3).map(lambda s: [1, *s]),
    st.lists(
        st.fixed_dictionaries(
            {"kind": st.sampled_from(KINDS)},
            optional={k: NUMBERS for k in KEYS},
        ),
        min_size=1,
        max_size=3,
    ),
    st.sampled_from(["analyze", "rf", "params"]),
)
@example([1, 8, 8], [{"kind": "upsample", "scale_factor": 1e300}], "analyze")
@example([1, 8, 8], [{"kind": "linear", "out_features": 10**35}], "params")
@example([10**40, 8, 8], [{"kind": "relu"}], "rf")
def test_graph_documents_exit_0_or_2(tmp_path_factory, shape, layers, command):
    folder = tmp_path_factory.mktemp("doc")
    (folder / "g.json").write_text(json.dumps({"input": shape, "layers": layers}))
    code, out, err = run_cli([command, "g.json"], cwd=folder)
    assert code in (0, 2), err
    if code == 2:
        one_error_line(err)


# --------------------------------------------------------------------------------- files
@pytest.mark.parametrize(
    ("first", "second", "make"),
    [
        ("same.tex", "same.tex", None),
        ("both.tex", "sub/../both.tex", "sub"),
        ("both.tex", "sub/../both.tex", None),
        ("sub/x.tex", "link/x.tex", "sub"),
    ],
    ids=["same", "dotdot", "dotdot-missing", "linked-folder"],
)
def test_two_outputs_to_one_file_are_refused_before_anything(tmp_path, first, second, make):
    if make:
        (tmp_path / make).mkdir()
    if second.startswith("link/"):
        (tmp_path / "link").symlink_to(tmp_path / "sub")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    code, out, err = run_cli(
        ["derive", "output_size", "--in", "1x7", "-k", "3", "-o", first, "--figure", second],
        cwd=tmp_path,
    )
    assert code == 2 and out == ""
    one_error_line(err)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_a_legal_250_character_name_is_written(tmp_path):
    name = "a" * 246 + ".tex"
    code, _, err = run_cli(
        ["derive", "output_size", "--in", "1x7", "-k", "3", "-o", name], cwd=tmp_path
    )
    assert code == 0, err
    assert os.listdir(tmp_path) == [name]


def _graph():
    return ca.zoo.get("lenet5")


def test_to_file_refuses_a_symbolic_link_and_keeps_its_target(tmp_path):
    (tmp_path / "target.json").write_text("keep")
    (tmp_path / "link.json").symlink_to(tmp_path / "target.json")
    kind, exc = outcome(lambda: _graph().to_file(tmp_path / "link.json"))
    assert kind == "clear" and "symbolic link" in str(exc)
    assert (tmp_path / "target.json").read_text() == "keep"


def test_to_file_refuses_a_fifo_at_once(tmp_path):
    os.mkfifo(tmp_path / "fifo.json")
    kind, exc = outcome(lambda: _graph().to_file(tmp_path / "fifo.json"))
    assert kind == "clear" and "FIFO" in str(exc)


def test_to_file_replaces_a_regular_file_and_reads_back(tmp_path):
    (tmp_path / "net.yaml").write_text("old")
    pytest.importorskip("yaml", reason="the [yaml] extra is not installed")
    path = _graph().to_file(tmp_path / "net.yaml")
    assert ca.LayerGraph.from_file(path).to_spec() == _graph().to_spec()
    assert os.listdir(tmp_path) == ["net.yaml"]


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "folder"])
def test_graph_files_that_are_not_regular_are_refused_unread(tmp_path, kind):
    path = tmp_path / "g.json"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    else:
        path.mkdir()
    kind_, exc = outcome(lambda: ca.LayerGraph.from_file(path))
    assert kind_ == "clear" and "cannot read" in str(exc)
    code, _, err = run_cli(["analyze", "g.json"], cwd=tmp_path)
    assert code == 2 and "cannot read" in one_error_line(err)


def test_read_bytes_refuses_an_oversized_file_before_reading(tmp_path):
    (tmp_path / "big.json").write_bytes(b"x" * 1001)
    with pytest.raises(ca.ConvAlgebraError, match="1,001 bytes, over the limit of 1,000"):
        read_bytes(tmp_path / "big.json", max_bytes=1000)


def test_conv_gif_refuses_a_symbolic_link(tmp_path):
    pytest.importorskip("matplotlib", reason="the [plot] extra is not installed")
    from convalgebra.figures import conv_gif

    (tmp_path / "keep.gif").write_bytes(b"keep")
    (tmp_path / "link.gif").symlink_to(tmp_path / "keep.gif")
    kind, exc = outcome(lambda: conv_gif(ca.ConvSpec((1, 3), 1, 2), tmp_path / "link.gif"))
    assert kind == "clear" and "symbolic link" in str(exc)
    assert (tmp_path / "keep.gif").read_bytes() == b"keep"
    assert sorted(os.listdir(tmp_path)) == ["keep.gif", "link.gif"]


def test_library_writes_name_their_temporaries_short(tmp_path):
    target = tmp_path / ("b" * 250)
    assert write_file(target, b"data").read_bytes() == b"data"
    assert os.listdir(tmp_path) == [target.name]


SLOW_WRITER = """
import os, sys, time
from pathlib import Path
import convalgebra.files as files

chmod = os.chmod

def slow_chmod(path, mode):  # the temporary is staged: say so, then linger
    chmod(path, mode)
    print("staged", flush=True)
    time.sleep(60)

os.chmod = slow_chmod
files.write_files({{Path({folder!r}) / "out.bin": b"x" * 10**6}})
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_a_signal_while_writing_leaves_no_temporary(tmp_path, signum):
    child = subprocess.Popen(
        [sys.executable, "-c", SLOW_WRITER.format(folder=str(tmp_path))],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    try:
        assert child.stdout.readline().strip() == "staged"
        assert len(os.listdir(tmp_path)) == 1  # the temporary
        child.send_signal(signum)
        child.wait(timeout=TIME_CAP)
    finally:
        child.kill()
    assert child.returncode != 0
    assert os.listdir(tmp_path) == []


def test_write_files_refuses_one_file_named_twice(tmp_path):
    (tmp_path / "sub").mkdir()
    files = {tmp_path / "a.txt": b"1", tmp_path / "sub" / ".." / "a.txt": b"2"}
    with pytest.raises(ca.ConvAlgebraError, match="two outputs name one file"):
        write_files(files)
    assert sorted(os.listdir(tmp_path)) == ["sub"]


# -------------------------------------------------------------- errors outside the family
class BadRepr:
    def __repr__(self):
        raise RuntimeError("repr is broken")

    __str__ = __repr__


class LyingInt(int):
    def __int__(self):
        return -5

    def __index__(self):
        return -5


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


# --------------------------------------------------------------- in a capped child process
def test_reproducers_in_a_memory_capped_child():
    """The model-target and parse reproducers again, under 1.5 GiB of address space."""
    code = textwrap.dedent("""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (3 * 2**29, 3 * 2**29))
        from convalgebra.cli import main
        from convalgebra.symbolic.exprs import parse_arithmetic
        codes = [main(["analyze", 'os:system("touch PWNED")', "--in", "1x4"]),
                 main(["params", "builtins:exec('1')", "--in", "1x4"])]
        try:
            parse_arithmetic("9**9**9**9")
        except ValueError as exc:
            codes.append(type(exc).__name__)
        print(codes)
    """)
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert done.stdout.strip() == "[2, 2, 'ConvAlgebraError']", done.stderr[-1000:]
    assert not (ROOT / "PWNED").exists()
