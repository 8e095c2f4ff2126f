"""Engine features CycleGAN needs: identity terms, sample histories, learning-rate schedules,
and translations scored against true pairs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from cyclegen.cli import app
from cyclegen.errors import RecipeError
from cyclegen.experiment import open_recipe
from tests.conftest import cyclegan_data, write_recipe
from tests.test_run import all_weights, train
from tests.test_trainer import make_trainer, reached

ROUTES = {
    "adv Db(a -> F)": {"F"},
    "adv Da(b -> H)": {"H"},
    "rec l1(a -> F -> H)": {"F", "H"},
    "rec l1(b -> H -> F)": {"F", "H"},
    "idt l1(a -> H)": {"H"},
    "idt l1(b -> F)": {"F"},
}


@pytest.mark.parametrize("label", list(ROUTES))
def test_each_cyclegan_term_reaches_exactly_its_mappers(tmp_path: Path, label: str) -> None:
    trainer = make_trainer(tmp_path, cyclegan_data())
    index = trainer.loss_names.index(label) - len(trainer.graph.critics)
    losses = trainer.term_losses(trainer.draw_starts(trainer.term_plan.starts))
    losses[index].backward(inputs=trainer.mapper_params)
    assert reached(trainer) == ROUTES[label]


def test_identity_term_feeds_the_start_domain_to_the_mapper(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path, cyclegan_data())
    inputs = trainer.draw_starts(trainer.term_plan.starts)
    index = trainer.loss_names.index("idt l1(a -> H)") - len(trainer.graph.critics)
    expected = (trainer.graph.mappers["H"](inputs["a"]) - inputs["a"]).abs().mean()
    assert torch.allclose(trainer.term_losses(inputs)[index], expected)


@pytest.mark.parametrize(
    ("path", "message"),
    [("a -> F", "must start in 'b'"), ("a -> F -> H", "a domain and one mapper"), ("a -> X", "a domain and one mapper")],
)
def test_identity_term_errors(tmp_path: Path, path: str, message: str) -> None:
    data = cyclegan_data()
    data["terms"][4]["path"] = path
    with pytest.raises(RecipeError, match=message):
        open_recipe(write_recipe(tmp_path, data))


def test_identity_term_needs_equal_shapes(tmp_path: Path) -> None:
    data = cyclegan_data()
    data["domains"]["b"] = {"type": "gaussian", "dim": 3}
    data["terms"] = [t for t in data["terms"] if t["path"] != "b -> F"]
    with pytest.raises(RecipeError, match="same shape"):
        open_recipe(write_recipe(tmp_path, data))


# -- sample history ---------------------------------------------------------------------


def test_critic_sees_fakes_through_its_history(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path, cyclegan_data())
    assert set(trainer.histories) == {("Da", p) for p in trainer.critic_fake_paths["Da"]} | {
        ("Db", p) for p in trainer.critic_fake_paths["Db"]
    }
    trainer.critic_phase()
    assert all(h.count == 8 for h in trainer.histories.values())  # 16 fakes offered, 8 kept


def test_resume_with_histories_and_lr_schedule_is_bit_exact(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path, cyclegan_data(steps=12, checkpoint_every=0))
    straight = train(recipe, tmp_path / "straight")
    train(recipe, tmp_path / "halves", ["train.steps=7"])
    resumed = train(recipe, tmp_path / "halves")
    a, b = all_weights(straight), all_weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    for ha, hb in zip(straight.trainer.histories.values(), resumed.trainer.histories.values()):
        assert torch.equal(ha.samples, hb.samples)


# -- learning-rate schedules ------------------------------------------------------------


def test_trainer_applies_and_logs_the_schedule(tmp_path: Path) -> None:
    run = train(write_recipe(tmp_path, cyclegan_data(steps=12, checkpoint_every=0)), tmp_path / "run")
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    # Logged after steps 4, 8, 12: the lr of their last updates (0-based 3, 7, 11), decaying from update 6.
    assert [round(line["lr"]["mappers"] / 1e-3, 6) for line in lines] == [1.0, round(1 - 1 / 6, 6), round(1 - 5 / 6, 6)]
    assert run.trainer.groups[0].lr == pytest.approx(1e-3 / 6)


# -- translations scored against true pairs -----------------------------------------------

PAIRED_PLUGIN = '''
import torch
from cyclegen import Domain, PairMetric, hookimpl


class MeanAbs(PairMetric):
    def evaluate(self, target, output, domain):
        return {"l1": float((output - target).abs().mean())}


class Views(Domain):
    """Two views of the same 2-D points: `scale` times the point. Held-out points have keys."""

    def __init__(self, name: str, scale: float = 1.0, offset: int = 0):
        super().__init__(name, (2,))
        points = torch.randn(40, 2, generator=torch.Generator().manual_seed(0))
        self.keys = [f"p{i}" for i in range(40)][offset:]
        self.test = points[offset:] * scale

    def batch(self, n, generator, split="train"):
        return torch.randn(n, 2, generator=generator)

    def held_out(self):
        return self.keys, self.test

    def read(self, paths, limit=None):
        return torch.cat([torch.load(p) for p in paths])[:limit]

    def pair_metrics(self):
        return [MeanAbs()]


@hookimpl
def cyclegen_register(registry):
    registry.domain("views", Views)
'''


def test_eval_scores_translations_against_true_pairs(tmp_path: Path) -> None:
    (tmp_path / "views.py").write_text(PAIRED_PLUGIN)
    data = cyclegan_data(steps=8)
    data["plugins"] = ["views.py"]
    data["domains"] = {"a": {"type": "views"}, "b": {"type": "views", "scale": 3.0, "offset": 10}}
    run = train(write_recipe(tmp_path, data), tmp_path / "run")
    result = CliRunner().invoke(app, ["eval", str(tmp_path / "run"), "--json", "--trust-plugins"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    graph = run.exp.graph
    points = torch.randn(40, 2, generator=torch.Generator().manual_seed(0))[10:]  # keys shared by both
    with torch.no_grad():
        graph.mappers.eval()
        expected_f = (graph.mappers["F"](points) - 3 * points).abs().mean()
        expected_h = (graph.mappers["H"](3 * points) - points).abs().mean()
    assert metrics["F: a -> b vs true pairs"]["pairs"] == 30
    assert metrics["F: a -> b vs true pairs"]["l1"] == pytest.approx(float(expected_f), rel=1e-5)
    assert metrics["H: b -> a vs true pairs"]["l1"] == pytest.approx(float(expected_h), rel=1e-5)
    assert "identity: a -> H" in metrics and "cycle: a -> F -> H" in metrics


def test_domains_without_keys_get_no_translation_section(tmp_path: Path) -> None:
    run = train(write_recipe(tmp_path, cyclegan_data(steps=8)), tmp_path / "run")
    assert not any("true pairs" in section for section in run.evaluate())


def test_commands_on_a_domain_without_pictures_fail_clearly(tmp_path: Path) -> None:
    (tmp_path / "views.py").write_text(PAIRED_PLUGIN)
    data = cyclegan_data(steps=8)
    data["plugins"] = ["views.py"]
    data["domains"] = {"a": {"type": "views"}, "b": {"type": "views", "scale": 3.0}}
    train(write_recipe(tmp_path, data), tmp_path / "run")
    inputs = tmp_path / "points.pt"
    torch.save(torch.randn(5, 2), inputs)
    result = CliRunner().invoke(app, ["translate", str(tmp_path / "run"), "--mapper", "F", str(inputs), "--trust-plugins"])
    assert result.exit_code == 1, result.output
    assert "domain 'b' cannot display samples; `cyclegen sample` can write raw tensors" in result.output
