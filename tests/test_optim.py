"""Optimiser groups: membership checks, clipping, learning-rate schedules, state round-trips."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from cyclegen.errors import RecipeError, StateError
from cyclegen.experiment import open_recipe
from cyclegen.optim import OptimGroup, build_optim_groups, clip_per_tensor
from cyclegen.recipe import ClipSpec, LRScheduleSpec, load_recipe
from cyclegen.trainer import Trainer
from tests.conftest import aegan_data, cyclegan_data, write_recipe


def test_linear_decay_factor() -> None:
    spec = LRScheduleSpec(type="linear-decay", decay_start=100, decay_end=200)
    factors = [spec.factor(s, 1000) for s in (0, 99, 100, 150, 199, 200, 250)]
    assert factors == pytest.approx([1, 1, 1, 0.5, 0.01, 0, 0])
    assert LRScheduleSpec(type="linear-decay", decay_start=5).factor(7, 10) == pytest.approx(0.6)
    assert LRScheduleSpec().factor(10**6, 10) == 1.0


def test_linear_decay_to_a_floor_holds_it_after_the_end() -> None:
    spec = LRScheduleSpec(type="linear-decay", decay_start=100, decay_end=200, end_factor=0.2)
    factors = [spec.factor(s, 1000) for s in (99, 100, 150, 200, 999)]
    assert factors == pytest.approx([1, 1, 0.6, 0.2, 0.2])


def test_training_steps_decay_towards_the_floor(tmp_path: Path) -> None:
    data = cyclegan_data(steps=10)
    data["optim"]["critics"]["lr_schedule"] = {"type": "linear-decay", "decay_start": 0.5, "end_factor": 0.25}
    exp = open_recipe(write_recipe(tmp_path, data))
    trainer = Trainer(exp.graph, exp.recipe, torch.device("cpu"))
    critics_lr = exp.recipe.optim["critics"].lr
    lrs = []
    for _ in range(10):
        trainer.step()
        lrs.append(trainer.critic_groups[0].lr / critics_lr)
    assert lrs == pytest.approx([1, 1, 1, 1, 1, 1, 0.85, 0.7, 0.55, 0.4])


def test_a_floor_at_or_above_the_rate_is_refused(tmp_path: Path) -> None:
    data = cyclegan_data(steps=10)
    data["optim"]["mappers"]["lr_schedule"]["end_factor"] = 1.5
    with pytest.raises(RecipeError, match="end_factor"):
        open_recipe(write_recipe(tmp_path, data))


def test_decay_must_start_before_it_ends(tmp_path: Path) -> None:
    data = cyclegan_data(steps=10)
    data["optim"]["mappers"]["lr_schedule"]["decay_start"] = 10
    with pytest.raises(RecipeError, match=r"decay_start \(step 10\) must come before decay_end \(step 10\)"):
        open_recipe(write_recipe(tmp_path, data))


def test_fractional_positions_follow_the_run_length() -> None:
    spec = LRScheduleSpec(type="linear-decay", decay_start=0.5, decay_end=0.75)
    assert spec.steps(1000) == (500, 750) and spec.steps(60) == (30, 45)
    assert [spec.factor(s, 60) for s in (29, 30, 40, 45)] == pytest.approx([1, 1, 1 / 3, 0])
    assert LRScheduleSpec(type="linear-decay", decay_start=0.5).steps(7) == (4, 7)


def test_fractions_in_order_stay_valid_on_a_run_too_short_to_separate_them(tmp_path: Path) -> None:
    """0.75 of a 2-step run rounds to its last step: still a valid recipe, as `--set train.steps=2`
    on a shipped recipe must be."""
    data = cyclegan_data(steps=2)
    for group in data["optim"].values():
        group["lr_schedule"] = {"type": "linear-decay", "decay_start": 0.75}
    spec = open_recipe(write_recipe(tmp_path, data)).recipe.optim["mappers"].lr_schedule
    assert [spec.factor(step, 2) for step in range(2)] == [1.0, 1.0]


def test_a_float_above_one_is_refused_as_a_fraction(tmp_path: Path) -> None:
    data = cyclegan_data(steps=10)
    data["optim"]["mappers"]["lr_schedule"]["decay_start"] = 1500.0
    with pytest.raises(RecipeError, match=r"fraction of train.steps, and must be at most 1; write a step as an integer \(1500\)"):
        open_recipe(write_recipe(tmp_path, data))


def test_shortening_the_cyclegan_preset_needs_no_schedule_override() -> None:
    """The preset's decay starts half-way whatever train.steps is, so `--set train.steps=60` validates."""
    recipe = Path(__file__).resolve().parents[1] / "recipes" / "cyclegan_anime_sketch_small.toml"
    spec, _ = load_recipe(recipe, ["train.steps=60"])
    assert {name: group.lr_schedule.steps(60) for name, group in spec.optim.items()} == {
        "mappers": (30, 60), "critics": (30, 60)
    }


def test_per_tensor_clipping_bounds_each_gradient() -> None:
    grads = [torch.full((3,), 10.0), torch.full((2,), 0.1)]
    clip_per_tensor(grads, 1.0)
    assert torch.linalg.vector_norm(grads[0]).item() == pytest.approx(1.0)
    assert torch.allclose(grads[1], torch.full((2,), 0.1))


def test_network_outside_every_optimiser_group(tmp_path: Path) -> None:
    data = aegan_data()
    data["optim"]["mappers"]["networks"] = ["G"]
    exp = open_recipe(write_recipe(tmp_path, data))
    with pytest.raises(RecipeError, match="'E' are in no optimiser group"):
        build_optim_groups(exp.graph, exp.recipe.optim)


def test_mixed_optimiser_group_is_refused(tmp_path: Path) -> None:
    data = aegan_data()
    data["optim"] = {"all": {"networks": ["G", "E", "Dx", "Dz"]}}
    exp = open_recipe(write_recipe(tmp_path, data))
    with pytest.raises(RecipeError, match="only mappers or only critics"):
        build_optim_groups(exp.graph, exp.recipe.optim)


def test_clipping_sees_unscaled_gradients() -> None:
    """The scaler unscales before the group clips, so clipping acts on true gradient norms."""

    def clipped_update(scaler: torch.amp.GradScaler) -> torch.Tensor:
        weight = nn.Parameter(torch.ones(3))
        optimizer = torch.optim.SGD([weight], lr=1.0)
        group = OptimGroup("g", ["net"], [weight], optimizer, ClipSpec(per_tensor=0.5), 1.0, LRScheduleSpec())
        scaler.scale((weight * torch.tensor([1.0, 2.0, 3.0])).sum()).backward()
        group.step(scaler)
        return weight.detach()

    plain = clipped_update(torch.amp.GradScaler("cpu", enabled=False))
    scaled = clipped_update(torch.amp.GradScaler("cpu", init_scale=1024.0))
    torch.testing.assert_close(scaled, plain)
    assert torch.linalg.vector_norm(1 - plain) == pytest.approx(0.5)


def trained_groups(tmp_path: Path, name: str) -> list[OptimGroup]:
    exp = open_recipe(write_recipe(tmp_path, aegan_data(), name))
    trainer = Trainer(exp.graph, exp.recipe, torch.device("cpu"))
    trainer.step()
    return trainer.groups


def test_group_state_round_trips_into_a_fresh_group(tmp_path: Path) -> None:
    trained, fresh = trained_groups(tmp_path, "a.toml"), build_optim_groups(
        open_recipe(write_recipe(tmp_path, aegan_data(), "b.toml")).graph, {}
    )
    source = trained[0]
    target = next(group for group in fresh[0] if group.name == "mappers")
    assert target.optimizer.state == {}
    target.load_state_dict(source.state_dict())
    for p_source, p_target in zip(source.params, target.params):
        saved, loaded = source.optimizer.state[p_source], target.optimizer.state[p_target]
        assert saved.keys() == loaded.keys() and all(torch.equal(saved[k], loaded[k]) for k in saved)


def test_group_state_of_other_networks_is_refused(tmp_path: Path) -> None:
    mappers, critic = trained_groups(tmp_path, "a.toml")[0], trained_groups(tmp_path, "b.toml")[1]
    with pytest.raises(StateError, match=r"does not fit networks \['G', 'E'\]"):
        mappers.load_state_dict(critic.state_dict())


def test_rmsprop_and_sgd_groups_are_built_with_their_options(tmp_path: Path) -> None:
    data = aegan_data()
    data["optim"]["mappers"] = {"networks": ["G", "E"], "type": "sgd", "lr": 0.01, "momentum": 0.9}
    data["optim"]["image_critic"] = {"networks": ["Dx"], "type": "rmsprop", "lr": 5e-5, "alpha": 0.9}
    exp = open_recipe(write_recipe(tmp_path, data))
    trainer = Trainer(exp.graph, exp.recipe, torch.device("cpu"))
    kinds = {group.name: group.optimizer for group in trainer.groups}
    assert isinstance(kinds["mappers"], torch.optim.SGD) and kinds["mappers"].defaults["momentum"] == 0.9
    assert isinstance(kinds["image_critic"], torch.optim.RMSprop) and kinds["image_critic"].defaults["alpha"] == 0.9
    assert kinds["image_critic"].defaults["lr"] == 5e-5 and isinstance(kinds["latent_critic"], torch.optim.Adam)
    before = [p.clone() for p in trainer.graph.critics["Dx"].parameters()]
    losses = trainer.step()
    assert torch.isfinite(losses).all()
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.graph.critics["Dx"].parameters()))


@pytest.mark.parametrize(
    ("group", "message"),
    [
        ({"type": "sgd", "betas": [0.5, 0.9]}, "optimiser type 'sgd' has no betas; it takes momentum"),
        ({"type": "adam", "momentum": 0.9}, "optimiser type 'adam' has no momentum; it takes betas, eps"),
        ({"type": "rmsprop", "alpha": 1.0}, "alpha: Input should be less than 1"),
    ],
)
def test_options_of_another_optimiser_are_refused(tmp_path: Path, group: dict, message: str) -> None:
    data = aegan_data()
    data["optim"]["image_critic"].update(group)
    with pytest.raises(RecipeError, match=message):
        open_recipe(write_recipe(tmp_path, data))
