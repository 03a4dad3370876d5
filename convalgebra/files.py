"""The one way convalgebra writes files: regular files only, all or nothing, never clobbering.

Every output of the command line (``--save``, ``--plot``, ``-o``, ``--figure``) and of the
library (:meth:`~convalgebra.network.graph.LayerGraph.to_file`,
:func:`~convalgebra.figures.conv_gif`) goes through :func:`write_files`:

* a target is a regular file (new, or existing and ``force=True``) or ``-`` (standard output,
  where the caller allows it); an existing target that is a symbolic link, a folder, a FIFO,
  a device or a socket is refused, and an existing regular file without ``force`` is refused
  saying that it exists;
* two targets that are one file (``same.tex`` and ``sub/../same.tex``) are refused before
  anything is written;
* each file is staged in a temporary file beside its target, named short (``.ca-XXXXXXXX.tmp``,
  so that a target name of any legal length works), and renamed into place once every file
  has been staged (a rename leaves no partial file); a new file is linked into place, which
  fails rather than replace anything that appeared in the meantime;
* the temporaries are removed on any error and on SIGINT or SIGTERM while writing (a SIGTERM
  then ends the process with exit status 143, after the cleanup);
* new files get the permissions the umask allows (``0o666 & ~umask``), overwritten files
  keep theirs.

Examples
--------
>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> write_files({folder / "a.txt": b"hello"})
>>> (folder / "a.txt").read_bytes()
b'hello'
>>> write_files({folder / "a.txt": b"again"})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
convalgebra.errors.ConvAlgebraError: cannot write ...a.txt': it exists (use --force to overwrite it)
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from .errors import ConvAlgebraError, shown

__all__ = [
    "STDOUT",
    "MAX_READ_BYTES",
    "write_files",
    "write_file",
    "check_target",
    "check_distinct",
    "read_bytes",
    "read_text",
]

#: The target name that means standard output.
STDOUT = "-"
_TEMP_PREFIX, _TEMP_SUFFIX = ".ca-", ".tmp"
#: Largest file read whole (graph documents, weight files): 64 MiB.
MAX_READ_BYTES = 64 * 2**20


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def check_target(path: Path, force: bool = False, stdout: bool = True) -> str:
    """Why ``path`` cannot be written (raised), or how: ``"stdout"``, ``"new"`` or ``"replace"``.

    ``-`` is standard output when ``stdout`` is true, else a file named ``-``.
    """
    if stdout and str(path) == STDOUT:
        return "stdout"
    name = shown(str(path))
    folder = path.absolute().parent
    if not folder.is_dir():
        raise ConvAlgebraError(f"cannot write {name}: folder {shown(str(folder))} does not exist")
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return "new"
    except OSError as exc:
        raise ConvAlgebraError(f"cannot write {name}: {exc.strerror}") from None
    if stat.S_ISLNK(info.st_mode):
        raise ConvAlgebraError(f"cannot write {name}: it is a symbolic link (not followed)")
    if stat.S_ISDIR(info.st_mode):
        raise ConvAlgebraError(f"cannot write {name}: it is a folder")
    if not stat.S_ISREG(info.st_mode):
        raise ConvAlgebraError(
            f"cannot write {name}: it is not a regular file (a device, FIFO or socket); "
            "use '-' for standard output"
        )
    if not force:
        raise ConvAlgebraError(f"cannot write {name}: it exists (use --force to overwrite it)")
    return "replace"


def _identity(path: Path, stdout: bool) -> str:
    """One name per file: the real folder (``..`` and links resolved) joined with the name."""
    if stdout and str(path) == STDOUT:
        return STDOUT
    return os.path.join(os.path.realpath(path.absolute().parent), path.name)


def check_distinct(paths: Iterable[Path], stdout: bool = True) -> None:
    """Refuse two outputs that are one file (or both standard output).

    Examples
    --------
    >>> from pathlib import Path
    >>> check_distinct([Path("a.tex"), Path("b.tex")])
    >>> check_distinct([Path("same.tex"), Path("sub/../same.tex")])
    Traceback (most recent call last):
    ...
    convalgebra.errors.ConvAlgebraError: two outputs name one file: 'same.tex' and 'sub/../same.tex'; give each output its own file
    """
    seen: dict[str, Path] = {}
    for path in paths:
        key = _identity(Path(path), stdout)
        if key in seen:
            raise ConvAlgebraError(
                f"two outputs name one file: {shown(str(seen[key]))} and {shown(str(path))}; "
                "give each output its own file"
            )
        seen[key] = Path(path)


def _stage(path: Path, data: bytes, mode: int) -> str:
    handle, tmp = tempfile.mkstemp(
        dir=path.absolute().parent, prefix=_TEMP_PREFIX, suffix=_TEMP_SUFFIX
    )
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.chmod(tmp, mode)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


class _Terminated(SystemExit):
    """SIGTERM while temporaries exist: unwinds so that ``finally`` removes them."""


@contextlib.contextmanager
def _signals_unwind() -> Iterator[None]:
    """SIGTERM (with its default action) raises while writing, so cleanup code runs; SIGINT
    raises KeyboardInterrupt as Python's default handler does. Other handlers are kept."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum, frame):
        raise _Terminated(128 + signum)

    previous = signal.getsignal(signal.SIGTERM)
    if previous is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        if previous is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, previous)


def write_files(files: Mapping[Path, bytes], *, force: bool = False, stdout: bool = True) -> None:
    """Write every file or none (see the module notes); ``-`` goes to standard output last.

    Parameters
    ----------
    files : mapping of Path to bytes
    force : bool
        Overwrite existing regular files.
    stdout : bool
        ``-`` means standard output (the command line); false: a file named ``-``.

    Raises
    ------
    ConvAlgebraError
        A target that is not a regular file, exists without ``force``, whose folder is
        missing, or that names the same file as another target; nothing has been written then.
    """
    files = {Path(p): data for p, data in files.items()}
    check_distinct(files, stdout)
    plans = {path: check_target(path, force, stdout) for path in files}
    new_mode = 0o666 & ~_umask()
    staged: list[tuple[str, Path, str]] = []
    with _signals_unwind():
        try:
            for path, data in files.items():
                how = plans[path]
                if how == "stdout":
                    continue
                mode = stat.S_IMODE(os.stat(path).st_mode) if how == "replace" else new_mode
                staged.append((_stage(path, data, mode), path, how))
            for tmp, path, how in staged:
                check_target(path, force, stdout)  # again, just before the rename
                if how == "new":
                    _link_new(tmp, path)
                else:
                    os.replace(tmp, path)
        finally:
            for tmp, _, _ in staged:
                Path(tmp).unlink(missing_ok=True)
    for path, data in files.items():
        if plans[path] == "stdout":
            _to_stdout(data)


def write_file(path: str | Path, data: bytes, *, force: bool = True) -> Path:
    """One file written by the library's rules (``-`` is a file name here); returns its path.

    An existing regular file is replaced (``force=True``, the default); a symbolic link, a
    folder, a FIFO or a device never is.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "b.txt"
    >>> write_file(target, b"one") == target and write_file(target, b"two").read_bytes()
    b'two'
    """
    target = Path(path)
    write_files({target: data}, force=force, stdout=False)
    return target


def _to_stdout(data: bytes) -> None:
    """The bytes on standard output (a text-only stream, e.g. a captured one, gets text)."""
    sys.stdout.flush()
    binary = getattr(sys.stdout, "buffer", None)
    if binary is None:
        sys.stdout.write(data.decode("utf-8", errors="replace"))
        return
    binary.write(data)
    binary.flush()


def _link_new(tmp: str, path: Path) -> None:
    """Put ``tmp`` at ``path`` only if nothing is there (a hard link fails on any existing name)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise ConvAlgebraError(
            f"cannot write {shown(str(path))}: it appeared while writing (use --force to "
            "overwrite it)"
        ) from None
    except OSError:  # a file system without hard links: rename (checked just before)
        os.replace(tmp, path)


def read_bytes(path: str | Path, what: str = "a file", max_bytes: int = MAX_READ_BYTES) -> bytes:
    """The bytes of a regular file of at most ``max_bytes``, its size known before reading.

    Opened without blocking and checked before a byte is read: a FIFO, a device (a link to
    ``/dev/zero``), a folder or an oversized file is refused, never waited on nor read.

    Examples
    --------
    >>> read_bytes("/dev/zero", "a weight file")
    Traceback (most recent call last):
    ...
    convalgebra.errors.ConvAlgebraError: cannot read a weight file '/dev/zero': it is not a regular file (a device, FIFO or socket)
    """
    name = shown(str(path))
    try:
        handle = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise ConvAlgebraError(f"cannot read {what} {name}: no such file") from None
    except OSError as exc:
        raise ConvAlgebraError(f"cannot read {what} {name}: {exc.strerror or exc}") from None
    try:
        info = os.fstat(handle)
        if stat.S_ISDIR(info.st_mode):
            raise ConvAlgebraError(f"cannot read {what} {name}: it is a folder")
        if not stat.S_ISREG(info.st_mode):
            raise ConvAlgebraError(
                f"cannot read {what} {name}: it is not a regular file (a device, FIFO or socket)"
            )
        if info.st_size > max_bytes:
            raise ConvAlgebraError(
                f"cannot read {what} {name}: {info.st_size:,} bytes, over the limit of "
                f"{max_bytes:,} bytes"
            )
        chunks, left = [], max_bytes + 1  # a file that grows while read is cut, not followed
        while left > 0 and (chunk := os.read(handle, min(left, 2**20))):
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        os.close(handle)
    data = b"".join(chunks)
    if len(data) > max_bytes:
        raise ConvAlgebraError(f"cannot read {what} {name}: it grew over {max_bytes:,} bytes")
    return data


def read_text(path: str | Path, what: str = "a file", max_bytes: int = MAX_READ_BYTES) -> str:
    """:func:`read_bytes` decoded as UTF-8 (a file that is not text is refused)."""
    try:
        return read_bytes(path, what, max_bytes).decode("utf-8")
    except UnicodeDecodeError:
        raise ConvAlgebraError(
            f"cannot read {what} {shown(str(path))}: not a text file (UTF-8)"
        ) from None
