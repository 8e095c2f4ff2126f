"""Prior domains: the distributions latent codes are drawn from."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import torch
from torch import Tensor

from cyclegen import Domain, DomainKind, Metric, PairMetric, hookimpl
from cyclegen_plots import latent_png


class MomentsMetric(Metric):
    """How far samples' per-dimension mean and standard deviation are from the prior's."""

    name = "moments"

    def evaluate(self, samples: Tensor, domain: Domain, generator: torch.Generator) -> dict[str, float]:
        reference = domain.batch(len(samples), generator, "test")
        flat, ref = samples.flatten(1).double(), reference.flatten(1).double()
        return {
            "mean abs error": float((flat.mean(0) - ref.mean(0)).abs().mean()),
            "std abs error": float((flat.std(0) - ref.std(0)).abs().mean()),
        }


class LatentError(PairMetric):
    """Mean absolute error between latents and their reconstruction: |E(G(z)) - z|."""

    def evaluate(self, target: Tensor, output: Tensor, domain: Domain) -> dict[str, float]:
        return {"mean abs error": float((output.double() - target.double()).abs().mean())}


class PriorDomain(Domain):
    """A distribution that flat latent codes of `dim` numbers are drawn from.

    Options:
        dim: Numbers per latent code (the latent size); at least 1.
    """

    kind: ClassVar[DomainKind] = "prior"
    can_show: ClassVar[bool] = True

    def __init__(self, name: str, dim: int) -> None:
        if dim < 1:
            raise ValueError(f"dim must be at least 1, got {dim}")
        super().__init__(name, (dim,))

    def metrics(self) -> list[Metric]:
        return [MomentsMetric()]

    def pair_metrics(self) -> list[PairMetric]:
        return [LatentError()]

    def show(self, samples: Tensor, path: Path, columns: int | None = None, *, title: str | None = None) -> Path:
        return latent_png(samples, path, title=title)


class Gaussian(PriorDomain):
    """Standard normal N(0, I) in `dim` dimensions, times `std`.

    Options:
        std: Standard deviation of every dimension.
    """

    def __init__(self, name: str, dim: int = 32, std: float = 1.0) -> None:
        super().__init__(name, dim)
        self.std = std

    def batch(self, n: int, generator: torch.Generator, split: str = "train") -> Tensor:
        return torch.randn(n, *self.shape, generator=generator) * self.std


class Uniform(PriorDomain):
    """Uniform on [low, high]^dim.

    Options:
        low: Lower bound of every dimension.
        high: Upper bound of every dimension; greater than `low`.
    """

    def __init__(self, name: str, dim: int = 32, low: float = -1.0, high: float = 1.0) -> None:
        if not high > low:
            raise ValueError(f"high ({high}) must be greater than low ({low})")
        super().__init__(name, dim)
        self.low, self.high = low, high

    def batch(self, n: int, generator: torch.Generator, split: str = "train") -> Tensor:
        return torch.rand(n, *self.shape, generator=generator) * (self.high - self.low) + self.low


@hookimpl
def cyclegen_register(registry) -> None:
    registry.domain("gaussian", Gaussian)
    registry.domain("uniform", Uniform)
