"""Updates per step: the anime recipes make the reference's updates, and validate says so."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from cyclegen.cli import app
from cyclegen.schedule import length_summary, updates_per_step
from cyclegen.trainer import Trainer
from tests.conftest import aegan_data
from tests.test_shipped_recipes import RECIPES, faces, open_anime  # noqa: F401 - faces is a fixture
from tests.test_trainer import make_trainer, record_steps

#: Per iteration of ConorLazarou/AEGAN-keras code/generative_model.py: the AEGAN loops
#: range(0, batch_num, 4) with Dx(real, x_hat, real, x_tilde), the same for Dz, then 4 E+G
#: updates; the GAN range(0, batch_num, 2) with Dx(real), Dx(fake), G, G; the AAE Dz(prior),
#: Dz(E(x)), E+G, E+G. The paper's 300,000 steps are 300,000 generator updates.
REFERENCE = {
    "aegan": {"E+G": 4, "Dx": 4, "Dz": 4},
    "gan": {"G": 2, "Dx": 2},
    "aae": {"E+G": 2, "Dz": 2},
}
PAPER_GENERATOR_UPDATES = 300_000


def generator_updates(family: str, steps: int) -> int:
    return steps * REFERENCE[family]["G" if family == "gan" else "E+G"]


@pytest.mark.parametrize("family", list(REFERENCE))
def test_anime_recipes_make_the_reference_updates_for_the_paper_length(family: str, faces: Path) -> None:
    for name in (f"{family}_anime.toml", *([f"{family}_anime_wgan.toml"] if family == "aegan" else [])):
        exp = open_anime(RECIPES / name, faces)
        assert updates_per_step(exp.graph, exp.recipe) == REFERENCE[family], name
        assert generator_updates(family, exp.recipe.train.steps) == PAPER_GENERATOR_UPDATES, name


@pytest.mark.parametrize("family", list(REFERENCE))
def test_small_presets_keep_the_ratios_and_an_equal_generator_budget(family: str, faces: Path) -> None:
    exp = open_anime(RECIPES / f"{family}_anime_small.toml", faces)
    assert updates_per_step(exp.graph, exp.recipe) == REFERENCE[family]
    assert generator_updates(family, exp.recipe.train.steps) == 12_000
    trainer = Trainer(exp.graph, exp.recipe, torch.device("cpu"))
    log = record_steps(trainer)
    trainer.step()  # the counts are what the trainer does, not only what the recipe says
    by_group = {"+".join(sorted(g.networks)): log.count(g.name) for g in trainer.groups}
    assert by_group == REFERENCE[family]


@pytest.mark.parametrize(
    "schedule",
    [{}, {"critic_steps": 3, "mapper_steps": 2}, {"critic_batches": "single-class"},
     {"critic_batches": "single-class", "critic_steps": 2, "mapper_steps": 3}],
)
def test_counts_match_the_trainer_in_every_schedule(tmp_path: Path, schedule: dict) -> None:
    trainer = make_trainer(tmp_path, schedule=schedule)
    log = record_steps(trainer)
    trainer.step()
    recorded = {"+".join(sorted(g.networks)): log.count(g.name) for g in trainer.groups}
    assert updates_per_step(trainer.graph, trainer.recipe) == recorded


def test_critics_sharing_a_group_count_their_busiest(tmp_path: Path) -> None:
    data = aegan_data()
    data["optim"] = {"mappers": {"networks": ["G", "E"]}, "critics": {"networks": ["Dx", "Dz"]}}
    data["terms"] = [t for t in data["terms"] if t.get("path") != "z -> G -> E" or "critic" not in t]  # Dz judges 1 path
    data["schedule"] = {"critic_batches": "single-class"}
    trainer = make_trainer(tmp_path, data)
    log = record_steps(trainer)
    trainer.step()
    assert log.count("critics") == 4  # Dx's real, x_hat, real, x_tilde; Dz's two alongside the first two
    assert updates_per_step(trainer.graph, trainer.recipe) == {"E+G": 1, "Dx+Dz": 4}


def test_validate_states_the_length_in_updates(faces: Path) -> None:
    recipe = RECIPES / "aegan_anime.toml"
    result = CliRunner().invoke(app, ["validate", str(recipe), "--set", f"domains.x.source={str(faces)!r}",
                                      "--set", "domains.x.cache='off'"])
    assert result.exit_code == 0, result.output
    assert "75,000 steps = 300,000 E+G updates, 300,000 Dx updates, 300,000 Dz updates" in result.output
    exp = open_anime(RECIPES / "gan_anime.toml", faces)
    assert length_summary(exp.graph, exp.recipe) == "150,000 steps = 300,000 G updates, 300,000 Dx updates"
