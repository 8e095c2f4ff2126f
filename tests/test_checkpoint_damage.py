"""Damaged, edited, hostile and foreign checkpoint files: detected, skipped with a one-line
notice for the previous checkpoint, or refused with a message; never a traceback, and never
a lost training log."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from safetensors.torch import load_file
from safetensors.torch import save as save_bytes
from typer.testing import CliRunner

from cyclegen.checkpoint import CHECKSUM, LATEST, checkpoint_files, checksum, latest_checkpoint, read_checkpoint
from cyclegen.cli import app
from cyclegen.errors import CheckpointError, UnreadableCheckpointError
from tests.conftest import aegan_data, write_recipe
from tests.test_run import train

STEP_20 = "step-000000020.safetensors"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of 20 steps with checkpoints at 10 and 20 and a log line every 5 steps, trained once."""
    root = tmp_path_factory.mktemp("trained")
    recipe = write_recipe(root, aegan_data(sample_every=0))
    train(recipe, root / "run")
    return root


@pytest.fixture
def run_dir(trained: Path, tmp_path: Path) -> Path:
    """A fresh copy of the trained run to damage."""
    shutil.copy(trained / "recipe.toml", tmp_path / "recipe.toml")
    return Path(shutil.copytree(trained / "run", tmp_path / "run"))


def header(path: Path) -> tuple[dict[str, Any], bytes]:
    data = path.read_bytes()
    length = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + length]), data[8 + length :]


def write_header(path: Path, head: dict[str, Any], body: bytes) -> None:
    encoded = json.dumps(head).encode()
    path.write_bytes(len(encoded).to_bytes(8, "little") + encoded + body)


def edit_metadata(path: Path, edit: Callable[[dict[str, str]], None], rehash: bool) -> None:
    """Edit the metadata strings in place; `rehash` recomputes the checksum, as a crafted file would."""
    head, body = header(path)
    edit(head["__metadata__"])
    if rehash:
        head["__metadata__"][CHECKSUM] = json.dumps(checksum(head["__metadata__"], load_file(path)))
    write_header(path, head, body)


def resume(run_dir: Path, *extra: str) -> Any:
    return CliRunner().invoke(app, ["run", str(run_dir.parent / "recipe.toml"), "--out", str(run_dir), *extra])


def logged_steps(run_dir: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_a_flipped_bit_in_the_tensor_data_is_detected_and_the_previous_checkpoint_used(run_dir: Path) -> None:
    newest = run_dir / "checkpoints" / STEP_20
    head, body = header(newest)
    flipped = bytearray(body)
    flipped[len(flipped) // 2] ^= 0x10
    write_header(newest, head, bytes(flipped))
    with pytest.raises(UnreadableCheckpointError, match="checksum does not match"):
        read_checkpoint(newest)
    result = resume(run_dir)
    assert result.exit_code == 0, result.output
    assert f"notice: {newest} is damaged: its checksum does not match its contents; using " \
        "step-000000010.safetensors (step 10) instead" in result.output
    assert "resuming from" in result.output and "(step 10)" in result.output
    assert logged_steps(run_dir) == [5, 10, 15, 20]
    assert read_checkpoint(newest).step == 20  # retrained and rewritten


def test_an_edit_to_the_state_skeleton_that_stays_valid_json_is_detected(run_dir: Path) -> None:
    newest = run_dir / "checkpoints" / STEP_20
    edit_metadata(newest, lambda meta: meta.update(state=meta["state"].replace("exp_avg", "exp_avx")), rehash=False)
    notices: list[str] = []
    found = latest_checkpoint(run_dir / "checkpoints", notify=notices.append)
    assert found is not None and found.step == 10
    assert "checksum does not match" in notices[0]


HOSTILE = {
    "step as a string": lambda meta: meta.update(step='"abc"'),
    "step far too large": lambda meta: meta.update(step="1.5e300"),
    "step missing": lambda meta: meta.pop("step"),
    "negative step": lambda meta: meta.update(step="-5"),
    "step that disagrees with the file name": lambda meta: meta.update(step="999999"),
    "nesting deeper than the parser allows": lambda meta: meta.update(plugins="[" * 100_000 + "]" * 100_000),
    "a tensor reference to nothing": lambda meta: meta.update(state=json.dumps({"step": 20, "x": {"__tensor__": "gone"}})),
    "malformed integer keys": lambda meta: meta.update(state=json.dumps({"step": 20, "x": {"__int_keys__": "ab"}})),
    "a state skeleton that is a list": lambda meta: meta.update(state="[1, 2]"),
}


@pytest.mark.parametrize("damage", HOSTILE, ids=list(HOSTILE))
def test_hostile_metadata_falls_back_without_losing_the_log(run_dir: Path, damage: str) -> None:
    """Crafted files carry a valid checksum, so the schema itself must catch each of these."""
    newest = run_dir / "checkpoints" / STEP_20
    edit_metadata(newest, HOSTILE[damage], rehash=True)
    with pytest.raises(UnreadableCheckpointError, match="is damaged|is unreadable"):
        read_checkpoint(newest)
    result = resume(run_dir, "--set", "train.steps=10")  # stop at the fallback: its log must survive
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output and "using step-000000010.safetensors (step 10)" in result.output
    assert logged_steps(run_dir) == [5, 10]


def test_a_crafted_file_whose_state_does_not_fit_is_refused_with_a_message(run_dir: Path) -> None:
    """A valid checksum over a random-state tensor of the wrong dtype: refused, not a traceback."""
    newest = run_dir / "checkpoints" / STEP_20
    tensors = load_file(newest)
    name = next(key for key in tensors if key.startswith("rng."))
    tensors[name] = tensors[name].float()
    head, _ = header(newest)
    meta = head["__metadata__"]
    meta[CHECKSUM] = json.dumps(checksum(meta, tensors))
    newest.write_bytes(save_bytes(tensors, metadata=meta))
    result = resume(run_dir)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "passed its checksum but its state does not fit this run" in result.output
    assert logged_steps(run_dir) == [5, 10, 15, 20]


def test_no_readable_checkpoint_among_several_is_refused_and_the_files_kept(run_dir: Path) -> None:
    for path in checkpoint_files(run_dir / "checkpoints"):
        path.write_bytes(path.read_bytes()[:100])
    kept = {p.name: p.read_bytes() for p in checkpoint_files(run_dir / "checkpoints")}
    with pytest.raises(CheckpointError, match="no checkpoint in .* can be read"):
        latest_checkpoint(run_dir / "checkpoints")
    result = resume(run_dir)
    assert result.exit_code == 1 and "move them away to train this run again" in result.output
    assert {p.name: p.read_bytes() for p in checkpoint_files(run_dir / "checkpoints")} == kept
    assert logged_steps(run_dir) == [5, 10, 15, 20]


def test_a_checkpoint_of_another_run_is_refused(run_dir: Path, tmp_path: Path) -> None:
    """Same recipe, another seed, renamed into this run's directory: refused, not resumed."""
    other = tmp_path / "other"
    train(run_dir.parent / "recipe.toml", other, ["seed=4", "train.steps=30", "train.checkpoint_every=30"])
    shutil.copy(other / "checkpoints" / "step-000000030.safetensors", run_dir / "checkpoints")
    result = resume(run_dir, "--set", "train.steps=40")
    assert result.exit_code == 1, result.output
    assert "was written by another run" in result.output and "run.json" in result.output


def test_a_kill_between_the_checkpoint_and_its_pointer_is_repaired_on_resume(run_dir: Path) -> None:
    """`latest` naming an older file and one file too many, as a kill mid-save leaves them."""
    checkpoints = run_dir / "checkpoints"
    (checkpoints / LATEST).write_text("step-000000010.safetensors")
    shutil.copy(checkpoints / "step-000000010.safetensors", checkpoints / "step-000000005.safetensors")
    result = resume(run_dir, "--set", "train.keep_checkpoints=2")
    assert result.exit_code == 0, result.output
    assert "already reached train.steps = 20; nothing to train" in result.output
    assert (checkpoints / LATEST).read_text() == STEP_20
    assert [p.name for p in checkpoint_files(checkpoints)] == ["step-000000010.safetensors", STEP_20]


def test_a_torn_last_log_line_does_not_block_resume(run_dir: Path) -> None:
    """A kill during a log write leaves half a line; the resumed log has every step once."""
    (run_dir / "checkpoints" / STEP_20).unlink()
    with open(run_dir / "metrics.jsonl", "a") as log:
        log.write('{"step": 25, "time": 17')
    result = resume(run_dir)
    assert result.exit_code == 0, result.output
    assert logged_steps(run_dir) == [5, 10, 15, 20]



def test_commands_on_a_run_say_which_checkpoint_they_use(run_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["sample", str(run_dir), "-n", "8", "--out", str(tmp_path / "s.png")])
    assert result.exit_code == 0, result.output
    assert f"using {run_dir / 'checkpoints' / STEP_20} (step 20)" in result.output
    newest = run_dir / "checkpoints" / STEP_20
    newest.write_bytes(newest.read_bytes()[:-10])
    result = runner.invoke(app, ["eval", str(run_dir), "--samples", "50"])
    assert result.exit_code == 0, result.output
    assert "is unreadable" in result.output and "using step-000000010.safetensors (step 10) instead" in result.output
    assert "step-000000010.safetensors (step 10)" in result.output
