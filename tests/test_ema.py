"""Moving averages of mappers (`[ema]`): the averaging rule, checkpoints, and the weights that
samples, evaluation and every command run (the average by default, `--raw-weights` the trained)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import cyclegen
from cyclegen.checkpoint import latest_checkpoint
from cyclegen.cli import app
from cyclegen.ema import MapperAverages, half_life_in_samples
from cyclegen.errors import RecipeError
from cyclegen.experiment import open_recipe, open_trained
from cyclegen.samples import SampleWriter
from tests.conftest import aegan_data, with_ema, write_recipe
from tests.test_run import train

runner = CliRunner()


def test_the_average_halves_its_distance_to_fixed_weights_every_half_life() -> None:
    net = nn.Linear(3, 2)
    averages = MapperAverages({"G": net}, half_life=4 * 16, warmup=0.0, batch_size=16)
    start = averages["G"].weight.clone()
    with torch.no_grad():
        net.weight.add_(1.0)  # the trained weights move away and stay
    for _ in range(4):  # four updates of 16 samples: one half-life
        averages.update()
    torch.testing.assert_close(averages["G"].weight, start + 0.5, rtol=0, atol=1e-6)
    assert averages.samples == 64 and not averages["G"].weight.requires_grad


def test_the_warm_up_copies_at_first_and_caps_the_half_life_by_the_samples_seen() -> None:
    net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    averages = MapperAverages({"G": net}, half_life=10_000, warmup=0.5, batch_size=10)
    with torch.no_grad():
        net[0].weight.add_(3.0)
        net[1].running_mean.add_(2.0)
    averages.update()  # nothing seen yet: the average becomes the trained weights
    assert torch.equal(averages["G"][0].weight, net[0].weight)
    assert torch.equal(averages["G"][1].running_mean, net[1].running_mean)  # buffers are copied
    assert averages.beta() == pytest.approx(0.5 ** (10 / (0.5 * 10)))  # half-life 5 samples after 10
    averages.samples = 1_000_000
    assert averages.beta() == pytest.approx(0.5 ** (10 / 10_000))  # the recipe's half-life caps it


def test_a_decay_per_update_is_a_half_life_in_samples() -> None:
    half_life = half_life_in_samples(None, 0.999, batch_size=64)
    averages = MapperAverages({"G": nn.Linear(1, 1)}, half_life, warmup=0.0, batch_size=64)
    assert averages.beta() == pytest.approx(0.999)
    assert half_life_in_samples(5_000, None, batch_size=64) == 5_000


@pytest.mark.parametrize(
    ("ema", "message"),
    [
        ({"mappers": ["G", "Q"], "half_life": 100}, "ema.mappers[1]: unknown mapper 'Q'"),
        ({"mappers": ["G"]}, "give exactly one of half_life"),
        ({"mappers": ["G"], "half_life": 100, "decay": 0.99}, "give exactly one of half_life"),
        ({"mappers": ["G"], "decay": 1.0}, "ema.decay"),
        ({"mappers": ["G"], "half_life": 100, "warmpu": 0.1}, "did you mean 'warmup'"),
    ],
)
def test_bad_ema_sections_are_explained(tmp_path: Path, ema: dict, message: str) -> None:
    with pytest.raises(RecipeError, match=re.escape(message)):
        open_recipe(write_recipe(tmp_path, {**aegan_data(), "ema": ema}))


@pytest.fixture(scope="module")
def averaged_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ema")
    data = with_ema(aegan_data(steps=40, sample_every=20, checkpoint_every=20), "G", "E", half_life=640, warmup=0)
    train(write_recipe(root, data), root / "run")
    return root / "run"


def test_checkpoints_carry_the_averages_apart_from_the_trained_weights(averaged_run: Path) -> None:
    checkpoint = latest_checkpoint(averaged_run / "checkpoints")
    assert checkpoint is not None and checkpoint.state["ema"]["samples"] == 40 * 32
    for name in ("G", "E"):
        averaged, trained = checkpoint.state["ema"]["weights"][name], checkpoint.state["net"][name]
        assert averaged.keys() == trained.keys()
        assert any(not torch.equal(averaged[key], trained[key]) for key in trained)


def test_commands_run_the_averages_unless_asked_for_the_raw_weights(averaged_run: Path, tmp_path: Path) -> None:
    def sampled(*flags: str) -> np.ndarray:
        out = tmp_path / f"s{len(flags)}.npy"
        result = runner.invoke(app, ["sample", str(averaged_run), "-n", "50", "--out", str(out), *flags])
        assert result.exit_code == 0, result.output
        return np.load(out)

    default, raw = sampled(), sampled("--raw-weights")
    model, raw_model = cyclegen.load(averaged_run), cyclegen.load(averaged_run, raw_weights=True)
    assert model.weights == "EMA of G, E" and raw_model.weights == "trained"
    np.testing.assert_array_equal(default, model.sample(50).numpy())
    np.testing.assert_array_equal(raw, raw_model.sample(50).numpy())
    assert not np.array_equal(default, raw)
    checkpoint = latest_checkpoint(averaged_run / "checkpoints")
    state = checkpoint.state["ema"]["weights"]["G"]
    reference = cyclegen.load(averaged_run, raw_weights=True)
    reference._exp.graph.mappers["G"].load_state_dict(state)  # the trained G given the averaged weights
    np.testing.assert_array_equal(default, reference.sample(50).numpy())

    evaluated = {}
    for flags in ((), ("--raw-weights",)):
        result = runner.invoke(app, ["eval", str(averaged_run), "--json", *flags])
        assert result.exit_code == 0, result.output
        evaluated[flags] = json.loads(result.stdout[result.stdout.index("{"):])
    assert evaluated[()] != evaluated[("--raw-weights",)]
    final = json.loads((averaged_run / "eval.json").read_text())
    assert math.isclose(final["G: z -> x"]["kl"], evaluated[()]["G: z -> x"]["kl"], rel_tol=1e-6)  # the run's own eval


def test_each_command_says_which_weights_it_runs(averaged_run: Path, tmp_path: Path) -> None:
    for command in (["sample", "--out", str(tmp_path / "s.png")], ["interpolate", "--random", "--out", str(tmp_path / "i.png")]):
        for flags, label in (((), "EMA of G, E weights"), (("--raw-weights",), "trained weights")):
            result = runner.invoke(app, [command[0], str(averaged_run), *command[1:], *flags])
            assert result.exit_code == 0 and label in result.output, result.output


def test_every_command_offers_the_raw_weights_flag_in_its_help() -> None:
    for command in ("sample", "eval", "encode", "reconstruct", "interpolate", "translate"):
        text = re.sub(r"[\s│]+", " ", runner.invoke(app, [command, "--help"]).output)
        assert "--raw-weights Run the trained mappers, not the moving averages that the recipe's ema section" in text


def test_training_samples_show_the_averages(averaged_run: Path, tmp_path: Path) -> None:
    exp = open_trained(averaged_run)
    calls: dict[str, int] = {"average": 0, "trained": 0}
    for kind, net in (("average", exp.graph.averages["G"]), ("trained", exp.graph.mappers["G"])):
        net.register_forward_hook(lambda *_, kind=kind: calls.__setitem__(kind, calls[kind] + 1))
    written = SampleWriter(exp.graph, 0, 20, exp.device, tmp_path).write(7)
    assert written and calls["average"] > 0 and calls["trained"] == 0


def test_validate_and_start_up_name_the_averages(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path, with_ema(aegan_data(), "G", half_life=10_000))
    result = runner.invoke(app, ["validate", str(recipe)])
    assert result.exit_code == 0, result.output
    assert "ema: averages of G, half-life 10,000 samples, warm-up 0.05" in result.output


def test_a_run_directory_refuses_a_changed_ema_section(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path, with_ema(aegan_data(steps=4, sample_every=0), "G"))
    train(recipe, tmp_path / "run")
    result = runner.invoke(app, ["run", str(recipe), "--out", str(tmp_path / "run"), "--set", "ema.half_life=5"])
    assert result.exit_code != 0 and "differs in: ema" in result.output
