"""The installed ``convalgebra`` console script and ``python -m convalgebra``, in a subprocess."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

SCRIPT = shutil.which("convalgebra")
needs_script = pytest.mark.skipif(
    SCRIPT is None, reason="convalgebra is not installed on PATH (pip install -e .)"
)


def shell(*argv, cwd=None):
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=120, cwd=cwd)


@needs_script
def test_console_script_without_arguments_analyses_resnet18():
    done = shell(SCRIPT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("resnet18 on input 3x224x224")
    assert "parameters: 11,689,512 learnable" in done.stdout and done.stderr == ""


def test_python_dash_m_runs_the_same_command():
    done = shell(
        sys.executable,
        "-m",
        "convalgebra",
        "matrix",
        "--in",
        "1x4x4",
        "-k",
        "3",
        "-p",
        "1",
        "--mode",
        "circular",
    )
    assert done.returncode == 0, done.stderr
    assert "structure: doubly block circulant" in done.stdout


@needs_script
@pytest.mark.parametrize(
    "argv, needle",
    [
        (["matrix", "--in", "3x-2x5", "-k", "3"], "expected a shape like 3x32x32"),
        (["analyze", "resnet19"], "unknown model 'resnet19'"),
        (["analyze", "missing.yaml"], "no such file"),
    ],
    ids=["malformed-shape", "unknown-model", "unreadable-file"],
)
def test_console_script_bad_input_exit_2_one_line(tmp_path, argv, needle):
    done = shell(SCRIPT, *argv, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stdout == "" and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and needle in done.stderr


@needs_script
def test_console_script_python_tag_yaml_refused_nothing_written(tmp_path):
    pytest.importorskip("yaml", reason="the [yaml] extra is not installed: pip install '.[test]'")
    bad = tmp_path / "net.yaml"
    bad.write_text("!!python/object/apply:os.system ['touch pwned']\n")
    done = shell(SCRIPT, "rf", str(bad), "--plot", str(tmp_path / "rf.png"), cwd=tmp_path)
    assert done.returncode == 2 and "no Python tags" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.yaml"]


@needs_script
def test_console_script_writes_files(tmp_path):
    pytest.importorskip(
        "matplotlib", reason="the [plot] extra is not installed: pip install '.[test]'"
    )
    done = shell(
        SCRIPT,
        "matrix",
        "--in",
        "1x6",
        "-k",
        "3",
        "--save",
        "m.npz",
        "--plot",
        "m.png",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "m.npz").stat().st_size > 0 and (tmp_path / "m.png").stat().st_size > 1000


@needs_script
def test_console_script_help():
    done = shell(SCRIPT, "--help")
    assert done.returncode == 0 and "examples:" in done.stdout and "exit codes" in done.stdout
