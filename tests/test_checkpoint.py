"""Checkpoints: nested state flattened and read back, atomic files, torn and old-format files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save as save_bytes
from typer.testing import CliRunner

from cyclegen.checkpoint import checkpoint_files, flatten, latest_checkpoint, read_checkpoint, save_checkpoint
from cyclegen.cli import app
from cyclegen.errors import CheckpointError
from cyclegen.experiment import open_recipe
from cyclegen.graph import WEIGHTS_KEY
from cyclegen.state import Parts
from tests.test_run import train


def test_only_the_last_checkpoints_are_kept(tmp_path: Path, aegan_recipe: Path) -> None:
    run_dir = tmp_path / "run"
    train(aegan_recipe, run_dir, ["train.checkpoint_every=2", "train.keep_checkpoints=2"])
    assert [p.name for p in checkpoint_files(run_dir / "checkpoints")] == [
        "step-000000018.safetensors",
        "step-000000020.safetensors",
    ]


def test_truncated_checkpoint_is_reported_and_the_previous_one_used(tmp_path: Path, aegan_recipe: Path) -> None:
    run_dir = tmp_path / "run"
    train(aegan_recipe, run_dir)
    newest = run_dir / "checkpoints" / "step-000000020.safetensors"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="unreadable"):
        read_checkpoint(newest)
    notices: list[str] = []
    found = latest_checkpoint(run_dir / "checkpoints", notify=notices.append)
    assert found is not None and found.step == 10
    assert len(notices) == 1 and "step-000000020.safetensors is unreadable" in notices[0]
    assert notices[0].endswith("using step-000000010.safetensors (step 10) instead")
    resumed = train(aegan_recipe, run_dir)
    assert resumed.trainer.step_count == 20
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == [5, 10, 15, 20]  # the log of steps 11-20 was replaced, not duplicated


class Counter:
    """A stateful part the engine has never heard of: it only implements the two methods."""

    def __init__(self) -> None:
        self.count = 0
        self.history = torch.zeros(3)

    def state_dict(self) -> dict:
        return {"count": self.count, "history": self.history}

    def load_state_dict(self, state: dict) -> None:
        self.count, self.history = state["count"], state["history"]


def test_nested_state_round_trips_through_a_file(tmp_path: Path) -> None:
    state = {
        "net": {"G": {"layer.weight": torch.randn(2, 3, 4, 4).to(memory_format=torch.channels_last)}},
        "optim": {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.randn(5)[::2]}}, "groups": [{"lr": 1e-3, "betas": [0.5, 0.999], "foreach": None, "fused": True}]},
        "scale": float("inf"),
        "name": "x",
        "empty": {},
    }
    path = save_checkpoint(tmp_path, 7, state, {"recipe": {"name": "r"}}, keep=3)
    loaded = read_checkpoint(path)
    assert loaded.step == 7 and loaded.meta["recipe"] == {"name": "r"}
    back = loaded.state
    assert list(back["optim"]["state"]) == [0]  # integer keys stay integers, as optimisers need
    assert torch.equal(back["optim"]["state"][0]["exp_avg"], state["optim"]["state"][0]["exp_avg"])
    assert torch.equal(back["net"]["G"]["layer.weight"], state["net"]["G"]["layer.weight"])
    assert back["optim"]["groups"] == state["optim"]["groups"] and back["scale"] == float("inf")
    assert back["name"] == "x" and back["empty"] == {}
    assert "net.G.layer.weight" in loaded.tensors and "optim.state.0.step" in loaded.tensors


def test_state_that_cannot_be_stored_is_refused_before_writing(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="cannot store a set at 'a.b'"):
        flatten({"a": {"b": {1, 2}}})
    with pytest.raises(ValueError, match="flatten to the name 'a.b'"):
        flatten({"a.b": torch.zeros(1), "a": {"b": torch.zeros(1)}})
    with pytest.raises(TypeError, match="mixes key types"):
        flatten({"a": {1: 0, "x": 1}})


def test_a_new_stateful_part_needs_no_checkpoint_code(tmp_path: Path) -> None:
    saved = Counter()
    saved.count, saved.history = 4, torch.arange(3.0)
    parts = Parts({"counter": saved})
    path = save_checkpoint(tmp_path, 1, parts.state_dict(), {}, keep=1)
    restored = Parts({"counter": Counter()})
    read_checkpoint(path).load_into(restored)
    assert restored["counter"].count == 4 and torch.equal(restored["counter"].history, saved.history)
    with pytest.raises(CheckpointError, match=r"other: no saved state for this part"):
        read_checkpoint(path).load_into(Parts({"counter": Counter(), "other": Counter()}))


def test_a_checkpoint_of_other_networks_names_the_network(tmp_path: Path, aegan_recipe: Path) -> None:
    run_dir = tmp_path / "run"
    train(aegan_recipe, run_dir, ["train.steps=2", "train.checkpoint_every=2"])
    other = open_recipe(aegan_recipe, ["mappers.G.hidden=8"])
    with pytest.raises(CheckpointError, match=r"step-000000002.safetensors: net.G: the saved weights do not match"):
        latest_checkpoint(run_dir / "checkpoints").load_into(Parts({WEIGHTS_KEY: other.graph}))


def write_format_1(path: Path) -> bytes:
    """A checkpoint as cyclegen wrote them before state dicts: fields one by one."""
    meta = {"format": "cyclegen-checkpoint-1", "step": 10, "optim_param_groups": {}, "grad_scalers": {}}
    data = save_bytes({"net.G.net.0.weight": torch.zeros(2, 2), "rng.torch": torch.get_rng_state()},
                      metadata={k: json.dumps(v) for k, v in meta.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def test_old_format_checkpoints_are_refused_and_kept(tmp_path: Path, aegan_recipe: Path) -> None:
    run_dir = tmp_path / "run"
    train(aegan_recipe, run_dir, ["train.steps=0"])
    old = run_dir / "checkpoints" / "step-000000010.safetensors"
    data = write_format_1(old)
    with pytest.raises(CheckpointError, match="old checkpoint format 'cyclegen-checkpoint-1'.*--out <new directory>"):
        latest_checkpoint(run_dir / "checkpoints")  # no fallback to a fresh start over the user's files
    result = CliRunner().invoke(app, ["run", str(aegan_recipe), "--out", str(run_dir)])
    assert result.exit_code == 1 and "old checkpoint format" in result.output
    result = CliRunner().invoke(app, ["sample", str(run_dir), "--out", str(tmp_path / "s.png")])
    assert result.exit_code == 1 and "old checkpoint format" in result.output
    assert old.read_bytes() == data
