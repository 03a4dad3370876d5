"""The one way convalgebra writes files: regular files only, all or nothing, never clobbering.

Every output (``--save``, ``--plot``, ``-o``) goes through :func:`write_files`:

* a target is a regular file (new, or existing and ``force=True``) or ``-`` (standard output);
  an existing target that is a symbolic link, a folder, a FIFO, a device or a socket is
  refused, and an existing regular file without ``force`` is refused saying that it exists;
* each file is staged in a temporary file beside its target and renamed into place once
  every file has been staged (a rename leaves no partial file); a new file is linked into
  place, which fails rather than replace anything that appeared in the meantime;
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

import os
import stat
import sys
import tempfile
from pathlib import Path

from ..errors import ConvAlgebraError, shown

__all__ = ["STDOUT", "write_files", "check_target"]

#: The target name that means standard output.
STDOUT = "-"


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def check_target(path: Path, force: bool = False) -> str:
    """Why ``path`` cannot be written (raised), or how: ``"stdout"``, ``"new"`` or ``"replace"``."""
    if str(path) == STDOUT:
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


def _stage(path: Path, data: bytes, mode: int) -> str:
    handle, tmp = tempfile.mkstemp(dir=path.absolute().parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.chmod(tmp, mode)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def write_files(files: dict[Path, bytes], *, force: bool = False) -> None:
    """Write every file or none (see the module notes); ``-`` goes to standard output last.

    Raises
    ------
    ConvAlgebraError
        A target that is not a regular file, exists without ``force``, or whose folder is
        missing; nothing has been written then.
    """
    plans = {path: check_target(path, force) for path in files}
    new_mode = 0o666 & ~_umask()
    staged: list[tuple[str, Path, str]] = []
    try:
        for path, data in files.items():
            how = plans[path]
            if how == "stdout":
                continue
            mode = stat.S_IMODE(os.stat(path).st_mode) if how == "replace" else new_mode
            staged.append((_stage(path, data, mode), path, how))
        for tmp, path, how in staged:
            check_target(path, force)  # again, just before the rename
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
