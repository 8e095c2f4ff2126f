"""What guards a run directory besides its checkpoints: a lock against a second process, the
run's identity, and the training log kept consistent with the checkpoint a run resumes from."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from cyclegen.errors import CycleGenError, RunInUseError
from cyclegen.files import atomic_write, reported_write_failures

#: The run's resolved recipe and its checkpoints folder, inside a run directory.
RUN_RECIPE = "recipe.toml"
CHECKPOINTS = "checkpoints"

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; a second process is not detected there
    fcntl = None  # type: ignore[assignment]

LOCK = ".lock"
IDENTITY = "run.json"
LOG = "metrics.jsonl"


class RunLock:
    """An advisory lock (flock) on `<run dir>/.lock`, held while a process trains into the
    directory. The kernel drops it when the process ends however it ends, `kill -9` included,
    so a stale lock cannot block a resume; the file records who holds it, for the refusal."""

    def __init__(self, directory: Path) -> None:
        self.path = Path(directory) / LOCK
        self.fd: int | None = None

    def acquire(self) -> None:
        if fcntl is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunInUseError(
                f"{self.path.parent} is in use by {self._holder()}. Two processes training into one "
                "run directory would overwrite each other's checkpoints and log: wait for it to finish "
                "or stop it, or train into another --out."
            ) from None
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S"),
                  "command": " ".join(sys.argv)}
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(holder).encode())
        self.fd = fd

    def _holder(self) -> str:
        try:
            holder = json.loads(self.path.read_text())
            return f"process {holder['pid']} on {holder['host']} (since {holder['since']}: {holder['command']})"
        except (OSError, ValueError, KeyError, TypeError):
            return "another process"

    def release(self) -> None:
        if self.fd is not None and fcntl is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def read_identity(directory: Path) -> str | None:
    """The run's identity recorded in `run.json`, or None for a directory without one."""
    path = Path(directory) / IDENTITY
    if not path.is_file():
        return None
    try:
        identity = json.loads(path.read_text())["id"]
    except (OSError, ValueError, KeyError, TypeError):
        identity = None  # reported below, as a value of the wrong type is
    if not isinstance(identity, str):
        raise CycleGenError(f"{path} is damaged: it should hold the run's id as {{\"id\": \"...\"}}")
    return identity


def write_identity(directory: Path, identity: str) -> None:
    record: dict[str, Any] = {"id": identity, "created": time.strftime("%Y-%m-%d %H:%M:%S")}
    atomic_write(Path(directory) / IDENTITY, (json.dumps(record) + "\n").encode())


def new_identity() -> str:
    return uuid.uuid4().hex


def truncate_log(directory: Path, step: int) -> None:
    """Keep the log lines of steps up to `step`, the checkpoint a run resumes from: later ones
    are trained again. A line torn by a kill, or not a log line at all, is dropped; the log is
    replaced atomically, so a kill here loses nothing."""
    log = Path(directory) / LOG
    if not log.is_file():
        return
    text = log.read_text(errors="replace")
    kept = [line for line in text.splitlines() if (logged := _logged_step(line)) is not None and logged <= step]
    wanted = "".join(line + "\n" for line in kept)
    if wanted != text:  # rewriting an intact log would only cost disk space, which may be short
        atomic_write(log, wanted.encode())


def _logged_step(line: str) -> int | None:
    try:
        step = json.loads(line).get("step")
    except (ValueError, AttributeError, RecursionError):
        return None
    return step if isinstance(step, int) and not isinstance(step, bool) else None


def training_target(target: Path, out: Path | None) -> tuple[Path, Path | None]:
    """The recipe file `cyclegen run TARGET` trains and, for a run directory given instead,
    that directory (which then trains on in place)."""
    if not target.is_dir():
        return target, None
    if not (target / RUN_RECIPE).is_file():
        raise CycleGenError(
            f"{target} is a folder but not a run directory (it has no {RUN_RECIPE}); give a recipe "
            "file, or the run directory a run wrote"
        )
    if out is not None and Path(out).resolve() != target.resolve():
        raise CycleGenError(
            f"--out {out}: a run directory trains on in place; to train its recipe into another "
            f"directory, run cyclegen run {target / RUN_RECIPE} --out {out}"
        )
    return target / RUN_RECIPE, target


def set_aside(run_dir: Path) -> Path | None:
    """--fresh: move a used run directory to `<name>.replaced-<time>` beside it (never delete
    it) and return where; None when there is no run to move.

    The directory's lock is taken first, so a run still training there is not moved away.
    """
    if not any((run_dir / name).exists() for name in (RUN_RECIPE, CHECKPOINTS, LOG, IDENTITY)):
        return None
    aside = run_dir.with_name(f"{run_dir.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}")
    lock = RunLock(run_dir)
    with reported_write_failures(f"moving {run_dir} aside", "Nothing was moved or lost."):
        lock.acquire()
        try:
            run_dir.rename(aside)
        finally:
            lock.release()
    return aside
