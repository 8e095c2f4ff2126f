"""Shared fixtures: tiny recipes that train in a fraction of a second per step."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cyclegen.toml_writer import dumps

SMALL_NET = {"type": "mlp", "hidden": 16, "depth": 1}

#: Real faces for the few tests that need them: a zip or folder of face pictures (64x64 or
#: larger), by default the project's shared copy beside the repository (README, Development).
SHARED_FACES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "anime-faces-64.zip"
SHARED_ZIP = Path(os.environ.get("CYCLEGEN_TEST_FACES") or SHARED_FACES)
#: Why a test that needs them is skipped.
NO_FACES = (f"needs real faces at {SHARED_ZIP} (absent on a fresh clone; set CYCLEGEN_TEST_FACES to a zip or "
            "folder of faces)")
#: Real MNIST for the Stacked MNIST tests that need it: the usual mnist.npz, by default the shared copy.
SHARED_MNIST_NPZ = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist.npz"
SHARED_MNIST = Path(os.environ.get("CYCLEGEN_TEST_MNIST") or SHARED_MNIST_NPZ)
NO_MNIST = (f"needs real MNIST at {SHARED_MNIST} (absent on a fresh clone; set CYCLEGEN_TEST_MNIST to an "
            "mnist.npz)")

AEGAN_TERMS = [
    {"critic": "Dx", "path": "z -> G"},
    {"critic": "Dx", "path": "x -> E -> G"},
    {"critic": "Dz", "path": "x -> E"},
    {"critic": "Dz", "path": "z -> G -> E"},
    {"path": "x -> E -> G", "loss": "l1", "weight": 10.0},
    {"path": "z -> G -> E", "loss": "l2", "weight": 5.0},
]


def aegan_data(**train: Any) -> dict[str, Any]:
    """A tiny AEGAN on the 2-D grid, as recipe data."""
    return {
        "name": "tiny-aegan",
        "seed": 3,
        "train": {
            "steps": 20,
            "batch_size": 32,
            "device": "cpu",
            "log_every": 5,
            "sample_every": 10,
            "checkpoint_every": 10,
            "sample_count": 50,
            **train,
        },
        "domains": {"x": {"type": "grid"}, "z": {"type": "gaussian", "dim": 3}},
        "mappers": {
            "G": {**SMALL_NET, "from": "z", "to": "x"},
            "E": {**SMALL_NET, "from": "x", "to": "z"},
        },
        "critics": {"Dx": {**SMALL_NET, "domain": "x"}, "Dz": {**SMALL_NET, "domain": "z"}},
        "adversarial": {"loss": "bce", "label_smoothing": 0.05},
        "terms": copy.deepcopy(AEGAN_TERMS),
        "optim": {
            "mappers": {"networks": ["G", "E"], "lr": 1e-3, "clip": {"per_tensor": 1.0}},
            "image_critic": {"networks": ["Dx"], "lr": 1e-3},
            "latent_critic": {"networks": ["Dz"], "lr": 1e-3},
        },
        "eval": {"samples": 200},
    }


def with_ema(data: dict[str, Any], *mappers: str, half_life: int = 64, warmup: float = 0.05) -> dict[str, Any]:
    """`data` with an `[ema]` section averaging `mappers` (default: every mapper)."""
    return {**data, "ema": {"mappers": list(mappers or data["mappers"]), "half_life": half_life, "warmup": warmup}}


def write_recipe(directory: Path, data: dict[str, Any], name: str = "recipe.toml") -> Path:
    path = directory / name
    path.write_text(dumps(data))
    return path


@pytest.fixture
def aegan_recipe(tmp_path: Path) -> Path:
    return write_recipe(tmp_path, aegan_data())


CYCLEGAN_TERMS = [
    {"critic": "Db", "path": "a -> F"},
    {"critic": "Da", "path": "b -> H"},
    {"path": "a -> F -> H", "loss": "l1", "weight": 10.0},
    {"path": "b -> H -> F", "loss": "l1", "weight": 10.0},
    {"kind": "identity", "path": "a -> H", "loss": "l1", "weight": 5.0},
    {"kind": "identity", "path": "b -> F", "loss": "l1", "weight": 5.0},
]


def cyclegan_data(**train: Any) -> dict[str, Any]:
    """A tiny CycleGAN between the 2-D ring and grid (two unpaired data domains), as recipe data."""
    return {
        "name": "tiny-cyclegan",
        "seed": 5,
        "train": {"steps": 12, "batch_size": 16, "device": "cpu", "log_every": 4, "sample_every": 0,
                  "checkpoint_every": 6, "sample_count": 20, **train},
        "domains": {"a": {"type": "ring"}, "b": {"type": "grid"}},
        "mappers": {"F": {**SMALL_NET, "from": "a", "to": "b"}, "H": {**SMALL_NET, "from": "b", "to": "a"}},
        "critics": {
            "Da": {**SMALL_NET, "domain": "a", "history": 8},
            "Db": {**SMALL_NET, "domain": "b", "history": 8},
        },
        "adversarial": {"loss": "lsgan"},
        "terms": copy.deepcopy(CYCLEGAN_TERMS),
        "optim": {
            "mappers": {"networks": ["F", "H"], "lr": 1e-3,
                        "lr_schedule": {"type": "linear-decay", "decay_start": 6}},
            "critics": {"networks": ["Da", "Db"], "lr": 1e-3,
                        "lr_schedule": {"type": "linear-decay", "decay_start": 6}},
        },
        "eval": {"samples": 50},
    }


def interrupt_at_step(args: list[str], step: int, cwd: Path | None = None) -> tuple[int, str]:
    """Run `cyclegen ARGS` with its output piped, press Ctrl-C (a real SIGINT) once it prints
    step `step`, and return its exit status and whole output."""
    process = subprocess.Popen(
        [sys.executable, "-m", "cyclegen", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "COLUMNS": "200"}, cwd=cwd,
    )
    assert process.stdout is not None
    shown = []
    for line in process.stdout:
        shown.append(line)
        if line.startswith(f"step {step}/"):
            break
    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=60)
    return process.returncode, "".join(shown) + rest
