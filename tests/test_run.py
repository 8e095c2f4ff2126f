"""Runs: exact resume, atomic checkpoints, non-finite losses, the run directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from rich.console import Console

from cyclegen.checkpoint import checkpoint_files, read_checkpoint
from cyclegen.errors import CycleGenError, NonFiniteLossError, RecipeError
from cyclegen.experiment import open_recipe
from cyclegen.run import Run
from tests.conftest import aegan_data, with_ema, write_recipe

QUIET = Console(quiet=True)


def train(recipe: Path, run_dir: Path, overrides: list[str] = ()) -> Run:
    run = Run(open_recipe(recipe, list(overrides)), run_dir, QUIET)
    run.prepare()
    run.train()
    return run


def all_weights(run: Run) -> dict[str, torch.Tensor]:
    """Every network's weights, and every `[ema]` average's as `ema.<mapper>.<key>`."""
    graph = run.trainer.graph
    networks = list(graph.networks.items())
    if graph.averages is not None:
        networks += [(f"ema.{name}", graph.averages[name]) for name in graph.averages.names()]
    return {f"{name}.{key}": value.clone() for name, net in networks for key, value in net.state_dict().items()}


@pytest.mark.parametrize("schedule", ["joint", "single-class"])
def test_resume_is_bit_exact(tmp_path: Path, schedule: str) -> None:
    data = with_ema(aegan_data(steps=16, checkpoint_every=0, sample_every=4))  # sampling must not disturb training
    data["schedule"] = {"critic_batches": schedule, "mapper_steps": 2}
    recipe = write_recipe(tmp_path, data)
    straight = train(recipe, tmp_path / "straight")
    train(recipe, tmp_path / "halves", ["train.steps=8"])
    resumed = train(recipe, tmp_path / "halves")
    assert resumed.trainer.step_count == 16
    a, b = all_weights(straight), all_weights(resumed)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    for sa, sb in zip(straight.trainer.groups, resumed.trainer.groups):
        for pa, pb in zip(sa.params, sb.params):
            state_a, state_b = sa.optimizer.state[pa], sb.optimizer.state[pb]
            assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)


def test_run_directory_contents(tmp_path: Path, aegan_recipe: Path) -> None:
    run_dir = tmp_path / "run"
    train(aegan_recipe, run_dir)
    assert (run_dir / "recipe.toml").is_file()
    reopened = open_recipe(run_dir / "recipe.toml")
    assert reopened.recipe == open_recipe(aegan_recipe).recipe
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [5, 10, 15, 20]
    assert "rec l1(x -> E -> G)" in lines[0]["losses"]
    samples = sorted(p.name for p in (run_dir / "samples").iterdir())
    assert samples == [
        f"{kind}-step{step:09d}.png" for kind in ["G-fixed", "G-random", "cycle-x-E-G"] for step in (0, 10, 20)
    ]
    assert [p.name for p in checkpoint_files(run_dir / "checkpoints")] == [
        "step-000000010.safetensors",
        "step-000000020.safetensors",
    ]
    assert (run_dir / "checkpoints" / "latest").read_text() == "step-000000020.safetensors"
    assert not list((run_dir / "checkpoints").glob(".*tmp"))
    evaluation = json.loads((run_dir / "eval.json").read_text())
    assert evaluation["G: z -> x"]["modes total"] == 25
    meta = read_checkpoint(run_dir / "checkpoints" / "step-000000020.safetensors").meta
    assert meta["step"] == 20
    assert {"toy2d", "mlp", "losses", "priors"} <= set(meta["plugins"])
    assert meta["recipe"]["name"] == "tiny-aegan"


def test_rerun_with_a_different_model_is_refused(tmp_path: Path, aegan_recipe: Path) -> None:
    run_dir = tmp_path / "run"
    train(aegan_recipe, run_dir, ["train.steps=5"])
    with pytest.raises(CycleGenError, match="differs in: mappers"):
        Run(open_recipe(aegan_recipe, ["mappers.G.hidden=8"]), run_dir, QUIET).prepare()
    assert len(checkpoint_files(run_dir / "checkpoints")) == 1


def test_resume_flag_needs_a_checkpoint(tmp_path: Path, aegan_recipe: Path) -> None:
    with pytest.raises(CycleGenError, match="no readable checkpoint"):
        Run(open_recipe(aegan_recipe), tmp_path / "empty", QUIET).prepare(require_checkpoint=True)


NAN_LOSS_PLUGIN = '''
import torch
from cyclegen import ReconstructionLoss, hookimpl


class NanAfter(ReconstructionLoss):
    """L1 that turns into NaN after `calls` evaluations."""

    def __init__(self, calls: int = 12):
        self.calls = calls
        self.seen = 0

    def __call__(self, target, reconstruction):
        self.seen += 1
        loss = (target - reconstruction).abs().mean()
        return loss * float("nan") if self.seen > self.calls else loss


@hookimpl
def cyclegen_register(registry):
    registry.reconstruction_loss("nan-after-12", NanAfter)
'''


def test_non_finite_loss_stops_with_term_and_step(tmp_path: Path) -> None:
    (tmp_path / "nan_plugin.py").write_text(NAN_LOSS_PLUGIN)
    data = aegan_data(steps=20, log_every=5, checkpoint_every=5)
    data["plugins"] = ["nan_plugin.py"]
    data["terms"][5]["loss"] = "nan-after-12"
    recipe = write_recipe(tmp_path, data)
    run = Run(open_recipe(recipe), tmp_path / "run", QUIET)
    run.prepare()
    with pytest.raises(NonFiniteLossError) as info:
        run.train()
    message = str(info.value)
    assert "term 'rec nan-after-12(z -> G -> E)' at step 13" in message
    kept = checkpoint_files(tmp_path / "run" / "checkpoints")
    assert [p.name for p in kept] == ["step-000000005.safetensors", "step-000000010.safetensors"]
    good = read_checkpoint(kept[-1])
    assert all(torch.isfinite(t).all() for k, t in good.tensors.items() if k.startswith("net."))


METRIC_PLUGIN = '''
from cyclegen import Metric, hookimpl


class MeanNorm(Metric):
    """Average Euclidean norm of the samples."""

    name = "mean-norm"

    def evaluate(self, samples, domain, generator):
        return {"mean norm": float(samples.flatten(1).norm(dim=1).mean())}


@hookimpl
def cyclegen_register(registry):
    registry.metric("mean-norm", MeanNorm)
'''


def test_recipe_can_add_registered_metrics(tmp_path: Path) -> None:
    (tmp_path / "metric_plugin.py").write_text(METRIC_PLUGIN)
    data = aegan_data(steps=2, sample_every=0, checkpoint_every=0)
    data["plugins"] = ["metric_plugin.py"]
    data["eval"]["metrics"] = ["mean-norm"]
    run = train(write_recipe(tmp_path, data), tmp_path / "run")
    evaluation = json.loads((run.dir / "eval.json").read_text())
    assert "mean norm" in evaluation["G: z -> x"] and "modes covered" in evaluation["G: z -> x"]
    assert "mean norm" in evaluation["E: x -> z"]  # added to every mapper's outputs
    data["eval"]["metrics"] = ["mean-nrom"]
    with pytest.raises(RecipeError, match="eval.metrics\\[0\\]: unknown metric 'mean-nrom'; did you mean 'mean-norm'"):
        open_recipe(write_recipe(tmp_path, data, "typo.toml"))  # before any training


OPTIONS_METRIC_PLUGIN = '''
from cyclegen import Metric, hookimpl


class DistanceTo(Metric):
    """Mean reconstruction loss of the samples against a constant point, by a registered loss."""

    name = "distance-to"

    def __init__(self, components, point: float = 0.0, loss: str = "l1", dims: int | None = None) -> None:
        self.point = point
        self.loss = components.build("reconstruction_loss", loss, "loss")
        self.dims = dims

    def applies_to(self, domain):
        return self.dims is None or domain.shape == (self.dims,)

    def evaluate(self, samples, domain, generator):
        return {f"distance to {self.point:g}": float(self.loss(samples, samples * 0 + self.point))}


@hookimpl
def cyclegen_register(registry):
    registry.metric("distance-to", DistanceTo)
'''


def test_recipe_metrics_take_options_and_build_components(tmp_path: Path) -> None:
    (tmp_path / "options_plugin.py").write_text(OPTIONS_METRIC_PLUGIN)
    data = aegan_data(steps=2, sample_every=0, checkpoint_every=0)
    data["plugins"] = ["options_plugin.py"]
    data["eval"]["metrics"] = ["distance-to", {"type": "distance-to", "point": 5.0, "loss": "l2", "dims": 2}]
    run = train(write_recipe(tmp_path, data), tmp_path / "run")
    evaluation = json.loads((run.dir / "eval.json").read_text())
    grid, latent = evaluation["G: z -> x"], evaluation["E: x -> z"]
    assert {"distance to 0", "distance to 5"} <= grid.keys()
    assert "distance to 0" in latent and "distance to 5" not in latent  # dims = 2 fits x, not z (3-D)
    assert grid["distance to 5"] > grid["distance to 0"]
    errors = {
        "loss": ({"type": "distance-to", "loss": "l3"}, r"eval.metrics\[0\].loss: unknown reconstruction loss 'l3'"),
        "option": ({"type": "distance-to", "piont": 1.0}, r"eval.metrics\[0\].piont: .*did you mean 'point'"),
        "domain": ({"type": "distance-to", "dims": 7}, r"eval.metrics\[0\]: metric 'distance-to' applies to none"),
    }
    for name, (spec, message) in errors.items():
        data["eval"]["metrics"] = [spec]
        with pytest.raises(RecipeError, match=message):
            open_recipe(write_recipe(tmp_path, data, f"{name}.toml"))  # before any training
