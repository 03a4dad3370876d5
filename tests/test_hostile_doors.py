"""Model targets, exit codes and graph documents under hostile input: what runs, and how it ends.

Each reproducer of the hostile-input review is pinned (parametrized or ``@example``); the
hypothesis families around them run derandomized under the "ci" profile, every call under the
time cap of :mod:`hostile`; the outcomes are tallied there (printed with ``-s``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from hostile import (
    ROOT,
    TALLY,
    fuzz_settings,
    one_error_line,
    outcome,
    run_cli,
)
from hypothesis import example, given
from hypothesis import strategies as st

pytest.importorskip("torch", reason="the [torch] extra is not installed: pip install '.[test]'")

from convalgebra.cli import main  # noqa: E402
from convalgebra.cli.python_models import build_module, parse_target  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    print("\nhostile tally (all suites so far):", dict(sorted(TALLY.items())))


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
