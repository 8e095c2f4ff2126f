"""Wasserstein losses (`wgan`, `wgan-gp`) and critic penalties (`gradient-penalty`, `r1`).

A plugin distribution of its own (cyclegen-wasserstein), so that cyclegen installs and runs
without it; recipes that name its components get an install hint when it is missing.
"""

from __future__ import annotations

from cyclegen import hookimpl
from cyclegen_wasserstein.losses import WGAN, WGANGP
from cyclegen_wasserstein.penalties import R1, GradientPenalty

__all__ = ["WGAN", "WGANGP", "GradientPenalty", "R1"]


@hookimpl
def cyclegen_register(registry) -> None:
    registry.adversarial_loss("wgan", WGAN)
    registry.adversarial_loss("wgan-gp", WGANGP)
    registry.penalty("gradient-penalty", GradientPenalty)
    registry.penalty("r1", R1)
