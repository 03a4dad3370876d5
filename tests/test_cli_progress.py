"""Progress of long work on stderr, and Ctrl-C: one line, exit code 130, no traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import convalgebra as ca
from convalgebra import ops
from convalgebra.cli import main, progress

ROOT = Path(__file__).resolve().parents[1]
# Lanczos on a 32x48x48 layer: about two minutes of products
LANCZOS = ["spectrum", "--in", "32x48x48", "--out", "32", "-k", "3", "-p", "1", "--largest", "1"]
needs_signals = pytest.mark.skipif(os.name == "nt", reason="POSIX signals")


def _start(argv: list[str], mode: str = "always") -> tuple[subprocess.Popen, list[bytes]]:
    """Run ``python -m convalgebra argv``; a thread collects stderr as it comes."""
    env = {**os.environ, progress.ENV: mode}
    proc = subprocess.Popen(
        [sys.executable, "-m", "convalgebra", *argv],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    chunks: list[bytes] = []

    def collect() -> None:
        assert proc.stderr is not None
        while data := os.read(proc.stderr.fileno(), 4096):
            chunks.append(data)

    proc.collector = threading.Thread(target=collect, daemon=True)  # type: ignore[attr-defined]
    proc.collector.start()  # type: ignore[attr-defined]
    return proc, chunks


def _finish(proc: subprocess.Popen, chunks: list[bytes], timeout: float) -> tuple[bytes, bytes]:
    """Standard output and all of standard error once the process has ended."""
    assert proc.stdout is not None
    try:
        out = proc.stdout.read()
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    proc.collector.join(timeout=10)  # type: ignore[attr-defined]
    return out, b"".join(chunks)


def _wait_for(chunks: list[bytes], text: bytes, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while text not in b"".join(chunks):
        assert proc.poll() is None, b"".join(chunks).decode(errors="replace")
        assert time.monotonic() < deadline, f"no {text!r} on stderr within {timeout} s"
        time.sleep(0.1)


@needs_signals
def test_ctrl_c_during_lanczos_stops_with_one_line_and_130():
    proc, chunks = _start(LANCZOS)
    try:
        _wait_for(chunks, b"product", proc, timeout=240)  # the long job runs and reports
        proc.send_signal(signal.SIGINT)
    finally:
        out, err = _finish(proc, chunks, timeout=60)
    code = proc.returncode
    assert code == progress.EXIT_INTERRUPTED
    assert out == b""
    assert b"Traceback" not in err
    lines = err.decode().replace("\r", "\n").splitlines()
    assert lines[-1] == progress.INTERRUPTED
    assert lines.count(progress.INTERRUPTED) == 1


# a long native call: LAPACK's SVD of a 3,000 x 3,000 matrix on one thread (Python's own
# handler only runs once it returns)
NATIVE = """
import numpy as np
from convalgebra.cli import progress
a = np.random.default_rng(0).standard_normal((3000, 3000))
with progress.stopping_on_interrupt():
    print("in LAPACK", flush=True, file=__import__("sys").stderr)
    np.linalg.svd(a)
print("finished")
"""


@needs_signals
def test_ctrl_c_inside_native_code_stops_within_the_grace_time():
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", NATIVE],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        assert proc.stderr.readline() == b"in LAPACK\n"
        time.sleep(0.5)
        start = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
        waited = time.monotonic() - start
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == progress.EXIT_INTERRUPTED
    assert out == b"" and err.decode().splitlines() == [progress.INTERRUPTED]
    assert waited < progress.GRACE + 5  # the SVD alone takes longer


def test_progress_goes_to_stderr_and_json_stays_clean():
    argv = ["spectrum", "--in", "20x48x48", "--out", "20", "-k", "3", "-p", "1"]
    proc, chunks = _start([*argv, "--largest", "1", "--format", "json"])
    out, raw = _finish(proc, chunks, timeout=600)
    err = raw.decode()
    assert proc.returncode == 0, err
    record = json.loads(out)  # nothing but the JSON on stdout
    assert record["route"] == "Lanczos on the matrix-free operator"
    assert "spectrum" in err and "product" in err  # the bar, after its delay


def test_no_progress_when_turned_off():
    argv = ["spectrum", "--in", "16x40x40", "--out", "16", "-k", "3", "-p", "1", "--largest", "1"]
    proc, chunks = _start(argv, mode="never")
    out, err = _finish(proc, chunks, timeout=600)
    assert proc.returncode == 0
    assert err == b""
    assert out.startswith(b"Conv2d(16, 16")


def test_plain_lines_without_tqdm(monkeypatch, capsys):
    """Without tqdm: a plain line on stderr at most every PLAIN_EVERY seconds, none on stdout."""
    monkeypatch.setenv(progress.ENV, "always")
    monkeypatch.setattr(progress, "_tqdm", lambda: None)
    monkeypatch.setattr(progress, "DELAY", 0.0)
    monkeypatch.setattr(progress, "PLAIN_EVERY", 3600.0)
    with progress.Progress("prove", "size", total=4) as bar:
        for done in range(1, 5):
            bar.update(done, what="n = 7")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == ["convalgebra: prove: 1/4 sizes, n = 7 (0 s)"]


def test_tqdm_bar_on_stderr(monkeypatch, capsys):
    pytest.importorskip("tqdm")
    monkeypatch.setenv(progress.ENV, "always")
    monkeypatch.setattr(progress, "DELAY", 0.0)
    with progress.Progress("lipschitz", "step", total=3) as bar:
        for done in range(1, 4):
            bar.update(done, what="conv1")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "lipschitz" in captured.err and "3/3" in captured.err


def test_keyboard_interrupt_in_a_command_returns_130(monkeypatch, capsys):
    """Ctrl-C while a subcommand runs (in process): the one line and 130."""

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ca.spectra, "singular_values", stop)
    assert main(["spectrum", "--in", "1x5", "-k", "2"]) == progress.EXIT_INTERRUPTED
    captured = capsys.readouterr()
    assert captured.err == progress.INTERRUPTED + "\n" and captured.out == ""


def test_prove_reports_every_size_decided():
    x, w = ops.signal(), ops.kernel("w", (1, 1, 3))
    lhs, rhs = ops.conv(x, w, stride=2), ops.subsample(ops.conv(x, w), 2)
    calls: list[tuple[int, int]] = []
    proof = ops.prove(lhs, rhs, callback=lambda done, total: calls.append((done, total)))
    total = calls[-1][1]
    assert calls == [(done, total) for done in range(1, total + 1)]
    assert str(proof.sizes) == str(ops.prove(lhs, rhs).sizes)
    listed: list[tuple[int, int]] = []
    ops.prove(lhs, rhs, sizes=range(1, 9), callback=lambda d, t: listed.append((d, t)))
    assert listed == [(d, 8) for d in range(1, 9)]


def test_prove_callback_can_stop_it():
    x, w = ops.signal(), ops.kernel("w", (1, 1, 3))

    def stop(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ops.prove(ops.conv(x, w), ops.conv(x, w), callback=stop)


MODEL = """
import torch

def make():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(2, 3, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(3, 2, 3)
    )
"""


def test_lipschitz_command_prints_the_library_bound(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    path = tmp_path / "net.py"
    path.write_text(MODEL)
    assert main(["lipschitz", f"{path}:make", "--in", "2x6x6", "--format", "json"]) == 0
    record = json.loads(capsys.readouterr().out)
    namespace: dict = {}
    exec(MODEL, namespace)  # the same model, built here
    bound = ca.lipschitz_bound(namespace["make"]().eval(), (2, 6, 6))
    assert record["upper"] == bound.upper and record["lower"] == bound.lower
    assert [n["node"] for n in record["nodes"]] == [e.node for e in bound.nodes]
    assert main(["lipschitz", f"{path}:make", "--in", "2x6x6"]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"{path}:make on 2x6x6: upper bound {bound.upper:.6g}")
    assert torch is not None


def test_lipschitz_command_needs_a_python_model(capsys):
    assert main(["lipschitz", "resnet18", "--in", "3x32x32"]) == 2
    assert "needs a PyTorch model" in capsys.readouterr().err


def test_a_slow_dense_svd_shows_its_route_and_elapsed_time(monkeypatch, capsys):
    """An opaque step (no callback from LAPACK): the ticking display names it, on stderr."""
    argv = ["spectrum", "--in", "2x6x6", "--out", "2", "-k", "3", "-p", "1", "--format", "json"]
    assert main(argv) == 0
    quiet = capsys.readouterr()
    real = ca.spectra.singular_values

    def slow(*args, **kwargs):
        time.sleep(1.2)  # two ticks
        return real(*args, **kwargs)

    monkeypatch.setattr(ca.spectra, "singular_values", slow)
    monkeypatch.setenv(progress.ENV, "always")
    monkeypatch.setattr(progress, "DELAY", 0.0)
    assert main(argv) == 0
    shown = capsys.readouterr()
    assert shown.out == quiet.out  # the same JSON, nothing else on stdout
    assert "spectrum" in shown.err and "dense SVD" in shown.err
