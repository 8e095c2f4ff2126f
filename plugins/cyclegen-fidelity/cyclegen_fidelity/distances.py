"""FID and KID from features, by torchmetrics' implementations.

torchmetrics takes any feature module; handing it one that returns its input lets cyclegen
extract (and cache) features itself, while the statistics stay torchmetrics' own.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance


class GivenFeatures(nn.Module):
    """A 'feature extractor' for features that are already extracted."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, features: Tensor) -> Tensor:
        return features


def frechet_distance(real: Tensor, fake: Tensor) -> float:
    """The Fréchet distance between Gaussians fitted to two feature sets (FID on Inception features)."""
    metric = FrechetInceptionDistance(feature=GivenFeatures(real.shape[1]))
    metric.update(real.double(), real=True)
    metric.update(fake.double(), real=False)
    return float(metric.compute())


def kernel_distance(
    real: Tensor, fake: Tensor, subsets: int, subset_size: int, generator: torch.Generator
) -> tuple[float, float]:
    """The unbiased squared MMD with the cubic polynomial kernel (x.y / d + 1)^3 (KID), as mean
    and standard deviation over `subsets` random subsets of `subset_size` from each set.

    With fewer samples than `subset_size`, subsets are half the smaller set: KID is unbiased at
    any subset size, and subsets of a whole set would all be equal, leaving no spread to report.
    torchmetrics draws the subsets from torch's global generator; it is seeded here from
    `generator` and restored afterwards, so the number repeats and nothing else is disturbed.
    """
    smaller = min(len(real), len(fake))
    size = subset_size if subset_size <= smaller else max(2, smaller // 2)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*will save all extracted features", category=UserWarning)
        metric = KernelInceptionDistance(feature=GivenFeatures(real.shape[1]), subsets=subsets, subset_size=size)
    metric.update(real.double(), real=True)
    metric.update(fake.double(), real=False)
    seed = int(torch.randint(2**62, (1,), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std)
