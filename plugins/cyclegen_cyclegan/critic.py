"""The CycleGAN PatchGAN critic (Isola et al. 2017; used by Zhu et al. 2017).

Reproduces `NLayerDiscriminator` of the official code (junyanz/pytorch-CycleGAN-and-pix2pix):
C64-C128-C256-C512 4x4 convs, then a 1-channel 4x4 conv. With `layers` = 3 every score
sees a 70x70 patch; with width 64 and instance norm it has 2,764,737 parameters (RGB).
"""

from __future__ import annotations

from torch import Tensor, nn

from cyclegen import Critic, Domain
from cyclegen_cyclegan.layers import Norm, check_width, conv_bias, norm_layer, official_init
from cyclegen_cyclegan.shapes import image_shape

LEAK = 0.2
KERNEL = 4
#: Channels stop doubling at this multiple of the width.
MAX_MULTIPLE = 8


def score_size(size: int, layers: int) -> int:
    """Side of the score map for a `size`-pixel side: `layers` halvings, then two 4x4 stride-1 convs (-1 each)."""
    for _ in range(layers):
        size //= 2
    return size - 2


def most_layers(size: int) -> int:
    """The most `layers` that still leave a score map on a `size`-pixel side (0: none do)."""
    layers = 0
    while score_size(size, layers + 1) >= 1:
        layers += 1
    return layers


def check_size(shape: tuple[int, ...], layers: int) -> None:
    _, height, width = image_shape(shape, "critic's")
    if min(score_size(height, layers), score_size(width, layers)) < 1:
        fits = most_layers(min(height, width))
        fix = f"use larger images or layers = {fits} or fewer" if fits else "use larger images"
        raise ValueError(
            f"{height}x{width} images are too small for a PatchGAN with layers = {layers}: it needs at"
            f" least {3 * 2**layers} pixels on each side; {fix}"
        )


class PatchGANCritic(Critic):
    """CycleGAN's PatchGAN critic: a map of real/fake scores, one per overlapping patch.

    `layers` stride-2 4x4 convs (channels doubling from `width`, capped at 8x) and a
    stride-1 one, LeakyReLU(0.2), norm after all but the first; a last conv gives one
    score per patch, with no sigmoid (the adversarial loss decides). `layers` = 3 scores
    70x70 patches, and needs images of at least 24 pixels.

    Options:
        layers: Stride-2 convs, which set the patch size: 3 scores 70x70 patches; the images
            need at least 3 * 2^layers pixels a side.
        width: Channels of the first conv, doubling with every later one up to 8 times as many.
        norm: What normalises the activations after every conv but the first: InstanceNorm
            without learned parameters (`instance`, the paper's), BatchNorm (`batch`; its convs
            then have no bias) or nothing (`none`).
    """

    def __init__(self, domain: Domain, layers: int = 3, width: int = 64, norm: Norm = "instance") -> None:
        super().__init__(domain)
        if layers < 1:
            raise ValueError(f"layers must be >= 1, got {layers}")
        check_width(width)
        check_size(domain.shape, layers)
        bias = conv_bias(norm)
        stack: list[nn.Module] = [nn.Conv2d(domain.shape[0], width, KERNEL, 2, 1), nn.LeakyReLU(LEAK)]
        channels = width
        for stage in range(1, layers + 1):
            out = width * min(2**stage, MAX_MULTIPLE)
            stride = 2 if stage < layers else 1
            stack += [nn.Conv2d(channels, out, KERNEL, stride, 1, bias=bias), norm_layer(norm, out), nn.LeakyReLU(LEAK)]
            channels = out
        stack.append(nn.Conv2d(channels, 1, KERNEL, 1, 1))
        self.body = nn.Sequential(*stack)
        official_init(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)
