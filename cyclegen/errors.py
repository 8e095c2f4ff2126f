"""Errors a user can act on: each message names the problem and the fix."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable


class CycleGenError(Exception):
    """Base for errors that the CLI prints without a traceback."""


class RecipeError(CycleGenError):
    """A recipe that cannot be trained: unknown names, bad paths, bad options."""


class PluginError(CycleGenError):
    """A plugin that failed to load or registered something inconsistent."""


class CheckpointError(CycleGenError):
    """A checkpoint that cannot be read or does not match the recipe."""


class UnreadableCheckpointError(CheckpointError):
    """A torn or corrupt checkpoint file: a run falls back to the previous one."""


class StateError(CycleGenError):
    """Saved state that does not fit the part loading it; `path` names where, key by key."""

    def __init__(self, problem: str, path: tuple[str, ...] = ()) -> None:
        self.problem = problem
        self.path = path
        super().__init__(f"{'.'.join(path)}: {problem}" if path else problem)

    def within(self, name: str) -> "StateError":
        """The same error, seen from the part that holds this one under `name`."""
        return StateError(self.problem, (name, *self.path))


class NonFiniteLossError(CycleGenError):
    """Training produced NaN or infinity, in a loss or in the weights an update left."""


class Interrupted(KeyboardInterrupt):
    """A stop signal that cut work short at once; `saved` says what is safe."""

    def __init__(self, signum: int, saved: str) -> None:
        self.signum = signum
        self.saved = saved
        super().__init__(f"signal {signum}: {saved}")


class WriteFailedError(CycleGenError):
    """The run directory could not be written (disk full, a file size limit, read-only)."""


class RunInUseError(CycleGenError):
    """Another process is training into the same run directory."""


def closest(name: str, choices: Iterable[str]) -> str | None:
    """The most similar choice to `name`, if any is similar enough to suggest."""
    matches = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return matches[0] if matches else None


def unknown_name_message(what: str, name: str, choices: Iterable[str]) -> str:
    """'unknown X 'name'; did you mean 'y'? available: a, b, c'."""
    choices = sorted(choices)
    guess = closest(name, choices)
    hint = f"; did you mean {guess!r}?" if guess else ""
    available = ", ".join(choices) if choices else "(none)"
    return f"unknown {what} {name!r}{hint} Available: {available}"


#: What PyTorch's and Python's allocators say when an allocation cannot be served.
OUT_OF_MEMORY = ("out of memory", "can't allocate memory", "not enough memory")


def out_of_memory_message(exc: BaseException) -> str | None:
    """A message with the fix for an allocation that could not fit (None for other errors)."""
    text = str(exc)
    if not isinstance(exc, MemoryError) and not any(sign in text.lower() for sign in OUT_OF_MEMORY):
        return None
    asked = re.search(r"allocate (\d+) bytes", text)
    if asked:
        detail = f"could not allocate {int(asked.group(1)) / 2**30:.2f} GiB"
    else:
        detail = text.splitlines()[0] if text else type(exc).__name__
    return (
        f"out of memory: {detail}. Lower train.batch_size or the networks' sizes (widths, depths), "
        "or train on a device with more memory."
    )
