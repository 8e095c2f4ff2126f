"""A cyclegen plugin: the "two moons" 2-D data set and a Huber reconstruction loss.

The same module works as a local file named in a recipe's `plugins` list and installed as
the cyclegen-moons distribution (entry point `moons`); see docs/writing-plugins.md.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import ClassVar

import torch
from torch import Tensor

from cyclegen import Domain, Metric, ReconstructionLoss, Registrar, hookimpl
from cyclegen_plots import scatter_png

#: The moons' centre of symmetry: the lower moon is the upper one turned half a circle about it.
CENTRE = torch.tensor([0.5, 0.25])
#: Points per moon of the polyline that distances to the moons are measured against.
ARC_POINTS = 256


class Moons(Domain):
    """Two interleaved half circles of radius 1 ("two moons"), blurred by Gaussian `noise`.

    The data is synthetic and unlimited, so the train and test splits draw from the same
    distribution and no sample has an identity (no `held_out`).
    """

    can_show: ClassVar[bool] = True  # it draws pictures (`show` below)

    def __init__(self, name: str, noise: float = 0.05) -> None:
        if noise <= 0:
            raise ValueError(f"noise must be positive, got {noise}")
        super().__init__(name, (2,))
        self.noise = noise
        t = torch.linspace(0, math.pi, ARC_POINTS)
        upper = torch.stack([t.cos(), t.sin()], 1) - CENTRE
        self.curve = torch.cat([upper, -upper])  # the upper moon's points, then the lower's

    def batch(self, n: int, generator: torch.Generator, split: str = "train") -> Tensor:
        t = torch.rand(n, generator=generator) * math.pi
        side = torch.randint(2, (n, 1), generator=generator) * 2 - 1  # +1 upper, -1 lower moon
        on_moon = side * (torch.stack([t.cos(), t.sin()], 1) - CENTRE)
        return on_moon + self.noise * torch.randn(n, 2, generator=generator)

    def show(self, samples: Tensor, path: Path, columns: int | None = None) -> Path:
        marks = self.curve[:: ARC_POINTS // 16]  # circles of radius 3 * noise along both moons
        return scatter_png(samples, path, extent=2.0, centres=marks, radius=3 * self.noise)

    def metrics(self) -> list[Metric]:
        return [MoonMetrics()]


class MoonMetrics(Metric):
    """How many samples lie on the moons (within 3 * noise), and how they divide between them.

    A generator that drops one moon keeps "on moons %" high but moves "upper share" (the
    fraction of on-moon samples nearer the upper moon) away from 0.5.
    """

    name = "moons"

    def evaluate(self, samples: Tensor, domain: Domain, generator: torch.Generator) -> dict[str, float]:
        assert isinstance(domain, Moons)
        distance, nearest = torch.cdist(samples.double(), domain.curve.double()).min(1)
        on = distance <= 3 * domain.noise
        upper = on & (nearest < ARC_POINTS)
        return {
            "on moons %": 100.0 * float(on.double().mean()),
            "upper share": float(upper.sum() / on.sum()) if on.any() else math.nan,
        }


class Huber(ReconstructionLoss):
    """Huber (smooth L1) loss with threshold 1: squared for small errors, linear for large ones.

    Small errors are pulled in as gently as by l2, large ones no harder than by l1, so a few
    badly reconstructed samples do not dominate a batch.
    """

    def __call__(self, target: Tensor, reconstruction: Tensor) -> Tensor:
        error = (reconstruction.float() - target.float()).abs()
        small = error.clamp(max=1.0)
        return (0.5 * small.pow(2) + (error - small)).mean()


@hookimpl
def cyclegen_register(registry: Registrar) -> None:
    registry.domain("moons", Moons)
    registry.reconstruction_loss("huber", Huber)
