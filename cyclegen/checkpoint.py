"""Checkpoints: safetensors files written atomically, holding everything a resume needs.

A checkpoint stores weights, optimiser states, the step and every random stream, so that
resuming continues bit for bit. Non-tensor state (optimiser hyperparameters, the fp16
gradient scalers, plugin versions, the resolved recipe) lives in the safetensors metadata as
JSON. No pickle. Tensors are saved contiguous, so channels-last and compiled runs write the
same checkpoints as default ones.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes

from cyclegen.distributed import seed_rank, set_process_rng
from cyclegen.errors import CheckpointError
from cyclegen.trainer import Trainer

FORMAT = "cyclegen-checkpoint-1"
NAME = re.compile(r"^step-(\d+)\.safetensors$")
LATEST = "latest"


@dataclass
class Checkpoint:
    path: Path
    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any]

    @property
    def step(self) -> int:
        return int(self.meta["step"])


def trainer_state(
    trainer: Trainer, extra_meta: dict[str, Any], other_ranks: list[dict[str, torch.Tensor]] = ()
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Everything a resume needs; `other_ranks` holds the random streams of ranks 1.. under torchrun."""
    tensors: dict[str, torch.Tensor] = {}
    for name, net in trainer.graph.networks.items():
        for key, value in net.state_dict().items():
            tensors[f"net.{name}.{key}"] = value
    param_groups: dict[str, Any] = {}
    for group in trainer.groups:
        state = group.optimizer.state_dict()
        param_groups[group.name] = state["param_groups"]
        for index, entries in state["state"].items():
            for key, value in entries.items():
                tensors[f"optim.{group.name}.{index}.{key}"] = torch.as_tensor(value)
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and trainer.device.type == "cuda":
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = state
    for rank, states in enumerate(other_ranks, start=1):
        for key, value in states.items():
            tensors[f"rng.rank{rank}.{key}"] = value
    for name, generator in trainer.generators.items():
        tensors[f"rng.domain.{name}"] = generator.get_state()
    for index, history in enumerate(trainer.histories.values()):
        for key, value in history.state().items():
            tensors[f"history.{index}.{key}"] = value
    meta = {
        "format": FORMAT,
        "step": trainer.step_count,
        "optim_param_groups": param_groups,
        "grad_scalers": {name: scaler.state_dict() for name, scaler in trainer.scalers.items()},
        **extra_meta,
    }
    cpu = {k: v.detach().to("cpu").clone().contiguous() for k, v in tensors.items()}
    return cpu, {k: json.dumps(v) for k, v in meta.items()}


def save_checkpoint(
    directory: Path,
    trainer: Trainer,
    extra_meta: dict[str, Any],
    keep: int,
    other_ranks: list[dict[str, torch.Tensor]] = (),
) -> Path:
    """Write `step-N.safetensors` via a temporary file and rename, then prune old ones."""
    directory.mkdir(parents=True, exist_ok=True)
    tensors, meta = trainer_state(trainer, extra_meta, other_ranks)
    path = directory / f"step-{trainer.step_count:09d}.safetensors"
    atomic_write(path, save_bytes(tensors, metadata=meta))
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
        raise CheckpointError(f"checkpoint {path} is unreadable (truncated or corrupt): {exc}") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a cyclegen checkpoint (format {meta.get('format')!r})")
    return Checkpoint(path, tensors, meta)


def _metadata(data: bytes) -> dict[str, str]:
    """The metadata of safetensors bytes (the library reads it only from files)."""
    header_len = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + header_len]).get("__metadata__", {})


def latest_checkpoint(directory: Path, explicit: Path | None = None) -> Checkpoint | None:
    """The newest readable checkpoint; unreadable newer ones are reported and skipped."""
    if explicit is not None:
        return read_checkpoint(explicit)
    candidates = list(reversed(checkpoint_files(directory)))
    for path in candidates:
        try:
            return read_checkpoint(path)
        except CheckpointError as exc:
            warnings.warn(f"{exc}; falling back to an earlier checkpoint", stacklevel=2)
    return None


def restore(trainer: Trainer, checkpoint: Checkpoint) -> None:
    """Load weights, optimiser states, step and random streams into `trainer`."""
    tensors = checkpoint.tensors
    load_weights(trainer.graph.networks, checkpoint)
    param_groups = checkpoint.meta["optim_param_groups"]
    for group in trainer.groups:
        prefix = f"optim.{group.name}."
        if group.name not in param_groups:
            raise CheckpointError(f"{checkpoint.path}: holds no state for optimiser group {group.name!r}")
        state: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith(prefix):
                index, entry = key[len(prefix) :].split(".", 1)
                state.setdefault(int(index), {})[entry] = value
        group.optimizer.load_state_dict({"state": state, "param_groups": param_groups[group.name]})
    restore_scalers(trainer, checkpoint)
    torch.set_rng_state(tensors["rng.torch"])
    cuda_states = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
    if cuda_states and trainer.device.type == "cuda":
        torch.cuda.set_rng_state_all(cuda_states)
    if trainer.ranks.rank:
        restore_rank_rng(trainer, checkpoint)
    for name, generator in trainer.generators.items():
        generator.set_state(tensors[f"rng.domain.{name}"])
    for index, history in enumerate(trainer.histories.values()):
        prefix = f"history.{index}."
        state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        if "generator" not in state:
            raise CheckpointError(f"{checkpoint.path}: holds no sample history for critic history {index}")
        history.load(state, trainer.device)
    trainer.step_count = checkpoint.step


def restore_rank_rng(trainer: Trainer, checkpoint: Checkpoint) -> None:
    """A rank > 0 takes back its own noise stream; from a checkpoint saved by fewer
    processes it starts a fresh one, derived from the seed, its rank and the step."""
    prefix = f"rng.rank{trainer.ranks.rank}."
    states = {k[len(prefix) :]: v for k, v in checkpoint.tensors.items() if k.startswith(prefix)}
    if states:
        set_process_rng(states, trainer.device)
    else:
        seed_rank(trainer.recipe.seed, trainer.ranks.rank, checkpoint.step)


def restore_scalers(trainer: Trainer, checkpoint: Checkpoint) -> None:
    """Load the fp16 gradient scalers' scales and growth counters, so resume stays exact.

    A checkpoint of a run in another precision has none for this trainer's scalers; they then
    start afresh, as precision may change between runs (checkpoints are interchangeable).
    """
    saved = checkpoint.meta.get("grad_scalers", {})
    for name, scaler in trainer.scalers.items():
        if name in saved:
            scaler.load_state_dict(saved[name])


def load_weights(networks: dict[str, torch.nn.Module], checkpoint: Checkpoint) -> None:
    """Load only the network weights (for commands that use a trained model)."""
    for name, net in networks.items():
        prefix = f"net.{name}."
        state = {k[len(prefix) :]: v for k, v in checkpoint.tensors.items() if k.startswith(prefix)}
        try:
            net.load_state_dict(state)
        except RuntimeError as exc:
            raise CheckpointError(
                f"{checkpoint.path}: network {name!r} does not match the recipe ({exc}). "
                "Was the recipe changed since this run started?"
            ) from None
