"""First-party components on known inputs: losses, toy domains and their metrics, priors."""

from __future__ import annotations

import math
import tomllib

import pytest
import torch

from cyclegen.streams import domain_generator
from cyclegen.plugins import load_plugins
from cyclegen.toml_writer import dumps
from tests.conftest import aegan_data

REGISTRY = load_plugins().registry


def build(kind: str, name: str, **options: object) -> object:
    context = {"domain": {"name": "x"}}.get(kind, {})
    return REGISTRY.build(kind, name, "test", options, **context)  # type: ignore[arg-type]


def test_bce_two_sided_label_smoothing() -> None:
    loss = build("adversarial_loss", "bce", label_smoothing=0.05)
    logits = torch.tensor([0.3, -1.2])
    p = torch.sigmoid(logits)
    expected_real = -(0.95 * p.log() + 0.05 * (1 - p).log()).mean()
    expected_fake = -(0.05 * p.log() + 0.95 * (1 - p).log()).mean()
    assert loss.critic_real(logits).item() == pytest.approx(expected_real.item(), rel=1e-5)
    assert loss.critic_fake(logits).item() == pytest.approx(expected_fake.item(), rel=1e-5)
    assert loss.mapper(logits).item() == pytest.approx(-p.log().mean().item(), rel=1e-5)
    one_sided = build("adversarial_loss", "bce", label_smoothing=0.1, one_sided=True)
    assert one_sided.critic_fake(logits).item() == pytest.approx(-(1 - p).log().mean().item(), rel=1e-5)


def test_bce_rejects_silly_smoothing() -> None:
    from cyclegen.errors import RecipeError

    with pytest.raises(RecipeError, match="label_smoothing must be in"):
        build("adversarial_loss", "bce", label_smoothing=0.7)


def test_lsgan_and_hinge_values() -> None:
    scores = torch.tensor([2.0, -0.5])
    lsgan = build("adversarial_loss", "lsgan")
    assert lsgan.critic_real(scores).item() == pytest.approx((1 + 2.25) / 2)
    assert lsgan.critic_fake(scores).item() == pytest.approx((4 + 0.25) / 2)
    assert lsgan.mapper(scores).item() == pytest.approx((1 + 2.25) / 2)
    hinge = build("adversarial_loss", "hinge")
    assert hinge.critic_real(scores).item() == pytest.approx((0 + 1.5) / 2)
    assert hinge.critic_fake(scores).item() == pytest.approx((3 + 0.5) / 2)
    assert hinge.mapper(scores).item() == pytest.approx(-0.75)


def test_reconstruction_losses() -> None:
    a, b = torch.zeros(2, 2), torch.tensor([[1.0, -1.0], [2.0, 0.0]])
    assert build("reconstruction_loss", "l1")(a, b).item() == pytest.approx(1.0)
    assert build("reconstruction_loss", "l2")(a, b).item() == pytest.approx(1.5)


@pytest.mark.parametrize(("name", "modes", "std"), [("ring", 8, 0.02), ("grid", 25, 0.05)])
def test_toy_domains_match_the_published_benchmarks(name: str, modes: int, std: float) -> None:
    domain = REGISTRY.build("domain", name, "test", {}, name="x")
    assert len(domain.centres) == modes and domain.std == std
    if name == "ring":
        assert torch.allclose(domain.centres.norm(dim=1), torch.full((8,), 2.0))
    else:
        assert sorted(set(domain.centres[:, 0].tolist())) == [-4.0, -2.0, 0.0, 2.0, 4.0]
    samples = domain.batch(5000, domain_generator(0, "x"))
    assert samples.shape == (5000, 2)
    metrics = domain.metrics()[0].evaluate(samples, domain, domain_generator(0, "ref"))
    assert metrics["modes covered"] == modes and metrics["modes (strict)"] == modes
    # Within 3 std of a 2-D isotropic Gaussian: 1 - exp(-4.5) = 98.89% of real samples.
    assert metrics["high quality %"] == pytest.approx(100 * (1 - math.exp(-4.5)), abs=0.5)
    assert metrics["kl"] < 0.01


def test_mode_metrics_on_a_collapsed_generator() -> None:
    domain = REGISTRY.build("domain", "grid", "test", {}, name="x")
    metric = domain.metrics()[0]
    collapsed = domain.centres[7].expand(2500, 2).clone()
    result = metric.evaluate(collapsed, domain, domain_generator(0, "ref"))
    assert result["modes covered"] == 1 and result["modes (strict)"] == 1
    assert result["kl"] == pytest.approx(math.log(25))
    far = torch.full((100, 2), 100.0)
    result = metric.evaluate(far, domain, domain_generator(0, "ref"))
    assert result["modes covered"] == 0 and result["high quality %"] == 0 and math.isnan(result["kl"])


def test_mode_metrics_strict_count_ignores_thin_modes() -> None:
    domain = REGISTRY.build("domain", "ring", "test", {}, name="x")
    counts = [300] * 7 + [5]  # the last mode holds far less than 20% of its share
    samples = torch.cat([domain.centres[i].expand(c, 2) for i, c in enumerate(counts)])
    result = domain.metrics()[0].evaluate(samples, domain, domain_generator(0, "ref"))
    assert result["modes covered"] == 8 and result["modes (strict)"] == 7


def test_priors_sample_their_distribution() -> None:
    gaussian = REGISTRY.build("domain", "gaussian", "test", {"dim": 4, "std": 2.0}, name="z")
    z = gaussian.batch(20000, domain_generator(0, "z"))
    assert z.shape == (20000, 4) and gaussian.kind == "prior"
    assert z.std().item() == pytest.approx(2.0, rel=0.03)
    uniform = REGISTRY.build("domain", "uniform", "test", {"dim": 2, "low": 0.0, "high": 3.0}, name="u")
    u = uniform.batch(1000, domain_generator(0, "u"))
    assert u.min() >= 0 and u.max() <= 3
    moments = gaussian.metrics()[0].evaluate(z[:5000], gaussian, domain_generator(1, "z"))
    assert moments["mean abs error"] < 0.1 and moments["std abs error"] < 0.1


def test_same_seed_same_stream_other_purpose_other_stream() -> None:
    a = torch.randn(3, generator=domain_generator(1, "x"))
    b = torch.randn(3, generator=domain_generator(1, "x"))
    c = torch.randn(3, generator=domain_generator(1, "x", "eval"))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_toml_writer_round_trips_a_recipe() -> None:
    data = aegan_data()
    data["optim"]["mappers"]["betas"] = [0.5, 0.999]
    data["odd key"] = "quote \"me\""
    assert tomllib.loads(dumps(data)) == data


def test_undefined_metrics_are_written_as_json_null() -> None:
    import json

    from cyclegen.evaluate import metrics_json

    text = metrics_json({"G: z -> x": {"kl": math.nan, "modes covered": 3.0}})
    assert json.loads(text) == {"G: z -> x": {"kl": None, "modes covered": 3.0}}
