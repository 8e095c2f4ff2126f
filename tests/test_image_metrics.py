"""Image metrics on synthetic images whose answers are known."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from cyclegen import Domain
from cyclegen_images.metrics import (
    PSNR,
    NumberOfDifferentBins,
    ReconstructionL1,
    Sharpness,
    SlicedWassersteinDistance,
    kmeans,
    laplacian_pyramid,
)

SIZE = 32


class Blobs(Domain):
    """A soft coloured disc on a coloured background, every parameter drawn at random.

    The distribution is continuous, so train and test draws never share an image.
    """

    def __init__(self) -> None:
        super().__init__("blobs", (3, SIZE, SIZE))

    def batch(self, n: int, generator: torch.Generator, split: str = "train") -> Tensor:
        centre = 0.2 + 0.6 * torch.rand(n, 2, 1, 1, generator=generator)
        width = 0.08 + 0.15 * torch.rand(n, 1, 1, generator=generator)
        colour = 2 * torch.rand(n, 3, 1, 1, generator=generator) - 1
        background = 2 * torch.rand(n, 3, 1, 1, generator=generator) - 1
        grid = torch.linspace(0, 1, SIZE)
        squared = (grid.view(1, SIZE, 1) - centre[:, 0]) ** 2 + (grid.view(1, 1, SIZE) - centre[:, 1]) ** 2
        weight = torch.exp(-squared / (2 * width**2))[:, None]
        return background + (colour - background) * weight


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def domain() -> Blobs:
    return Blobs()


def swd(samples: Tensor, domain: Domain) -> dict[str, float]:
    return SlicedWassersteinDistance().evaluate(samples, domain, seeded(0))


@pytest.fixture(scope="module")
def real_vs_real(domain: Blobs) -> dict[str, float]:
    """SWD of a fresh real set: the sampling-noise floor (N=100 keeps the tests fast)."""
    return swd(domain.batch(100, seeded(1), "test"), domain)


def test_pyramid_levels_and_flat_image() -> None:
    flat = torch.full((2, 3, 64, 64), 0.3)
    levels = laplacian_pyramid(flat, 16)
    assert [level.shape[-1] for level in levels] == [64, 32, 16]
    for band in levels[:-1]:
        assert band.abs().max() < 1e-6
    assert torch.allclose(levels[-1], torch.full((2, 3, 16, 16), 0.3))


def test_swd_is_zero_for_identical_sets(domain: Blobs) -> None:
    samples = domain.batch(100, seeded(5), "test")  # the metric draws these same images
    identical = SlicedWassersteinDistance().evaluate(samples, domain, seeded(5))
    assert set(identical) == {"swd 32", "swd 16", "swd avg"}
    assert all(value == pytest.approx(0.0, abs=1e-6) for value in identical.values())


def test_swd_grows_with_noise_at_the_fine_level(domain: Blobs, real_vs_real: dict[str, float]) -> None:
    samples = domain.batch(100, seeded(2), "test")
    noisy = (samples + 0.2 * torch.randn(samples.shape, generator=seeded(3))).clamp(-1, 1)
    assert swd(noisy, domain)["swd 32"] > 5 * real_vs_real["swd 32"]


def test_swd_of_a_collapsed_set_is_much_larger(domain: Blobs, real_vs_real: dict[str, float]) -> None:
    collapsed = domain.batch(1, seeded(2), "test").expand(100, -1, -1, -1)
    assert swd(collapsed, domain)["swd avg"] > 3 * real_vs_real["swd avg"]


def test_swd_is_deterministic_given_the_generator(domain: Blobs) -> None:
    samples = domain.batch(100, seeded(1), "test")
    metric = SlicedWassersteinDistance(directions=64, repeats=2)
    first = metric.evaluate(samples, domain, seeded(3))
    assert metric.evaluate(samples, domain, seeded(3)) == first
    assert metric.evaluate(samples, domain, seeded(4)) != first


def test_kmeans_recovers_separated_clusters() -> None:
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]], dtype=torch.float64)
    points = centres.repeat(50, 1) + 0.1 * torch.randn(150, 2, generator=seeded(0), dtype=torch.float64)
    found, assignment = kmeans(points, 3, 30, seeded(1))
    assert torch.bincount(assignment).tolist() == [50, 50, 50]
    assert torch.cdist(found, centres).min(dim=1).values.max() < 0.1


def test_ndb_finds_few_bins_for_the_same_distribution(domain: Blobs) -> None:
    result = NumberOfDifferentBins().evaluate(domain.batch(1000, seeded(1), "test"), domain, seeded(2))
    assert result["bins"] == 50
    assert result["ndb"] <= 5
    assert result["ndb/k"] == result["ndb"] / 50


def test_ndb_finds_many_bins_for_a_collapsed_set(domain: Blobs) -> None:
    collapsed = domain.batch(1, seeded(1), "test").expand(1000, -1, -1, -1)
    assert NumberOfDifferentBins().evaluate(collapsed, domain, seeded(2))["ndb"] >= 25


def test_ndb_is_deterministic_given_the_generator(domain: Blobs) -> None:
    samples = domain.batch(300, seeded(1), "test")
    metric = NumberOfDifferentBins(bins=20, reference_samples=500)
    assert metric.evaluate(samples, domain, seeded(3)) == metric.evaluate(samples, domain, seeded(3))


def test_l1_of_a_known_offset(domain: Blobs) -> None:
    target = domain.batch(4, seeded(0))
    assert ReconstructionL1().evaluate(target, target + 0.25, domain)["l1"] == pytest.approx(0.25)


def test_psnr_is_capped_for_identical_images_and_exact_for_known_noise(domain: Blobs) -> None:
    target = domain.batch(2, seeded(0))
    assert PSNR().evaluate(target, target, domain)["psnr"] == pytest.approx(10 * math.log10(4 / 1e-10))
    signs = torch.randint(2, target.shape, generator=seeded(1)) * 2 - 1
    scale = torch.tensor([0.1, 0.2]).view(2, 1, 1, 1)  # per-image MSE 0.01 and 0.04
    expected = (10 * math.log10(4 / 0.01) + 10 * math.log10(4 / 0.04)) / 2
    assert PSNR().evaluate(target, target + scale * signs, domain)["psnr"] == pytest.approx(expected)


def test_sharpness_ratio_is_one_for_identical_and_below_one_for_blurred(domain: Blobs) -> None:
    target = (domain.batch(8, seeded(0)) + 0.1 * torch.randn(8, 3, SIZE, SIZE, generator=seeded(1))).clamp(-1, 1)
    assert Sharpness().evaluate(target, target, domain)["sharpness ratio"] == pytest.approx(1.0)
    blurred = F.avg_pool2d(target, 3, stride=1, padding=1, count_include_pad=False)
    assert Sharpness().evaluate(target, blurred, domain)["sharpness ratio"] < 0.5
