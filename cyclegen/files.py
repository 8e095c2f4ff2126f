"""Writing the run directory: atomic replacement, appended lines, and write failures
reported as what the user must fix (space, a file size limit, permissions), not as tracebacks."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cyclegen.errors import WriteFailedError

#: Why a write can fail that the user can fix, and what to do about it.
FIXES = {
    errno.ENOSPC: "the disk is full; free some space",
    errno.EDQUOT: "the disk quota is used up; free some space or raise the quota",
    errno.EFBIG: "the file is larger than this process may write (`ulimit -f`); raise the limit",
    errno.EROFS: "the file system is read-only; make it writable or train into another --out",
    errno.EACCES: "permission denied; make the run directory writable or train into another --out",
    errno.EPERM: "the operation is not permitted; make the run directory writable or train into another --out",
}


def atomic_write(path: Path, data: bytes) -> None:
    """Replace `path` with `data` through a temporary file, so a reader (or a kill) only ever
    sees the old file or the new one; a failed write removes the temporary file."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with _named(path), open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        _sync_directory(path.parent)
    except BaseException:  # disk full, a file size limit, a second Ctrl-C: never leave a partial file
        tmp.unlink(missing_ok=True)
        raise


def _sync_directory(directory: Path) -> None:
    """Make a rename in `directory` durable across a crash of the machine (POSIX only)."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def append_line(path: Path, line: str) -> None:
    """Append one line in a single write: a kill tears at most this line, which readers skip."""
    with _named(path), open(path, "a") as handle:
        handle.write(line + "\n")


@contextmanager
def _named(path: Path) -> Iterator[None]:
    """Errors of writes to an open file carry no file name; give them `path`'s."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None:
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise


@contextmanager
def reported_write_failures(what: str, after: str = "") -> Iterator[None]:
    """Turn an OSError a user can fix into a WriteFailedError naming the file, the cause and
    the fix; `what` says what was being written, `after` what is still safe."""
    try:
        yield
    except OSError as exc:
        fix = FIXES.get(exc.errno or 0)
        if fix is None:
            raise
        where = f" {exc.filename}" if exc.filename else ""
        tail = f" {after}" if after else ""
        raise WriteFailedError(f"cannot write {what}{where}: {exc.strerror}: {fix}.{tail}") from None
