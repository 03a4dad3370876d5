"""What the hostile suites (tests/test_hostile_*.py) share: a time cap per call, the outcome
of a call or a command line, tallied, and the hostile values themselves.

``TALLY`` counts outcomes: inputs, clear (the error family, a short message), accepted, and what
fails a test: wrong type (another exception), hang (past :data:`TIME_CAP`), memory
(MemoryError), wrong value (a comparison with the oracle). Each suite prints it with ``-s``.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, settings

import convalgebra as ca
from convalgebra.cli import main

ROOT = Path(__file__).resolve().parents[1]
TALLY: Counter = Counter()
SCALE = settings.default.max_examples  # 200 under "ci", ten times more under "nightly"
TIME_CAP = 30.0  # seconds per call, on a loaded 2-core machine
MESSAGE_LIMIT = 1500  # user values are cut to ~200 characters inside


def fuzz_settings(factor: float):
    return settings(
        max_examples=max(10, int(SCALE * factor)),
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )


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


class BadRepr:
    """A value whose repr and str raise: the error path must still name it."""

    def __repr__(self):
        raise RuntimeError("repr is broken")

    __str__ = __repr__


class LyingInt(int):
    """An int whose __int__ and __index__ say -5: read by its value or refused, never -5."""

    def __int__(self):
        return -5

    def __index__(self):
        return -5
