"""Evaluations during training (`train.eval_every`): eval lines in metrics.jsonl, an undisturbed
training, and the `best` checkpoint that `train.best` keeps beside the newest ones."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import cyclegen
from cyclegen.checkpoint import checkpoint_files, read_checkpoint
from cyclegen.cli import app
from cyclegen.errors import CycleGenError, RecipeError
from cyclegen.experiment import open_recipe
from tests.conftest import aegan_data, with_ema, write_recipe
from tests.test_run import all_weights, train

runner = CliRunner()
BEST_KL = {"metric": "kl", "direction": "min"}


def evaluated(data: dict[str, Any] | None = None, **train: Any) -> dict[str, Any]:
    base = data or with_ema(aegan_data(steps=20, checkpoint_every=5, keep_checkpoints=1, sample_every=0), "G")
    merged = {**base["train"], "eval_every": 5, "eval_samples": 300, "best": BEST_KL, **train}
    return {**base, "train": {key: value for key, value in merged.items() if value is not None}}  # None: unset


def log_lines(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def eval_lines(run_dir: Path) -> list[dict[str, Any]]:
    return [line for line in log_lines(run_dir) if "eval" in line]


@pytest.fixture(scope="module")
def evaluated_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("evaluated")
    result = runner.invoke(app, ["run", str(write_recipe(root, evaluated())), "--out", str(root / "run")])
    assert result.exit_code == 0, result.output
    (root / "output.txt").write_text(result.output)
    return root / "run"


def test_eval_lines_come_at_step_zero_every_eval_every_and_apart_from_the_loss_lines(evaluated_run: Path) -> None:
    lines = eval_lines(evaluated_run)
    assert [line["step"] for line in lines] == [0, 5, 10, 15, 20]
    assert all("losses" not in line and line["weights"] == "EMA of G" for line in lines)
    assert all(set(line["eval"]["G: z -> x"]) >= {"modes covered", "kl"} for line in lines)
    losses = [line for line in log_lines(evaluated_run) if "losses" in line]
    assert losses and all("eval" not in line for line in losses)


def test_eval_lines_score_the_averages_on_eval_samples(evaluated_run: Path) -> None:
    last = eval_lines(evaluated_run)[-1]
    result = runner.invoke(app, ["eval", str(evaluated_run), "--json", "--samples", "300"])
    assert result.exit_code == 0, result.output
    again = json.loads(result.stdout[result.stdout.index("{"):])
    assert again["G: z -> x"] == pytest.approx(last["eval"]["G: z -> x"], nan_ok=True)


def test_the_best_checkpoint_holds_the_best_evaluation_and_outlives_pruning(evaluated_run: Path, tmp_path: Path) -> None:
    lines = eval_lines(evaluated_run)
    values = [(line["eval"]["G: z -> x"]["kl"], line["step"]) for line in lines if line["eval"]["G: z -> x"]["kl"]]
    best_value, best_step = min(values, key=lambda pair: pair[0])
    best = read_checkpoint(evaluated_run / "checkpoints" / "best.safetensors")
    assert best.step == min(step for value, step in values if value == best_value)
    assert best.meta["best"] == {"of": "kl (min)", "value": pytest.approx(best_value)}
    assert [p.name for p in checkpoint_files(evaluated_run / "checkpoints")] == ["step-000000020.safetensors"]

    out = tmp_path / "best.npy"
    result = runner.invoke(app, ["sample", str(evaluated_run), "--checkpoint", "best", "-n", "20", "--out", str(out)])
    assert result.exit_code == 0 and f"(step {best.step})" in result.output, result.output
    model = cyclegen.load(evaluated_run, "best")
    assert model.step == best.step
    np.testing.assert_array_equal(np.load(out), model.sample(20).numpy())
    output = (evaluated_run.parent / "output.txt").read_text()
    assert "evaluations every 5 steps on 300 samples, the best by kl (min)" in output
    assert re.search(r"eval at step 0: kl \(min\) = [0-9.]+, the best so far", output)


def test_evaluating_does_not_disturb_training(tmp_path: Path) -> None:
    plain = with_ema(aegan_data(steps=12, checkpoint_every=0, sample_every=0), "G")
    with_evals = evaluated(plain, steps=12, eval_every=4, best=None)
    a = all_weights(train(write_recipe(tmp_path, plain, "a.toml"), tmp_path / "a"))
    b = all_weights(train(write_recipe(tmp_path, with_evals, "b.toml"), tmp_path / "b"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_resumed_run_evaluates_as_the_straight_one_and_keeps_its_best(tmp_path: Path) -> None:
    data = evaluated(steps=20, keep_checkpoints=3)
    recipe = write_recipe(tmp_path, data)
    train(recipe, tmp_path / "straight")
    train(recipe, tmp_path / "halves", ["train.steps=10"])
    train(recipe, tmp_path / "halves")
    straight, halves = eval_lines(tmp_path / "straight"), eval_lines(tmp_path / "halves")
    assert [line["step"] for line in halves] == [0, 5, 10, 15, 20]
    assert [line["eval"] for line in halves] == [line["eval"] for line in straight]
    a = read_checkpoint(tmp_path / "straight" / "checkpoints" / "best.safetensors")
    b = read_checkpoint(tmp_path / "halves" / "checkpoints" / "best.safetensors")
    assert a.step == b.step and a.tensors.keys() == b.tensors.keys()
    assert all(torch.equal(a.tensors[k], b.tensors[k]) for k in a.tensors)


def test_an_unknown_best_metric_stops_before_training_and_lists_the_metrics(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path, evaluated(best={"metric": "kll", "direction": "min"}))
    with pytest.raises(RecipeError, match="no metric 'kll'; it has G: z -> x: modes covered"):
        train(recipe, tmp_path / "run")
    assert not checkpoint_files(tmp_path / "run" / "checkpoints")


def test_a_metric_of_several_sections_needs_one_named(tmp_path: Path) -> None:
    ambiguous = write_recipe(tmp_path, evaluated(best={"metric": "mean abs error", "direction": "min"}), "a.toml")
    with pytest.raises(RecipeError, match="name one with train.best.section"):
        train(ambiguous, tmp_path / "a")
    named = evaluated(steps=5, best={"metric": "mean abs error", "section": "E: x -> z", "direction": "min"})
    train(write_recipe(tmp_path, named, "b.toml"), tmp_path / "b")
    best = read_checkpoint(tmp_path / "b" / "checkpoints" / "best.safetensors")
    assert best.meta["best"]["of"] == "E: x -> z mean abs error (min)"


def test_best_needs_evaluations_during_training(tmp_path: Path) -> None:
    data = evaluated(eval_every=0)
    with pytest.raises(RecipeError, match="set train.eval_every too"):
        open_recipe(write_recipe(tmp_path, data))


def test_a_run_without_a_best_checkpoint_says_so(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path, aegan_data(steps=2, sample_every=0))
    train(recipe, tmp_path / "run")
    with pytest.raises(CycleGenError, match="has no best checkpoint"):
        cyclegen.load(tmp_path / "run", "best")
