"""Checkpoints: a tree of state flattened into one safetensors file, written atomically and
verified when read.

The state is whatever nested `state_dict()` the caller hands over (see `cyclegen.state`):
dicts with string or integer keys, lists, tensors, numbers, strings, booleans and None.
Tensors become safetensors tensors named by their keys joined with dots
(`net.G.layers.0.weight`); everything else stays in a JSON skeleton in the file's metadata,
where each tensor is a reference to its name. No pickle. Tensors are saved contiguous and on
the CPU, so channels-last, compiled and GPU runs write interchangeable checkpoints.

Every file carries a SHA-256 of its metadata and tensors. A file that is torn, bit-flipped,
edited or otherwise fails the checks of `read_checkpoint` is *unreadable*: a run falls back
to the previous checkpoint with a one-line notice. Formats 1 and 2 (without checksums;
format 1 also keyed sample histories by their order) are refused with a message rather than
read unverified or converted.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes

from cyclegen.errors import CheckpointError, StateError, UnreadableCheckpointError
from cyclegen.files import atomic_write
from cyclegen.state import State, Stateful

FORMAT = "cyclegen-checkpoint-3"
OLD_FORMATS = ("cyclegen-checkpoint-1", "cyclegen-checkpoint-2")
NAME = re.compile(r"^step-(\d+)\.safetensors$")
LATEST = "latest"
#: The checkpoint of the best evaluation during training (`train.best`); pruning leaves it alone.
BEST = "best.safetensors"
CHECKSUM = "checksum"
#: Metadata every checkpoint holds, and the JSON type of each; `run` is optional.
REQUIRED = {"format": str, "step": int, "state": dict}
#: Receives one-line notices (a checkpoint skipped, and why).
Notify = Callable[[str], None]
#: Skeleton markers: a tensor reference, and a dict whose keys are integers (optimiser states).
TENSOR = "__tensor__"
INT_KEYS = "__int_keys__"


@dataclass
class Checkpoint:
    """A verified checkpoint file: its tensors, metadata and the nested state they form."""

    path: Path
    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any]
    state: State

    @property
    def step(self) -> int:
        return int(self.meta["step"])

    @property
    def run(self) -> str | None:
        """The identity of the run that wrote it, if the writer gave one (`cyclegen.run` does)."""
        return self.meta.get("run")

    def load_into(self, part: Stateful) -> None:
        """`part.load_state_dict(self.state)`, naming this file in any mismatch."""
        try:
            part.load_state_dict(self.state)
        except StateError as exc:
            raise CheckpointError(
                f"{self.path}: {exc}. Was the recipe changed since this run started?"
            ) from None
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as exc:
            # Verified files are the ones cyclegen wrote, so this is a crafted file or another version's.
            raise CheckpointError(
                f"{self.path} passed its checksum but its state does not fit this run "
                f"({type(exc).__name__}: {exc}); was it written by another cyclegen version?"
            ) from None


def flatten(state: Any) -> tuple[dict[str, torch.Tensor], Any]:
    """(tensors by dotted name, JSON-able skeleton referring to them) of a nested state."""
    tensors: dict[str, torch.Tensor] = {}

    def walk(node: Any, keys: tuple[str, ...]) -> Any:
        if isinstance(node, torch.Tensor):
            name = ".".join(keys)
            if name in tensors:
                raise ValueError(f"two tensors of the state flatten to the name {name!r}")
            tensors[name] = node.detach().to("cpu").contiguous()
            return {TENSOR: name}
        if isinstance(node, dict):
            if all(isinstance(key, str) for key in node):
                if TENSOR in node or INT_KEYS in node:
                    raise ValueError(f"state key at {'.'.join(keys)!r} uses a reserved name")
                return {key: walk(value, (*keys, key)) for key, value in node.items()}
            if all(isinstance(key, int) for key in node):
                return {INT_KEYS: [[key, walk(value, (*keys, str(key)))] for key, value in node.items()]}
            raise TypeError(f"state at {'.'.join(keys)!r} mixes key types; use str or int keys")
        if isinstance(node, (list, tuple)):
            return [walk(value, (*keys, str(i))) for i, value in enumerate(node)]
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        raise TypeError(f"cannot store a {type(node).__name__} at {'.'.join(keys)!r} in a checkpoint")

    return tensors, walk(state, ())


def unflatten(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """The nested state that `flatten` produced `skeleton` and `tensors` from."""
    if isinstance(skeleton, dict):
        if skeleton.keys() == {TENSOR}:
            return tensors[skeleton[TENSOR]]
        if skeleton.keys() == {INT_KEYS}:
            return {int(key): unflatten(value, tensors) for key, value in skeleton[INT_KEYS]}
        return {key: unflatten(value, tensors) for key, value in skeleton.items()}
    if isinstance(skeleton, list):
        return [unflatten(value, tensors) for value in skeleton]
    return skeleton


def save_checkpoint(directory: Path, step: int, state: State, info: dict[str, Any], keep: int) -> Path:
    """Write `step-N.safetensors` (the state, plus descriptive `info` in its metadata) via a
    temporary file and rename, point `latest` at it, then prune all but the newest `keep`:
    at most `keep` + 1 files exist at any moment."""
    path = write_checkpoint(directory / f"step-{step:09d}.safetensors", step, state, info)
    point_latest(directory, path)
    prune(directory, keep)
    return path


def write_checkpoint(path: Path, step: int, state: State, info: dict[str, Any]) -> Path:
    """Write one checkpoint file atomically (a temporary file, then a rename), with its checksum."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors, skeleton = flatten(state)
    meta = {key: json.dumps(value) for key, value in {"format": FORMAT, "step": step, "state": skeleton, **info}.items()}
    meta[CHECKSUM] = json.dumps(checksum(meta, tensors))
    atomic_write(path, save_bytes(tensors, metadata=meta))
    return path


def state_bytes(state: State) -> int:
    """The size of the tensors of `state`: about what its checkpoint file takes."""
    return sum(t.numel() * t.element_size() for t in flatten(state)[0].values())


def checksum(meta: dict[str, str], tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 of the stored metadata strings and of every tensor's name, dtype, shape and bytes."""
    digest = hashlib.sha256()
    for key in sorted(meta):
        if key != CHECKSUM:
            digest.update(json.dumps([key, meta[key]]).encode())
    for name in sorted(tensors):
        tensor = tensors[name]
        digest.update(json.dumps([name, str(tensor.dtype), list(tensor.shape)]).encode())
        digest.update(tensor.contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def point_latest(directory: Path, path: Path) -> None:
    """Make `checkpoints/latest` name `path` (a convenience for people: readers scan the files)."""
    atomic_write(directory / LATEST, path.name.encode())


def prune(directory: Path, keep: int) -> None:
    """Delete all but the newest `keep` checkpoint files."""
    for old in checkpoint_files(directory)[:-keep]:
        old.unlink(missing_ok=True)


def checkpoint_files(directory: Path) -> list[Path]:
    """Checkpoint files in step order, oldest first."""
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def read_checkpoint(path: Path) -> Checkpoint:
    """Read and verify one checkpoint, or raise CheckpointError saying what is wrong with it:
    UnreadableCheckpointError for any damage (torn, bit flips, edits, hostile metadata)."""
    try:
        data = path.read_bytes()
        tensors = load_bytes(data)
        stored = _metadata(data)
        meta = {key: json.loads(value) for key, value in stored.items()}
    except (OSError, SafetensorError, ValueError, TypeError, RecursionError) as exc:
        raise UnreadableCheckpointError(f"{path} is unreadable (truncated or corrupt: {_short(exc)})") from None
    found = meta.get("format")
    if found in OLD_FORMATS:
        raise CheckpointError(
            f"{path} is in the old checkpoint format {found!r}, which this cyclegen no longer reads "
            f"(it reads {FORMAT!r}). The file is left as it is; its weights are the tensors named "
            "net.<network>.<parameter>. Continue that run with the cyclegen that wrote it, or train "
            "a new one with --out <new directory>."
        )
    if found != FORMAT:
        raise UnreadableCheckpointError(f"{path} is not a cyclegen checkpoint (format {found!r})")
    if meta.get(CHECKSUM) != checksum(stored, tensors):
        raise UnreadableCheckpointError(f"{path} is damaged: its checksum does not match its contents")
    _check_schema(path, meta)
    try:
        state = unflatten(meta["state"], tensors)
    except (KeyError, TypeError, ValueError, RecursionError) as exc:
        raise UnreadableCheckpointError(f"{path} is damaged: its state skeleton is malformed ({_short(exc)})") from None
    if state.get("step", meta["step"]) != meta["step"]:
        raise UnreadableCheckpointError(f"{path} is damaged: its state and its metadata disagree on the step")
    return Checkpoint(path, tensors, meta, state)


def _check_schema(path: Path, meta: dict[str, Any]) -> None:
    """The metadata every checkpoint needs, of the right types, its step agreeing with its name."""
    for key, kind in REQUIRED.items():
        value = meta.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise UnreadableCheckpointError(
                f"{path} is damaged: metadata {key!r} should be a {kind.__name__}, found {_short(value)}"
            )
    if not isinstance(meta.get("run", ""), str):
        raise UnreadableCheckpointError(f"{path} is damaged: metadata 'run' should be a str")
    step = meta["step"]
    named = NAME.match(path.name)
    if step < 0 or (named is not None and int(named.group(1)) != step):
        raise UnreadableCheckpointError(f"{path} is damaged: it claims step {step}, which its file name does not")


def _short(value: object, limit: int = 80) -> str:
    text = repr(value) if not isinstance(value, BaseException) else str(value) or type(value).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _metadata(data: bytes) -> dict[str, str]:
    """The metadata of safetensors bytes (the library reads it only from files)."""
    header_len = int.from_bytes(data[:8], "little")
    metadata = json.loads(data[8 : 8 + header_len]).get("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ValueError("the metadata is not a table of strings")
    return metadata


def notice_to_stderr(message: str) -> None:
    print(f"notice: {message}", file=sys.stderr)


def latest_checkpoint(directory: Path, explicit: Path | None = None, notify: Notify = notice_to_stderr) -> Checkpoint | None:
    """The newest readable checkpoint; damaged newer ones are skipped with a notice.

    A checkpoint of an old format stops the search instead, and so does finding no readable
    checkpoint among several files: falling back to a fresh start would retrain the run into
    the same directory and prune the user's checkpoints.
    """
    if explicit is not None:
        return read_checkpoint(explicit)
    files = checkpoint_files(directory)
    damaged = []
    for path in reversed(files):
        try:
            found = read_checkpoint(path)
        except UnreadableCheckpointError as exc:
            damaged.append(str(exc))
            continue
        if damaged:
            notify(f"{'; '.join(damaged)}; using {path.name} (step {found.step}) instead")
        return found
    if files:
        raise CheckpointError(
            f"no checkpoint in {directory} can be read ({'; '.join(damaged)}). They are left as they are; "
            "move them away to train this run again from the start, or train into another --out."
        )
    return None
