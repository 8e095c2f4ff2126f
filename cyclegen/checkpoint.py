"""Checkpoints: a tree of state flattened into one safetensors file, written atomically.

The state is whatever nested `state_dict()` the caller hands over (see `cyclegen.state`):
dicts with string or integer keys, lists, tensors, numbers, strings, booleans and None.
Tensors become safetensors tensors named by their keys joined with dots
(`net.G.layers.0.weight`); everything else stays in a JSON skeleton in the file's metadata,
where each tensor is a reference to its name. No pickle. Tensors are saved contiguous and on
the CPU, so channels-last, compiled and GPU runs write interchangeable checkpoints.

Format 1 (the trainer's fields written one by one, sample histories keyed by their order) is
refused with a message rather than converted: its layout cannot say which history is whose.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes

from cyclegen.errors import CheckpointError, StateError, UnreadableCheckpointError
from cyclegen.state import State, Stateful

FORMAT = "cyclegen-checkpoint-2"
OLD_FORMATS = ("cyclegen-checkpoint-1",)
NAME = re.compile(r"^step-(\d+)\.safetensors$")
LATEST = "latest"
#: Skeleton markers: a tensor reference, and a dict whose keys are integers (optimiser states).
TENSOR = "__tensor__"
INT_KEYS = "__int_keys__"


@dataclass
class Checkpoint:
    path: Path
    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any]

    @property
    def step(self) -> int:
        return int(self.meta["step"])

    @cached_property
    def state(self) -> State:
        """The nested state that was saved, tensors in place."""
        try:
            return unflatten(self.meta["state"], self.tensors)
        except KeyError as exc:
            raise CheckpointError(f"checkpoint {self.path} is damaged: it lacks tensor {exc}") from None

    def load_into(self, part: Stateful) -> None:
        """`part.load_state_dict(self.state)`, naming this file in any mismatch."""
        try:
            part.load_state_dict(self.state)
        except StateError as exc:
            raise CheckpointError(
                f"{self.path}: {exc}. Was the recipe changed since this run started?"
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
    temporary file and rename, point `latest` at it, then prune all but the newest `keep`."""
    directory.mkdir(parents=True, exist_ok=True)
    tensors, skeleton = flatten(state)
    meta = {"format": FORMAT, "step": step, "state": skeleton, **info}
    path = directory / f"step-{step:09d}.safetensors"
    atomic_write(path, save_bytes(tensors, metadata={key: json.dumps(value) for key, value in meta.items()}))
    atomic_write(directory / LATEST, path.name.encode())
    for old in checkpoint_files(directory)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def checkpoint_files(directory: Path) -> list[Path]:
    """Checkpoint files in step order, oldest first."""
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def read_checkpoint(path: Path) -> Checkpoint:
    """Read one checkpoint, or raise CheckpointError saying what is wrong with it."""
    try:
        data = path.read_bytes()
        tensors = load_bytes(data)
        meta = {k: json.loads(v) for k, v in _metadata(data).items()}
    except (OSError, SafetensorError, ValueError) as exc:
        raise UnreadableCheckpointError(f"checkpoint {path} is unreadable (truncated or corrupt): {exc}") from None
    found = meta.get("format")
    if found in OLD_FORMATS:
        raise CheckpointError(
            f"{path} is in the old checkpoint format {found!r}, which this cyclegen no longer reads "
            f"(it reads {FORMAT!r}). The file is left as it is; its weights are the tensors named "
            "net.<network>.<parameter>. Continue that run with the cyclegen that wrote it, or train "
            "a new one with --out <new directory>."
        )
    if found != FORMAT:
        raise CheckpointError(f"{path} is not a cyclegen checkpoint (format {found!r})")
    return Checkpoint(path, tensors, meta)


def _metadata(data: bytes) -> dict[str, str]:
    """The metadata of safetensors bytes (the library reads it only from files)."""
    header_len = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + header_len]).get("__metadata__", {})


def latest_checkpoint(directory: Path, explicit: Path | None = None) -> Checkpoint | None:
    """The newest readable checkpoint; torn or corrupt newer ones are reported and skipped.

    A checkpoint of an old format stops the search instead: falling back past it would
    retrain the run from scratch into the same directory and prune the user's checkpoints.
    """
    if explicit is not None:
        return read_checkpoint(explicit)
    for path in reversed(checkpoint_files(directory)):
        try:
            return read_checkpoint(path)
        except UnreadableCheckpointError as exc:
            warnings.warn(f"{exc}; falling back to an earlier checkpoint", stacklevel=2)
    return None
