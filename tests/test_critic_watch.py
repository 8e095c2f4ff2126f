"""The warning for a critic that scores every sample alike, through real training runs."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from cyclegen.cli import app
from cyclegen.critic_watch import CriticWatch
from tests.conftest import aegan_data, write_recipe

runner = CliRunner()

#: A critic whose input-dependent part is switched off between two update counts: its scores
#: then collapse onto its trainable bias, as a critic that stopped learning does.
FADING_CRITIC = '''
import torch
from torch import nn
from cyclegen import Critic, hookimpl


class Fading(Critic):
    def __init__(self, domain, off_from: int = 10**9, off_until: int = 10**9) -> None:
        super().__init__(domain)
        self.net = nn.Sequential(nn.Linear(domain.shape[0], 32), nn.ReLU(), nn.Linear(32, 1))
        self.bias = nn.Parameter(torch.zeros(1))
        self.off_from, self.off_until = off_from, off_until
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))

    def forward(self, x):
        if self.training:
            self.calls += 1
        off = self.off_from <= int(self.calls) < self.off_until
        return (self.net(x) * (0.0 if off else 1.0)).squeeze(1) + self.bias


@hookimpl
def cyclegen_register(registry):
    registry.critic("fading", Fading)
'''


def gan_data() -> dict:
    """A tiny plain GAN on the 2-D grid: G and its one critic Dx."""
    data = aegan_data(steps=40, log_every=5, sample_every=0, checkpoint_every=0)
    del data["mappers"]["E"], data["critics"]["Dz"], data["optim"]["latent_critic"]
    data["optim"]["mappers"]["networks"] = ["G"]
    data["terms"] = [{"critic": "Dx", "path": "z -> G"}]
    return data


def fading_run(tmp_path: Path, **critic: int) -> tuple[list[dict], str]:
    (tmp_path / "fading.py").write_text(FADING_CRITIC)
    data = gan_data()
    data["plugins"] = ["fading.py"]
    data["critics"]["Dx"] = {"type": "fading", "domain": "x", **critic}
    result = runner.invoke(app, ["run", str(write_recipe(tmp_path, data)), "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    return lines, result.output


def test_a_critic_whose_scores_collapse_is_named_once_with_its_step(tmp_path: Path) -> None:
    # Dx is scored 3 times a step in training mode (real, fake, G's term): off from step 14 on.
    lines, output = fading_run(tmp_path, off_from=40)
    spreads = [line["critic spread"]["Dx"] for line in lines]
    assert spreads[0] > 0.1 and all(spread < 1e-6 for spread in spreads[3:])
    warned = [line for line in lines if line.get("warnings")]
    assert len(warned) == 1  # once per fall, not every log line
    (message,) = warned[0]["warnings"]
    step = warned[0]["step"]
    assert f"critic Dx's scores hardly vary: over steps {step - 4}-{step}" in message and "bce" in message
    assert "warning: critic Dx's scores hardly vary" in " ".join(output.split())


def test_a_critic_that_recovers_is_said_to_vary_again(tmp_path: Path) -> None:
    lines, _ = fading_run(tmp_path, off_from=40, off_until=80)
    messages = [message for line in lines for message in line.get("warnings", [])]
    assert len(messages) == 2
    assert "hardly vary" in messages[0] and "Dx's scores vary again" in messages[1]


def test_a_critic_flat_from_the_start_and_healthy_runs_are_not_warned(tmp_path: Path) -> None:
    lines, _ = fading_run(tmp_path, off_from=0)  # constant from its first score: nothing stopped
    assert not any(line.get("warnings") for line in lines)
    data = aegan_data(steps=40, log_every=5, sample_every=0, checkpoint_every=0)
    result = runner.invoke(app, ["run", str(write_recipe(tmp_path, data, "healthy.toml")), "--out", str(tmp_path / "ok")])
    assert result.exit_code == 0, result.output
    healthy = [json.loads(line) for line in (tmp_path / "ok" / "metrics.jsonl").read_text().splitlines()]
    assert not any(line.get("warnings") for line in healthy) and set(healthy[-1]["critic spread"]) == {"Dx", "Dz"}


def test_the_watch_needs_a_floor_and_a_critic_that_was_lively() -> None:
    watch = CriticWatch("bce", 0.1)
    assert watch.check(1, 10, {"D": 0.05}) == []  # never above the floor yet
    assert watch.check(11, 20, {"D": 0.5}) == []
    assert "over steps 21-30" in watch.check(21, 30, {"D": 0.05})[0]
    assert watch.check(31, 40, {"D": 0.01}) == []  # still flat: said once
    assert CriticWatch("wgan", None).check(1, 10, {"D": 0.0}) == []
