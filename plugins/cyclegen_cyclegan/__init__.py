"""The CycleGAN networks (Zhu et al. 2017): a ResNet generator and a 70x70 PatchGAN critic."""

from __future__ import annotations

from cyclegen import hookimpl
from cyclegen_cyclegan.critic import PatchGANCritic
from cyclegen_cyclegan.generator import ResnetGenerator


@hookimpl
def cyclegen_register(registry) -> None:
    registry.mapper("resnet-generator", ResnetGenerator)
    registry.critic("patchgan-critic", PatchGANCritic)
