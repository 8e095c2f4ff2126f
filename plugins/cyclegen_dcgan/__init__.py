"""DCGAN-style conv generator, encoder and critic for image domains of 32, 64 or 128 pixels."""

from __future__ import annotations

from cyclegen import hookimpl
from cyclegen_dcgan.networks import DCGANCritic, DCGANEncoder, DCGANGenerator


@hookimpl
def cyclegen_register(registry) -> None:
    registry.mapper("dcgan-generator", DCGANGenerator)
    registry.mapper("dcgan-encoder", DCGANEncoder)
    registry.critic("dcgan-critic", DCGANCritic)
