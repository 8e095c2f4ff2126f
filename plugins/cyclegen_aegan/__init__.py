"""The reference networks of the AEGAN paper's Keras code: G, E, Dx and Dz."""

from __future__ import annotations

from cyclegen import hookimpl
from cyclegen_aegan.networks import AEGANEncoder, AEGANGenerator, AEGANImageCritic, AEGANLatentCritic


@hookimpl
def cyclegen_register(registry) -> None:
    registry.mapper("aegan-generator", AEGANGenerator)
    registry.mapper("aegan-encoder", AEGANEncoder)
    registry.critic("aegan-image-critic", AEGANImageCritic)
    registry.critic("aegan-latent-critic", AEGANLatentCritic)
