"""FID and KID against independent computations and known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import linalg

from cyclegen_fidelity.distances import frechet_distance, kernel_distance


def scipy_frechet(a: np.ndarray, b: np.ndarray) -> float:
    """The Fréchet distance as pytorch-fid computes it, with scipy's matrix square root."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(cov_a @ cov_b)
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root.real))


def numpy_kid(a: np.ndarray, b: np.ndarray) -> float:
    """The unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3, written out (Bińkowski et al. 2018, eq. 2)."""
    d = a.shape[1]
    k_aa, k_bb, k_ab = ((x @ y.T / d + 1) ** 3 for x, y in ((a, a), (b, b), (a, b)))
    m = len(a)
    within = (k_aa.sum() - np.trace(k_aa) + k_bb.sum() - np.trace(k_bb)) / (m * (m - 1))
    return float(within - 2 * k_ab.mean())


def gaussian(n: int, mean: list[float], std: list[float], seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, len(mean), generator=generator, dtype=torch.float64) * torch.tensor(std) + torch.tensor(mean)


def test_frechet_distance_agrees_with_scipy_sqrtm() -> None:
    generator = torch.Generator().manual_seed(1)
    mixing = torch.randn(8, 8, generator=generator)
    a = torch.randn(400, 8, generator=generator) @ mixing
    b = torch.randn(300, 8, generator=generator) @ mixing.T + 0.3
    assert frechet_distance(a, b) == pytest.approx(
        scipy_frechet(a.numpy().astype(np.float64), b.numpy().astype(np.float64)), rel=1e-6
    )
    assert abs(frechet_distance(a, a)) < 1e-6


def test_frechet_distance_of_gaussians_matches_the_closed_form() -> None:
    # Diagonal covariances: ||mu_a - mu_b||^2 + sum (sigma_a - sigma_b)^2.
    a = gaussian(40_000, [0.0, 1.0, 0.0], [1.0, 2.0, 0.5], seed=2)
    b = gaussian(40_000, [1.0, 1.0, -1.0], [1.0, 1.0, 1.5], seed=3)
    exact = (1 + 0 + 1) + (0 + 1 + 1)
    assert frechet_distance(a, b) == pytest.approx(exact, rel=0.02)


def test_kernel_distance_agrees_with_the_written_out_estimator() -> None:
    a = gaussian(120, [0.0] * 5, [1.0] * 5, seed=4)
    b = gaussian(120, [0.5] * 5, [1.0] * 5, seed=5)
    mean, std = kernel_distance(a, b, subsets=1, subset_size=120, generator=torch.Generator().manual_seed(0))
    assert mean == pytest.approx(numpy_kid(a.numpy(), b.numpy()), rel=1e-9)
    assert std == 0.0


def test_kernel_distance_is_near_zero_for_one_distribution_and_repeatable() -> None:
    a = gaussian(2000, [0.0] * 4, [1.0] * 4, seed=6)
    b = gaussian(2000, [0.0] * 4, [1.0] * 4, seed=7)
    c = gaussian(2000, [1.0] * 4, [1.0] * 4, seed=8)
    same, spread = kernel_distance(a, b, subsets=20, subset_size=500, generator=torch.Generator().manual_seed(0))
    apart, _ = kernel_distance(a, c, subsets=20, subset_size=500, generator=torch.Generator().manual_seed(0))
    assert abs(same) < 3 * spread + 1e-3 and apart > 50 * abs(same)
    before = torch.random.get_rng_state()
    again = kernel_distance(a, b, subsets=20, subset_size=500, generator=torch.Generator().manual_seed(0))
    assert again == (same, spread)
    assert torch.equal(torch.random.get_rng_state(), before)  # torch's global stream is left alone


def test_kernel_distance_with_few_samples_still_reports_a_spread() -> None:
    a = gaussian(50, [0.0] * 3, [1.0] * 3, seed=9)
    b = gaussian(40, [0.0] * 3, [1.0] * 3, seed=10)
    _, std = kernel_distance(a, b, subsets=10, subset_size=1000, generator=torch.Generator().manual_seed(0))
    assert std > 0
