"""Every file written or read under hostile targets: links, FIFOs, devices, one file named twice,
long names, signals while writing.

Each reproducer of the hostile-input review is pinned (parametrized or ``@example``); the
hypothesis families around them run derandomized under the "ci" profile, every call under the
time cap of :mod:`hostile`; the outcomes are tallied there (printed with ``-s``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from hostile import (
    ROOT,
    TALLY,
    TIME_CAP,
    one_error_line,
    outcome,
    run_cli,
)

import convalgebra as ca
from convalgebra.files import read_bytes, write_file, write_files


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    print("\nhostile tally (all suites so far):", dict(sorted(TALLY.items())))


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
