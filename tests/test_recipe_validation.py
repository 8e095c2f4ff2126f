"""Values the schema refuses before any training, each with a message naming the key and
what it allows; and the values near those limits that must still work."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cyclegen.cli import app
from cyclegen.errors import RecipeError
from cyclegen.recipe import MAX_SEED, load_recipe
from tests.conftest import aegan_data, write_recipe

runner = CliRunner()


def load_with(tmp_path: Path, *overrides: str) -> Any:
    """The recipe of `aegan_data()` written as TOML and loaded with `--set` style overrides."""
    recipe, _ = load_recipe(write_recipe(tmp_path, aegan_data()), list(overrides))
    return recipe


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.mappers.lr=inf", "optim.mappers.lr: Input should be a finite number"),
        ("optim.mappers.lr=nan", "optim.mappers.lr: Input should be a finite number"),
        ("optim.mappers.eps=-inf", "optim.mappers.eps: Input should be a finite number"),
        ("optim.mappers.clip.per_tensor=inf", "optim.mappers.clip.per_tensor: Input should be a finite number"),
        ("optim.mappers.weight_decay=inf", "optim.mappers.weight_decay: Input should be a finite number"),
        ("terms.4.weight=nan", "terms.4.weight: Input should be a finite number"),
        ("terms.4.weight=inf", "terms.4.weight: Input should be a finite number"),
        ("terms.4.weight=-1", "terms.4.weight: Input should be greater than or equal to 0"),
        ("optim.mappers.betas=[0.5, 1.0]", "optim.mappers.betas: each beta must be at least 0 and below 1, got [0.5, 1.0]"),
        ("optim.mappers.betas=[-0.1, 0.9]", "optim.mappers.betas: each beta must be at least 0 and below 1"),
        ("optim.mappers.betas=[0.5, inf]", "optim.mappers.betas.1: Input should be a finite number"),
        ("train.steps=true", "train.steps: expected an integer, not a boolean (true/false)"),
        ("train.batch_size=false", "train.batch_size: expected an integer, not a boolean"),
        ("critics.Dx.history=true", "critics.Dx.history: expected an integer, not a boolean"),
        ("optim.mappers.lr=true", "optim.mappers.lr: expected a number, not a boolean"),
        ("terms.4.weight=true", "terms.4.weight: expected a number, not a boolean"),
        ("seed=true", "seed: expected an integer, not a boolean"),
        (f"seed={2**70}", f"seed: Input should be less than or equal to {MAX_SEED}"),
        (f"seed={MAX_SEED + 1}", f"seed: Input should be less than or equal to {MAX_SEED}"),
        ("seed=-1", "seed: Input should be greater than or equal to 0"),
        ("name=''", "name: '' is not a plain run name"),
    ],
)
def test_absurd_values_are_refused_naming_the_key(tmp_path: Path, override: str, message: str) -> None:
    with pytest.raises(RecipeError) as info:
        load_with(tmp_path, override)
    assert message in str(info.value)


@pytest.mark.parametrize("name", ["../../x", "/tmp/x", "a/b", "a\\b", ".", "..", ".hidden", "two words", "~x"])
def test_a_name_that_is_not_one_plain_folder_name_is_refused(tmp_path: Path, name: str) -> None:
    data = aegan_data()
    data["name"] = name
    with pytest.raises(RecipeError) as info:
        load_recipe(write_recipe(tmp_path, data))
    message = str(info.value)
    assert f"name: {name!r} is not a plain run name" in message
    assert "letters, digits, '.', '_' and '-', not starting with '.'" in message
    assert "pass --out to train somewhere else" in message


def test_a_name_that_climbs_out_of_runs_trains_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    data = aegan_data()
    data["name"] = "../../escaped"
    result = runner.invoke(app, ["run", str(write_recipe(tmp_path, data))])
    assert result.exit_code == 1
    assert "name: '../../escaped' is not a plain run name" in result.output
    assert "Traceback" not in result.output
    assert not list(tmp_path.rglob("escaped")) and not (work / "runs").exists()


def test_values_at_the_limits_still_load(tmp_path: Path) -> None:
    recipe = load_with(
        tmp_path, "optim.mappers.lr=1", "optim.mappers.betas=[0, 0.999999]", "terms.4.weight=0",
        f"seed={MAX_SEED}", "train.steps=500", "name='run_2.b-c'",
    )
    mappers = recipe.optim["mappers"]
    assert mappers.lr == 1.0 and isinstance(mappers.lr, float)
    assert mappers.betas == (0.0, 0.999999)
    assert recipe.terms[4].weight == 0.0
    assert recipe.seed == MAX_SEED
    assert recipe.train.steps == 500 and type(recipe.train.steps) is int
    assert recipe.name == "run_2.b-c"


def test_the_largest_seed_trains_and_writes_samples(tmp_path: Path) -> None:
    """Streams derive seeds by multiplying the recipe's; at the limit they must still fit torch."""
    run_dir = tmp_path / "run"
    args = ["run", str(write_recipe(tmp_path, aegan_data())), "--out", str(run_dir),
            "--set", f"seed={MAX_SEED}", "--set", "train.steps=10", "--set", "train.sample_every=5"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert list((run_dir / "samples").glob("G-random-step000000010.png"))


def test_validate_reports_every_bad_value_at_once(tmp_path: Path) -> None:
    data = aegan_data()
    data["optim"]["mappers"]["lr"] = math.inf
    data["train"]["steps"] = True
    data["terms"][4]["weight"] = -2.0
    result = runner.invoke(app, ["validate", str(write_recipe(tmp_path, data))])
    assert result.exit_code == 1
    for line in ("optim.mappers.lr: Input should be a finite number",
                 "train.steps: expected an integer, not a boolean",
                 "terms.4.weight: Input should be greater than or equal to 0"):
        assert line in result.output
    assert "Traceback" not in result.output
