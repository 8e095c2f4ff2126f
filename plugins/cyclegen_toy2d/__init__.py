"""2-D Gaussian-mixture data (the ring and grid of the VEEGAN/PacGAN mode-collapse benchmarks)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import ClassVar

import torch
from torch import Tensor

from cyclegen import Domain, Metric, hookimpl
from cyclegen_plots import scatter_png


#: A sample is high quality within this many standard deviations of its nearest mode (`ModeMetrics`).
HIGH_QUALITY = 3
MODES_LABEL = f"true modes (radius {HIGH_QUALITY} std: the high-quality threshold)"


class MixtureDomain(Domain):
    """Equal-weight isotropic Gaussians at fixed `centres` with standard deviation `std`.

    Options:
        std: Standard deviation of every Gaussian; positive. A sample within 3 std of its
            nearest centre counts as high quality in the mode metrics.
    """

    can_show: ClassVar[bool] = True

    def __init__(self, name: str, centres: Tensor, std: float) -> None:
        if std <= 0:
            raise ValueError(f"std must be positive, got {std}")
        super().__init__(name, (2,))
        self.centres = centres
        self.std = std

    def batch(self, n: int, generator: torch.Generator, split: str = "train") -> Tensor:
        modes = torch.randint(len(self.centres), (n,), generator=generator)
        return self.centres[modes] + self.std * torch.randn(n, 2, generator=generator)

    def show(self, samples: Tensor, path: Path, columns: int | None = None, *, title: str | None = None) -> Path:
        return scatter_png(samples, path, self.extent, self.centres, HIGH_QUALITY * self.std, title=title,
                           centres_label=MODES_LABEL)

    def show_pairs(self, first: Tensor, second: Tensor, path: Path, *, title: str | None = None) -> Path:
        """`second` over the modes, each point joined to its `first` (the input it was mapped from)."""
        return scatter_png(second, path, self.extent, self.centres, HIGH_QUALITY * self.std, title=title,
                           label="outputs", centres_label=MODES_LABEL, sources=first)

    @property
    def extent(self) -> float:
        """Half the width of the pictures: the outer modes with room around them."""
        return float(self.centres.abs().max()) * 1.5 + 0.5

    def metrics(self) -> list[Metric]:
        return [ModeMetrics()]


class Ring(MixtureDomain):
    """`modes` Gaussians evenly spaced on a circle of `radius` (8, 2.0, std 0.02 in VEEGAN).

    Options:
        modes: Number of Gaussians (modes) on the circle.
        radius: Radius of the circle the centres lie on.
    """

    def __init__(self, name: str, modes: int = 8, radius: float = 2.0, std: float = 0.02) -> None:
        angles = torch.arange(modes, dtype=torch.float32) * (2 * math.pi / modes)
        super().__init__(name, radius * torch.stack([angles.cos(), angles.sin()], 1), std)


class Grid(MixtureDomain):
    """A `size` x `size` grid of Gaussians `spacing` apart, centred on 0 (5, 2.0, std 0.05 in PacGAN).

    Options:
        size: Gaussians along each side of the grid (`size` squared modes in all).
        spacing: Distance between neighbouring centres.
    """

    def __init__(self, name: str, size: int = 5, spacing: float = 2.0, std: float = 0.05) -> None:
        axis = (torch.arange(size, dtype=torch.float32) - (size - 1) / 2) * spacing
        xs, ys = torch.meshgrid(axis, axis, indexing="ij")
        super().__init__(name, torch.stack([xs.flatten(), ys.flatten()], 1), std)


class ModeMetrics(Metric):
    """Mode coverage and sample quality, as in the VEEGAN and PacGAN papers.

    A sample is high quality within 3 std of its nearest centre; a mode is covered when
    any sample is. The strict count keeps modes holding at least 20% of their uniform
    share of the high-quality samples. KL is that of the high-quality samples' mode
    histogram from uniform (0 is perfectly balanced; NaN when no sample is high quality).
    """

    name = "modes"

    def evaluate(self, samples: Tensor, domain: Domain, generator: torch.Generator) -> dict[str, float]:
        assert isinstance(domain, MixtureDomain)
        centres, k = domain.centres, len(domain.centres)
        distances = torch.cdist(samples.double(), centres.double())
        nearest_distance, nearest = distances.min(1)
        good = nearest_distance <= HIGH_QUALITY * domain.std
        counts = torch.bincount(nearest[good], minlength=k).double()
        n_good = float(counts.sum())
        share = counts / n_good if n_good else counts
        kl = float((share[share > 0] * (share[share > 0] * k).log()).sum()) if n_good else math.nan
        return {
            "modes covered": float((counts > 0).sum()),
            "modes (strict)": float((counts >= 0.2 * n_good / k).sum()) if n_good else 0.0,
            "modes total": float(k),
            "high quality %": 100.0 * n_good / len(samples),
            "kl": kl,
        }


@hookimpl
def cyclegen_register(registry) -> None:
    registry.domain("ring", Ring)
    registry.domain("grid", Grid)
