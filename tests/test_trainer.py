"""Gradient routing and the update schedule of the training step."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import torch

from cyclegen.errors import RecipeError
from cyclegen.experiment import open_recipe
from cyclegen.trainer import Trainer
from tests.conftest import aegan_data, write_recipe

#: For each AEGAN term, the networks its gradient must reach (and no other).
EXPECTED_ROUTES = {
    "adv Dx(z -> G)": {"G"},
    "adv Dx(x -> E -> G)": {"E", "G"},
    "adv Dz(x -> E)": {"E"},
    "adv Dz(z -> G -> E)": {"G", "E"},
    "rec l1(x -> E -> G)": {"E", "G"},
    "rec l2(z -> G -> E)": {"G", "E"},
}


def make_trainer(tmp_path: Path, data: dict | None = None, **overrides: dict) -> Trainer:
    data = data or aegan_data()
    for section, values in overrides.items():
        data.setdefault(section, {}).update(values)
    exp = open_recipe(write_recipe(tmp_path, data))
    return Trainer(exp.graph, exp.recipe, torch.device("cpu"))


def reached(trainer: Trainer) -> set[str]:
    return {
        name
        for name, net in trainer.graph.networks.items()
        if any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
    }


@pytest.mark.parametrize("label", list(EXPECTED_ROUTES))
def test_each_term_reaches_exactly_the_mappers_on_its_path(tmp_path: Path, label: str) -> None:
    trainer = make_trainer(tmp_path)
    index = trainer.loss_names.index(label) - len(trainer.graph.critics)
    losses = trainer.term_losses(trainer.draw_starts(trainer.term_plan.starts))
    losses[index].backward(inputs=trainer.mapper_params)
    assert reached(trainer) == EXPECTED_ROUTES[label]


@pytest.mark.parametrize("index", range(len(EXPECTED_ROUTES)))
def test_every_term_contributes_to_the_mapper_update(tmp_path: Path, index: int) -> None:
    """A full mapper update with only one term weighted: guards against a term that is
    computed but never reaches the mappers' loss (the AEGAN PyTorch port's Dz bug)."""
    data = aegan_data()
    for i, term in enumerate(data["terms"]):
        term["weight"] = 1.0 if i == index else 0.0
    trainer = make_trainer(tmp_path, data)
    trainer.mapper_phase()
    assert reached(trainer) == EXPECTED_ROUTES[trainer.graph.terms[index].label]


def test_mapper_step_leaves_critics_untouched(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path)
    before = {k: v.clone() for k, v in trainer.graph.critics.state_dict().items()}
    trainer.mapper_phase()
    after = trainer.graph.critics.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in trainer.graph.critics.parameters())


def test_critic_step_leaves_mappers_untouched(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path)
    before = {k: v.clone() for k, v in trainer.graph.mappers.state_dict().items()}
    trainer.critic_phase()
    assert all(torch.equal(before[k], v) for k, v in trainer.graph.mappers.state_dict().items())
    assert all(p.grad is None for p in trainer.graph.mappers.parameters())
    assert all(p.grad is not None for p in trainer.graph.critics.parameters())


def record_steps(trainer: Trainer) -> list[str]:
    log: list[str] = []
    for group in trainer.groups:
        group.optimizer.register_step_post_hook(lambda opt, args, kwargs, name=group.name: log.append(name))
    return log


def test_joint_schedule_counts(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path, schedule={"critic_steps": 2, "mapper_steps": 3})
    log = record_steps(trainer)
    trainer.step()
    assert log == ["image_critic", "latent_critic"] * 2 + ["mappers"] * 3


def test_single_class_schedule_follows_the_reference(tmp_path: Path) -> None:
    """Per step: Dx on real, x_hat, real, x_tilde; Dz likewise; then the mapper updates."""
    trainer = make_trainer(tmp_path, schedule={"critic_batches": "single-class", "mapper_steps": 4})
    log = record_steps(trainer)
    trainer.critic_phase()
    assert log == ["image_critic"] * 4 + ["latent_critic"] * 4
    trainer.mapper_phase()
    assert log[8:] == ["mappers"] * 4


def test_single_class_batches_hold_one_class(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path, schedule={"critic_batches": "single-class"})
    fakes = trainer.make_fakes()
    sequence = trainer.critic_batches("Dx", fakes)
    kinds = ["real" if batch.score_real and not batch.fakes else "fake" for batch in sequence]
    assert kinds == ["real", "fake", "real", "fake"]
    assert all(len(batch.fakes) == (0 if batch.score_real else 1) for batch in sequence)
    by_identity = {id(value): str(path) for path, value in fakes.items()}
    assert [by_identity[id(batch.fakes[0])] for batch in sequence[1::2]] == ["z -> G", "x -> E -> G"]
    joint = make_trainer(tmp_path).critic_batches("Dx", fakes)
    assert len(joint) == 1 and joint[0].score_real and len(joint[0].fakes) == 2


def test_fakes_in_eval_mode_switch_noise_off_and_back(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path, schedule={"fakes": "eval"})
    modes: list[bool] = []
    trainer.graph.mappers["G"].register_forward_hook(lambda m, i, o: modes.append(m.training))
    trainer.make_fakes()
    assert modes and not any(modes)
    assert trainer.graph.mappers["G"].training


PENALTY_PLUGIN = '''
from cyclegen import Penalty, hookimpl
from cyclegen_losses import Hinge

CALLS = []


class Counting(Penalty):
    """A constant penalty that records the batch sizes it saw."""

    def __call__(self, critic, real, fake):
        CALLS.append((real.shape[0], fake.shape[0]))
        return critic(real).sum() * 0.0 + 1.0


class CountingPenalty(Hinge):
    """Hinge with a penalty of its own."""

    def penalties(self):
        return [Counting()]


@hookimpl
def cyclegen_register(registry):
    registry.adversarial_loss("counting", CountingPenalty)
'''


@pytest.mark.parametrize(("batching", "updates"), [("joint", 1), ("single-class", 4)])
def test_penalties_get_real_and_fake_in_both_batchings(tmp_path: Path, batching: str, updates: int) -> None:
    (tmp_path / "counting.py").write_text(PENALTY_PLUGIN)
    data = aegan_data()
    data["plugins"] = ["counting.py"]
    data["adversarial"] = {"loss": "counting"}
    trainer = make_trainer(tmp_path, data, schedule={"critic_batches": batching})
    module = sys.modules[type(trainer.graph.adversarial).__module__]
    module.CALLS.clear()
    log = record_steps(trainer)
    losses, _ = trainer.critic_phase()
    assert log.count("image_critic") == updates
    # Dx has two fake paths, Dz two: one penalty per (real, fake) pair, in either batching.
    assert module.CALLS == [(32, 32)] * 4
    assert all(loss.item() >= 1.0 for loss in losses)  # the penalty is part of the critic loss


def test_state_dict_carries_a_trainer_on_exactly(tmp_path: Path) -> None:
    data = aegan_data()
    data["schedule"] = {"critic_batches": "single-class"}
    trained = make_trainer(tmp_path, data)
    for _ in range(3):
        trained.step()
    state = copy.deepcopy(trained.state_dict())  # like torch's, it refers to the live tensors
    assert set(state) == {"step", "net", "optim", "scalers", "rng", "domains", "history"}
    fresh = make_trainer(tmp_path, data)
    fresh.load_state_dict(state)
    assert fresh.step_count == 3
    torch.set_rng_state(state["rng"]["torch"])
    expected = trained.step()
    torch.set_rng_state(state["rng"]["torch"])
    assert torch.equal(fresh.step(), expected)


OLD_PENALTY_PLUGIN = '''
from cyclegen import hookimpl
from cyclegen_losses import Hinge


class OldStyle(Hinge):
    def penalty(self, critic, real, fake):
        return critic(real).sum()


@hookimpl
def cyclegen_register(registry):
    registry.adversarial_loss("old-style", OldStyle)
'''


def test_a_loss_with_the_old_penalty_method_is_refused_not_ignored(tmp_path: Path) -> None:
    (tmp_path / "old_style.py").write_text(OLD_PENALTY_PLUGIN)
    data = aegan_data()
    data["plugins"] = ["old_style.py"]
    data["adversarial"] = {"loss": "old-style"}
    with pytest.raises(RecipeError, match=r"'old-style' defines penalty\(critic, real, fake\), which cyclegen no longer calls"):
        open_recipe(write_recipe(tmp_path, data))
