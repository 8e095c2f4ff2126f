"""The cyclegen-wasserstein plugin: its own distribution, its losses and penalties, its recipes."""

from __future__ import annotations

import importlib.metadata
import json
import math
import tomllib
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn
from typer.testing import CliRunner

import cyclegen_wasserstein.penalties as penalties
from cyclegen.cli import app
from cyclegen.errors import RecipeError
from cyclegen.experiment import open_recipe
from cyclegen.plugins import load_plugins
from cyclegen.trainer import Trainer
from cyclegen_wasserstein import R1, WGAN, WGANGP, GradientPenalty
from tests.conftest import aegan_data, write_recipe
from tests.test_shipped_recipes import RECIPES, faces, open_anime  # noqa: F401 - faces is a fixture

PLUGIN_ROOT = Path(__file__).resolve().parents[1]
INSTALL = "pip install -e plugins/cyclegen-wasserstein"
COMPONENTS = {
    ("adversarial_loss", "wgan"),
    ("adversarial_loss", "wgan-gp"),
    ("penalty", "r1"),
    ("penalty", "gradient-penalty"),
}

runner = CliRunner()


# -- the distribution ------------------------------------------------------------------------


def test_plugin_is_its_own_installed_distribution() -> None:
    dist = importlib.metadata.distribution("cyclegen-wasserstein")
    assert dist.version == "0.1.0"
    entries = {(e.group, e.name): e.value for e in dist.entry_points}
    assert entries == {("cyclegen", "wasserstein"): "cyclegen_wasserstein"}
    assert "cyclegen" in (dist.requires or [])
    # the main distribution does not provide it
    main = importlib.metadata.distribution("cyclegen")
    assert "wasserstein" not in {e.name for e in main.entry_points if e.group == "cyclegen"}
    import cyclegen_wasserstein

    assert Path(cyclegen_wasserstein.__file__).resolve().parent.parent == PLUGIN_ROOT


def test_load_plugins_registers_the_components_under_the_plugin() -> None:
    plugins = load_plugins()
    assert plugins.versions()["wasserstein"] == "0.1.0"
    registry = plugins.registry
    for kind, name in COMPONENTS:
        component = registry.components[kind][name]
        assert (component.plugin, component.version) == ("wasserstein", "0.1.0")
    assert {"bce", "lsgan", "hinge"} <= set(registry.names("adversarial_loss"))


def test_options_come_from_the_factories() -> None:
    registry = load_plugins().registry
    loss = registry.build("adversarial_loss", "wgan-gp", "adversarial", {"gp_weight": 5})
    assert loss.gradient_penalty.weight == 5.0 and loss.gradient_penalty.target == 1.0
    assert registry.build("adversarial_loss", "wgan", "adversarial", {}).clip == 0.01
    penalty = registry.build("penalty", "gradient-penalty", "adversarial.penalty", {"weight": 2, "target": 0.5})
    assert (penalty.weight, penalty.target) == (2.0, 0.5)
    assert registry.build("penalty", "r1", "adversarial.penalty", {}).weight == 10.0
    with pytest.raises(RecipeError, match="has no option 'label_smoothing'.*gp_weight"):
        registry.build("adversarial_loss", "wgan-gp", "adversarial", {"label_smoothing": 0.05})


# -- losses ----------------------------------------------------------------------------------


def test_wasserstein_losses_are_signed_means_in_float32() -> None:
    scores = torch.tensor([[[[1.0, 2.0], [3.0, 6.0]]], [[[0.0, -2.0], [1.0, 1.0]]]], dtype=torch.bfloat16)
    for loss in (WGAN(), WGANGP()):
        assert loss.critic_real(scores).dtype == torch.float32
        assert loss.critic_real(scores).item() == pytest.approx(-1.5)
        assert loss.critic_fake(scores).item() == pytest.approx(1.5)
        assert loss.mapper(scores).item() == pytest.approx(-1.5)
        assert type(loss).preferred_critic_steps == 5
    assert WGAN().penalties() == []


# -- penalties by hand -----------------------------------------------------------------------


def latent_critic() -> nn.Module:
    """(N, 5) -> (N, 1): a smooth nonlinear critic."""
    return nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 1))


def image_critic() -> nn.Module:
    """(N, 3, 8, 8) -> (N, 1, 4, 4): a score map, as a PatchGAN gives."""
    return nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1), nn.Tanh(), nn.Conv2d(4, 1, 3, 1, 1))


CRITICS = {"latent": (latent_critic, (5,)), "image": (image_critic, (3, 8, 8))}


def per_sample_gradient(critic: nn.Module, sample: Tensor) -> Tensor:
    """The gradient of one sample's score, a score map averaged over its patches."""
    x = sample.unsqueeze(0).clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).mean(), x)
    return grad.flatten()


def test_gradient_penalty_of_a_linear_critic_is_exact() -> None:
    """D(x) = w.x + b has gradient w everywhere: GP = weight * (|w| - target)^2."""
    critic = nn.Sequential(nn.Flatten(), nn.Linear(12, 1))
    with torch.no_grad():
        critic[1].weight.zero_()
        critic[1].weight[0, :3] = torch.tensor([0.0, 3.0, 4.0])  # |w| = 5
    real, fake = torch.randn(6, 3, 2, 2), torch.randn(6, 3, 2, 2)
    assert GradientPenalty()(critic, real, fake).item() == pytest.approx(10 * 4**2, rel=1e-6)
    penalty = GradientPenalty(weight=2.0, target=2.0)(critic, real, fake)
    assert penalty.item() == pytest.approx(2 * 3**2, rel=1e-6)
    # it trains the critic: d/dw weight * (|w| - t)^2 = 2 weight (|w| - t) w / |w|
    (grad,) = torch.autograd.grad(penalty, critic[1].weight)
    assert torch.allclose(grad, 2 * 2.0 * (5 - 2) * critic[1].weight / 5, atol=1e-5)
    assert WGANGP(gp_weight=3.0).penalties()[0](critic, real, fake).item() == pytest.approx(3 * 4**2, rel=1e-6)


@pytest.mark.parametrize("kind", list(CRITICS))
def test_gradient_penalty_matches_a_per_sample_hand_computation(kind: str) -> None:
    make, shape = CRITICS[kind]
    torch.manual_seed(1)
    critic = make()
    real, fake = torch.randn(7, *shape), torch.randn(7, *shape)
    torch.manual_seed(123)
    penalty = GradientPenalty(weight=3.0, target=0.7)(critic, real, fake)
    torch.manual_seed(123)
    eps = torch.rand(7)  # one uniform position per sample, from the global stream
    expected = sum(
        (per_sample_gradient(critic, e * r + (1 - e) * f).norm() - 0.7) ** 2 for e, r, f in zip(eps, real, fake)
    )
    assert penalty.item() == pytest.approx(3.0 * expected.item() / 7, rel=1e-5)
    grads = [g for g in torch.autograd.grad(penalty, list(critic.parameters()), allow_unused=True) if g is not None]
    assert all(torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("kind", list(CRITICS))
def test_r1_matches_a_hand_computation_and_ignores_fakes(kind: str) -> None:
    make, shape = CRITICS[kind]
    torch.manual_seed(2)
    critic = make()
    real = torch.randn(5, *shape)
    penalty = R1(weight=4.0)(critic, real, torch.randn(5, *shape))
    expected = sum(per_sample_gradient(critic, r).pow(2).sum() for r in real) / 5
    assert penalty.item() == pytest.approx(4.0 / 2 * expected.item(), rel=1e-5)
    assert R1(weight=4.0)(critic, real, torch.zeros(5, *shape)).item() == pytest.approx(penalty.item(), rel=1e-6)
    linear = nn.Linear(2, 1)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[3.0, 4.0]]))
    assert R1()(linear, torch.randn(9, 2), torch.randn(9, 2)).item() == pytest.approx(10 / 2 * 25, rel=1e-6)


# -- mixed precision and zero gradients ------------------------------------------------------


def constant_critic() -> nn.Module:
    """Zero weights: the scores do not depend on the input, so its gradient is exactly zero."""
    critic = nn.Linear(5, 1)
    nn.init.zeros_(critic.weight)
    return critic


def dead_relu_critic() -> nn.Module:
    """Every ReLU is off for inputs of moderate size: the input gradient is exactly zero."""
    critic = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 1))
    nn.init.constant_(critic[0].bias, -100.0)
    return critic


ZERO_GRADIENT = {"constant": constant_critic, "dead-relu": dead_relu_critic}


def penalty_under_autocast(critic: nn.Module, real: Tensor, fake: Tensor) -> tuple[Tensor, list[Tensor]]:
    with torch.autocast("cpu", dtype=torch.bfloat16):
        (gradient_penalty,) = WGANGP().penalties()
        penalty = gradient_penalty(critic, real, fake)
    grads = torch.autograd.grad(penalty, list(critic.parameters()), allow_unused=True)
    return penalty, [g for g in grads if g is not None]


@pytest.mark.parametrize("make", [latent_critic, *ZERO_GRADIENT.values()], ids=["mlp", *ZERO_GRADIENT])
def test_wgan_gp_under_bfloat16_autocast_stays_finite(make) -> None:
    torch.manual_seed(3)
    critic = make()
    real, fake = torch.randn(8, 5), torch.randn(8, 5).bfloat16()  # fakes may come out of autocast
    penalty, grads = penalty_under_autocast(critic, real, fake)
    assert penalty.dtype == torch.float32 and torch.isfinite(penalty)
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_wgan_gp_under_autocast_on_an_image_critic_with_a_score_map() -> None:
    torch.manual_seed(4)
    critic = image_critic()
    penalty, grads = penalty_under_autocast(critic, torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8))
    assert penalty.dtype == torch.float32 and torch.isfinite(penalty) and penalty > 0
    assert all(torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)


class TiledScore(nn.Module):
    """A linear score per sample, repeated over a (size x size) map, as a PatchGAN's could be."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size
        self.linear = nn.Linear(12, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x.flatten(1))[:, :, None, None].expand(-1, 1, self.size, self.size)


@pytest.mark.parametrize("penalty", [GradientPenalty(weight=3.0), R1(weight=3.0)], ids=["gradient-penalty", "r1"])
def test_score_maps_are_averaged_so_the_weight_ignores_the_patch_count(penalty) -> None:
    torch.manual_seed(5)
    scalar = nn.Linear(12, 1)
    real, fake = torch.randn(6, 3, 2, 2), torch.randn(6, 3, 2, 2)
    values = []
    for size in (1, 4, 8):
        critic = TiledScore(size)
        critic.linear.load_state_dict(scalar.state_dict())
        torch.manual_seed(6)  # the same interpolation positions each time
        values.append(penalty(critic, real, fake).item())
    torch.manual_seed(6)
    expected = penalty(nn.Sequential(nn.Flatten(), scalar), real, fake).item()
    assert values == pytest.approx([expected] * 3, rel=1e-6)


def test_half_precision_samples_are_penalised_in_float32() -> None:
    """|w|^2 = 12 * 300^2 overflows float16 (max 65504): the norm must be taken in float32."""
    critic = nn.Linear(12, 1)
    nn.init.constant_(critic.weight, 300.0)
    real, fake = torch.randn(4, 12).half(), torch.randn(4, 12).half()
    penalty, grads = penalty_under_autocast(critic, real, fake)
    assert penalty.item() == pytest.approx(10 * (300 * math.sqrt(12) - 1) ** 2, rel=1e-3)
    assert all(torch.isfinite(g).all() for g in grads)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        r1 = R1()(critic, real, fake)
    assert r1.item() == pytest.approx(10 / 2 * 12 * 300**2, rel=1e-3)


@pytest.mark.parametrize("name", list(ZERO_GRADIENT))
def test_the_epsilon_in_the_norm_is_what_keeps_zero_gradients_finite(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sqrt has an infinite derivative at 0: without the epsilon, a zero input gradient gives NaN."""
    real, fake = torch.randn(8, 5), torch.randn(8, 5)
    torch.manual_seed(5)
    _, grads = penalty_under_autocast(ZERO_GRADIENT[name](), real, fake)
    assert all(torch.isfinite(g).all() for g in grads)
    monkeypatch.setattr(penalties, "NORM_EPS", 0.0)  # the naive norm
    torch.manual_seed(5)
    _, naive = penalty_under_autocast(ZERO_GRADIENT[name](), real, fake)
    assert not all(torch.isfinite(g).all() for g in naive)


def test_batch_norm_in_a_critic_is_warned_about_once() -> None:
    critic = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.Linear(8, 1))
    with pytest.warns(UserWarning, match="batch statistics"):
        GradientPenalty()(critic, torch.randn(4, 5), torch.randn(4, 5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        GradientPenalty()(critic, torch.randn(4, 5), torch.randn(4, 5))
        R1()(latent_critic(), torch.randn(4, 5), torch.randn(4, 5))  # no batch norm, no warning


# -- the engine ------------------------------------------------------------------------------


def trainer_for(tmp_path: Path, adversarial: dict[str, Any], name: str = "recipe.toml", **schedule: Any) -> Trainer:
    data = aegan_data()
    data["adversarial"] = adversarial
    if schedule:
        data["schedule"] = schedule
    exp = open_recipe(write_recipe(tmp_path, data, name))
    return Trainer(exp.graph, exp.recipe, torch.device("cpu"))


def critic_params(trainer: Trainer, name: str) -> list[Tensor]:
    return [p.detach().clone() for p in trainer.graph.critics[name].parameters()]


@pytest.mark.parametrize("loss", ["wgan", "wgan-gp"])
def test_wasserstein_losses_get_five_critic_rounds_unless_the_schedule_says(tmp_path: Path, loss: str) -> None:
    trainer = trainer_for(tmp_path, {"loss": loss})
    assert trainer.graph.critic_steps == 5
    updates: list[str] = []
    for group in trainer.critic_groups:
        group.optimizer.register_step_post_hook(lambda *_, name=group.name: updates.append(name))
    trainer.step()
    assert sorted(updates) == ["image_critic"] * 5 + ["latent_critic"] * 5
    assert trainer_for(tmp_path, {"loss": loss}, "set.toml", critic_steps=2).graph.critic_steps == 2
    assert trainer_for(tmp_path, {"loss": "bce"}, "bce.toml").graph.critic_steps == 1


def test_wgan_clips_every_critic_weight_after_each_update(tmp_path: Path) -> None:
    trainer = trainer_for(tmp_path, {"loss": "wgan", "clip": 0.02})
    before = [p for name in trainer.graph.critics for p in critic_params(trainer, name)]
    assert max(p.abs().max() for p in before) > 0.02  # default init is far outside the box
    trainer.step()
    for name, critic in trainer.graph.critics.items():
        params = list(critic.parameters())
        assert params and all(p.abs().max() <= 0.02 for p in params), name
        assert any((p.abs() == 0.02).any() for p in params), name  # clipping did happen
    assert any(p.abs().max() > 0.02 for p in trainer.graph.mappers.parameters())  # mappers untouched


@pytest.mark.parametrize(
    ("penalised", "plain"),
    [
        ({"loss": "bce", "penalty": {"type": "r1", "weight": 1.0}}, {"loss": "bce"}),
        ({"loss": "wgan-gp"}, {"loss": "wgan-gp", "gp_weight": 0.0}),
        (
            {"loss": "hinge", "penalty": {"type": "gradient-penalty"}},
            {"loss": "hinge", "penalty": {"type": "gradient-penalty", "weight": 0.0}},
        ),
    ],
    ids=["bce+r1", "wgan-gp", "hinge+gp"],
)
def test_the_penalty_changes_both_critics_updates(tmp_path: Path, penalised: dict, plain: dict) -> None:
    a, b = trainer_for(tmp_path, penalised, "a.toml"), trainer_for(tmp_path, plain, "b.toml")
    for name in ("Dx", "Dz"):
        assert all(torch.equal(p, q) for p, q in zip(critic_params(a, name), critic_params(b, name)))
    torch.manual_seed(0)
    a.critic_phase()
    torch.manual_seed(0)
    b.critic_phase()
    for name in ("Dx", "Dz"):
        assert not all(torch.equal(p, q) for p, q in zip(critic_params(a, name), critic_params(b, name))), name


def test_a_zero_weight_penalty_leaves_the_update_as_without_it(tmp_path: Path) -> None:
    """The control for the test above: same seeds, same update, when the penalty weighs nothing."""
    a = trainer_for(tmp_path, {"loss": "bce", "penalty": {"type": "r1", "weight": 0.0}}, "a.toml")
    b = trainer_for(tmp_path, {"loss": "bce"}, "b.toml")
    torch.manual_seed(0)
    a.critic_phase()
    torch.manual_seed(0)
    b.critic_phase()
    for name in ("Dx", "Dz"):
        assert all(torch.allclose(p, q, atol=1e-7) for p, q in zip(critic_params(a, name), critic_params(b, name)))


@pytest.mark.parametrize(
    "adversarial",
    [{"loss": "wgan-gp"}, {"loss": "bce", "penalty": {"type": "r1", "weight": 1.0}}],
    ids=["wgan-gp", "bce+r1"],
)
def test_tiny_aegan_trains_through_the_command_line(tmp_path: Path, adversarial: dict) -> None:
    data = aegan_data(steps=4, log_every=2, sample_every=0, checkpoint_every=0)
    data["adversarial"] = adversarial
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["run", str(write_recipe(tmp_path, data)), "--out", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert f"trained 4 steps into {run_dir}" in result.output
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4]
    for record in records:
        losses = record["losses"]
        assert {"critic Dx", "critic Dz"} <= set(losses)
        assert all(math.isfinite(value) for value in losses.values()), losses


# -- recipes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("copy", "original"), [("aegan_grid_wgan", "aegan_grid"), ("aegan_anime_wgan", "aegan_anime")])
def test_wgan_recipes_differ_from_their_originals_only_in_name_and_loss(copy: str, original: str) -> None:
    new = tomllib.loads((RECIPES / f"{copy}.toml").read_text())
    old = tomllib.loads((RECIPES / f"{original}.toml").read_text())
    assert new.pop("name") == copy.replace("_", "-") and old.pop("name") == original.replace("_", "-")
    assert new.pop("adversarial") == {"loss": "wgan-gp"}
    assert old.pop("adversarial")["loss"] != "wgan-gp"
    assert new == old
    header = (RECIPES / f"{copy}.toml").read_text().split("\nname =")[0]
    assert INSTALL in header and 'loss = "wgan-gp"' in header


def test_grid_wgan_recipe_validates() -> None:
    exp = open_recipe(RECIPES / "aegan_grid_wgan.toml")
    assert isinstance(exp.graph.adversarial, WGANGP) and exp.graph.adversarial.gradient_penalty.weight == 10.0
    assert exp.recipe.schedule.critic_steps is None  # so WGAN-GP's 5 rounds apply
    assert exp.graph.critic_steps == 5


def test_anime_wgan_recipe_validates(faces: Path) -> None:
    exp = open_anime(RECIPES / "aegan_anime_wgan.toml", faces)
    assert isinstance(exp.graph.adversarial, WGANGP)
    assert exp.recipe.schedule.critic_steps == 1 and exp.graph.domains["x"].shape == (3, 64, 64)


# -- without the plugin ----------------------------------------------------------------------


def test_blocked_plugin_gives_the_install_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recipe = RECIPES / "aegan_grid_wgan.toml"
    assert runner.invoke(app, ["validate", str(recipe)]).exit_code == 0
    monkeypatch.setenv("CYCLEGEN_BLOCK_PLUGINS", "wasserstein")
    registry = load_plugins().registry
    assert not any(name in registry.components[kind] for kind, name in COMPONENTS)
    result = runner.invoke(app, ["validate", str(recipe)])
    assert result.exit_code == 1
    assert "adversarial.loss" in result.output and "'wgan-gp'" in result.output
    assert "cyclegen-wasserstein" in result.output and INSTALL in result.output
    assert "Traceback" not in result.output
    data = aegan_data()
    data["adversarial"] = {"loss": "bce", "penalty": {"type": "r1"}}
    result = runner.invoke(app, ["validate", str(write_recipe(tmp_path, data))])
    assert result.exit_code == 1
    assert "penalty 'r1'" in result.output and INSTALL in result.output
