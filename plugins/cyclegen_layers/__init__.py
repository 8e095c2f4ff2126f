"""Layers and shape helpers shared by the first-party conv network plugins; not a plugin itself.

The AEGAN and DCGAN families both normalise per pixel as Keras does, initialise as the DCGAN
paper does and read their sizes off domain shapes; keeping those here lets neither plugin
depend on the other.
"""

from __future__ import annotations

from cyclegen_layers.norms import KERAS_EPS, ChannelLayerNorm, normal_init
from cyclegen_layers.shapes import SIZES, image_shape, latent_dim, scaled

__all__ = ["KERAS_EPS", "SIZES", "ChannelLayerNorm", "image_shape", "latent_dim", "normal_init", "scaled"]
