"""The recipes in recipes/ stay valid, and the AEGAN anime recipe follows the reference."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cyclegen.experiment import open_recipe
from cyclegen.trainer import Trainer
from tests.conftest import NO_FACES, SHARED_ZIP
from tests.test_images import half_and_half
from tests.test_stacked_mnist import synthetic_mnist

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
CYCLEGAN = sorted(RECIPES.glob("cyclegan_*.toml"))
ANIME = sorted(set(RECIPES.glob("*_anime*.toml")) - set(CYCLEGAN))
MNIST = sorted(RECIPES.glob("*_stacked_mnist.toml"))
TOY = sorted(set(RECIPES.glob("*.toml")) - set(ANIME) - set(CYCLEGAN) - set(MNIST))


@pytest.fixture(scope="module")
def faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("faces")
    for i in range(8):
        half_and_half(32, 32).rotate(40 * i).save(root / f"{i}.png")
    return root


def open_anime(recipe: Path, faces: Path, *overrides: str):
    return open_recipe(recipe, [f"domains.x.source={str(faces)!r}", "domains.x.cache='off'", *overrides])


@pytest.mark.parametrize("recipe", TOY, ids=lambda p: p.stem)
def test_toy_recipes_validate(recipe: Path) -> None:
    exp = open_recipe(recipe)
    assert exp.graph.domains["x"].kind == "data"


@pytest.mark.parametrize("recipe", ANIME, ids=lambda p: p.stem)
def test_anime_recipes_validate(recipe: Path, faces: Path) -> None:
    exp = open_anime(recipe, faces)
    assert exp.recipe.train.batch_size == 16 and exp.graph.domains["z"].shape == (32,)


@pytest.mark.parametrize("recipe", MNIST, ids=lambda p: p.stem)
def test_stacked_mnist_recipes_validate(recipe: Path, tmp_path: Path) -> None:
    exp = open_recipe(recipe, [f"domains.x.source={str(synthetic_mnist(tmp_path / 'mnist.npz'))!r}"])
    assert exp.recipe.eval.samples == 26_000 and exp.graph.domains["x"].shape == (3, 32, 32)


def test_aegan_anime_follows_the_reference(faces: Path) -> None:
    exp = open_anime(RECIPES / "aegan_anime.toml", faces)
    counts = {name: sum(p.numel() for p in net.parameters()) for name, net in exp.graph.networks.items()}
    assert counts == {"G": 1_946_691, "E": 1_381_664, "Dx": 708_545, "Dz": 76_801}
    recipe = exp.recipe
    assert recipe.train.steps == 75_000 and exp.graph.domains["x"].shape == (3, 64, 64)  # 300,000 E+G updates
    assert [(t.label, t.weight) for t in exp.graph.terms] == [
        ("adv Dx(z -> G)", 1.0),
        ("adv Dx(x -> E -> G)", 1.0),
        ("adv Dz(x -> E)", 1.0),
        ("adv Dz(z -> G -> E)", 1.0),
        ("rec l1(x -> E -> G)", 10.0),
        ("rec l2(z -> G -> E)", 5.0),
    ]
    groups = {name: (g.networks, g.lr, g.eps, g.clip.per_tensor) for name, g in recipe.optim.items()}
    assert groups == {
        "generators": (["G", "E"], 2e-4, 1e-7, 1.0),
        "image_critic": (["Dx"], 5e-4, 1e-7, 1.0),
        "latent_critic": (["Dz"], 5e-4, 1e-7, 1.0),
    }
    assert exp.graph.adversarial.real_target == pytest.approx(0.95)
    assert exp.graph.adversarial.fake_target == pytest.approx(0.05)


def test_reference_schedule_order_on_the_small_preset(faces: Path) -> None:
    exp = open_anime(RECIPES / "aegan_anime_small.toml", faces)
    trainer = Trainer(exp.graph, exp.recipe, torch.device("cpu"))
    log: list[str] = []
    for group in trainer.groups:
        group.optimizer.register_step_post_hook(lambda *_, name=group.name: log.append(name))
    trainer.step()
    assert log == ["image_critic"] * 4 + ["latent_critic"] * 4 + ["generators"] * 4




@pytest.mark.skipif(not SHARED_ZIP.exists(), reason=NO_FACES)
def test_small_aegan_preset_trains_on_the_anime_faces(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cyclegen.cli import app

    overrides = [
        f"domains.x.source={str(SHARED_ZIP)!r}", "domains.x.limit=300", f"domains.x.cache={str(tmp_path)!r}",
        "train.steps=2", "train.sample_count=4", "eval.samples=40",
    ]
    args = ["run", str(RECIPES / "aegan_anime_small.toml"), "--out", str(tmp_path / "run")]
    result = CliRunner().invoke(app, args + [part for o in overrides for part in ("--set", o)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "samples" / "cycle-x-E-G-step000000002.png").is_file()


@pytest.mark.parametrize("dataset", ["grid", "ring"])
def test_toy_families_of_a_dataset_differ_only_in_their_terms(dataset: str) -> None:
    """The GAN, AAE and AEGAN tables compare losses, not budgets: a recipe tuned alone would not
    be a fair baseline. Shared: data, networks, loss, train settings, EMA rate and each optimiser."""
    recipes = {family: open_recipe(RECIPES / f"{family}_{dataset}.toml").recipe for family in ("gan", "aae", "aegan")}
    aegan = recipes.pop("aegan")
    for family, recipe in recipes.items():
        assert recipe.domains == aegan.domains, family
        assert recipe.adversarial == aegan.adversarial, family
        assert recipe.train == aegan.train and recipe.schedule == aegan.schedule, family
        assert recipe.ema.half_life == aegan.ema.half_life, family
        assert all(recipe.mappers[m] == aegan.mappers[m] for m in recipe.mappers), family
        assert all(recipe.critics[c] == aegan.critics[c] for c in recipe.critics), family
        for name, group in recipe.optim.items():
            assert group.model_copy(update={"networks": []}) == aegan.optim[name].model_copy(update={"networks": []})

