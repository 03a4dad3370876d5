"""Progress of long work on standard error, and a clean stop on Ctrl-C.

A subcommand that may run for seconds (Lanczos, a dense SVD, a Lipschitz bound, an all-size
proof) opens a :class:`Progress` and passes its :meth:`~Progress.update` as the library
call's ``callback``; the library itself never draws anything. The display is tqdm's bar when
tqdm is installed (the ``progress`` extra), else one plain line every few seconds; it starts
only after :data:`DELAY` seconds (quick commands show nothing), is written to standard error
only (standard output and JSON stay clean), and shows by default only when standard error is
a terminal: ``CONVALGEBRA_PROGRESS=always`` (draw from the first update, terminal or not, as
a log wants it) or ``never`` overrides that.

Ctrl-C stops any command with the one line :data:`INTERRUPTED` on standard error and exit
code 130, no traceback: Python raises ``KeyboardInterrupt`` at the next bytecode, and while
the main thread is inside a long native call (LAPACK) a watcher thread ends the process after
:data:`GRACE` seconds. Files are only written once a command has succeeded, so a stopped
command leaves none behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

__all__ = [
    "DELAY",
    "ENV",
    "EXIT_INTERRUPTED",
    "GRACE",
    "INTERRUPTED",
    "Progress",
    "interrupted",
    "stopping_on_interrupt",
]

ENV = "CONVALGEBRA_PROGRESS"
INTERRUPTED = "convalgebra: interrupted"
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for a command stopped by Ctrl-C
DELAY = 1.0  # seconds of work before any progress shows
PLAIN_EVERY = 5.0  # seconds between two plain progress lines (no tqdm)
GRACE = 1.0  # seconds the main thread has to stop by itself after Ctrl-C

_lock = threading.Lock()
# reported: the interrupted line is out (nothing draws after it); shown: a progress display
# has been drawn since the command started
_state = {"reported": False, "shown": False}


def _wanted() -> bool:
    mode = os.environ.get(ENV, "auto").strip().lower()
    if mode in ("never", "0", "no", "off"):
        return False
    if mode in ("always", "1", "yes", "on"):
        return True
    return sys.stderr.isatty()


def _delay() -> float:
    """No delay when progress is asked for explicitly (``always``): a log shows every job."""
    forced = os.environ.get(ENV, "auto").strip().lower() in ("always", "1", "yes", "on")
    return 0.0 if forced else DELAY


def _tqdm() -> Any:
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm


class Progress:
    """One progress display on standard error, fed by a library callback.

    Parameters
    ----------
    label : str
        What is being done, e.g. ``"Lanczos products"``.
    unit : str
        What one step is (``"product"``, ``"node"``, ``"size"``).
    total : int, optional
        Steps expected; unknown (``None``) shows a count and a rate.

    Examples
    --------
    >>> with Progress("sizes decided", "size", total=3) as bar:
    ...     for done in range(1, 4):
    ...         bar.update(done)
    """

    def __init__(self, label: str, unit: str = "it", total: int | None = None) -> None:
        self.label, self.unit, self.total = label, unit, total
        self.start = self.last = time.monotonic()
        self.done = 0
        self.active = _wanted()
        self.delay = _delay()
        self.tqdm = _tqdm() if self.active else None
        self.bar: Any = None  # made once DELAY has passed (tqdm clears only what it drew)
        self.lock = threading.Lock()

    def _show(self, what: str | None) -> None:
        """Draw the current state: the bar (made on first use) or a plain line."""
        if time.monotonic() - self.start < self.delay:
            return
        with self.lock, _lock:
            if _state["reported"]:  # stopped: the interrupted line stays the last one
                return
            _state["shown"] = True
            if self.tqdm is None:
                self._plain_line(what)
                return
            if self.bar is None:
                self.bar = self.tqdm(
                    total=self.total,
                    desc=self.label,
                    unit=self.unit,
                    file=sys.stderr,
                    leave=False,
                    dynamic_ncols=True,
                )
            if self.bar.total != self.total:
                self.bar.total = self.total
            if what is not None:
                self.bar.set_postfix_str(what, refresh=False)
            self.bar.update(self.done - self.bar.n)
            self.bar.refresh()

    def update(self, done: int, total: int | None = None, what: str | None = None) -> None:
        """Steps done so far (absolute), optionally a new total and what is being done."""
        if not self.active:
            return
        self.done = int(done)
        if total is not None:
            self.total = int(total)
        self._show(what)

    def _plain_line(self, what: str | None) -> None:
        now = time.monotonic()
        if now - self.start < self.delay or (
            self.last > self.start and now - self.last < PLAIN_EVERY
        ):
            return
        self.last = now
        count = f"{self.done:,}" + (f"/{self.total:,}" if self.total else "")
        where = f", {what}" if what else ""
        print(
            f"convalgebra: {self.label}: {count} {self.unit}s{where} ({now - self.start:.0f} s)",
            file=sys.stderr,
            flush=True,
        )

    @contextlib.contextmanager
    def ticking(self, what: str) -> Iterator[None]:
        """Keep the elapsed time moving during one opaque step (e.g. a LAPACK call)."""
        if not self.active:
            yield
            return
        stop = threading.Event()

        def tick() -> None:
            while not stop.wait(0.5):
                self._show(what)

        thread = threading.Thread(target=tick, daemon=True)
        try:
            thread.start()
            yield
        finally:
            stop.set()
            if thread.ident is not None:  # started
                thread.join()

    def close(self) -> None:
        with self.lock:
            if self.bar is not None:
                self.bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def interrupted() -> int:
    """Say :data:`INTERRUPTED` on standard error (once) and return :data:`EXIT_INTERRUPTED`."""
    with _lock:
        if not _state["reported"]:
            _state["reported"] = True
            # on a fresh line: a terminal's current line erased, else a new line
            start = ("\r\x1b[K" if sys.stderr.isatty() else "\n") if _state["shown"] else ""
            try:
                sys.stderr.write(f"{start}{INTERRUPTED}\n")
                sys.stderr.flush()
            except (OSError, ValueError):  # standard error closed: the exit code still says it
                pass
    return EXIT_INTERRUPTED


@contextlib.contextmanager
def stopping_on_interrupt() -> Iterator[None]:
    """Within it, Ctrl-C ends the process with :func:`interrupted` even inside native code.

    Python's own handler raises ``KeyboardInterrupt`` (the caller catches it and returns
    :func:`interrupted`); its wake-up file descriptor also wakes a watcher thread, which ends
    the process itself if the main thread has not finished within :data:`GRACE` seconds.
    Outside the main thread, or where the wake-up descriptor cannot be set, only the first
    part applies.
    """
    _state["reported"] = _state["shown"] = False
    if threading.current_thread() is not threading.main_thread() or os.name == "nt":
        yield
        return
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    try:
        previous = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    except (ValueError, OSError):
        os.close(read_end)
        os.close(write_end)
        yield
        return
    finished = threading.Event()

    def watch() -> None:
        while True:
            try:
                data = os.read(read_end, 64)
            except OSError:
                return
            if not data or finished.is_set():
                return
            if signal.SIGINT in data and not finished.wait(GRACE):
                os._exit(interrupted())

    watcher = threading.Thread(target=watch, name="convalgebra-interrupt", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        finished.set()
        signal.set_wakeup_fd(previous)
        os.close(write_end)  # the watcher reads end-of-file and returns
        watcher.join(timeout=GRACE)
        os.close(read_end)
