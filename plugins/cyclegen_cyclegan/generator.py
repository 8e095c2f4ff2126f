"""The CycleGAN ResNet generator (Zhu et al. 2017, after Johnson et al. 2016).

Reproduces `ResnetGenerator` of the official code (junyanz/pytorch-CycleGAN-and-pix2pix):
c7s1-w, d2w, d4w, `blocks` residual blocks at 4w channels, u2w, uw, c7s1-C with tanh.
With w = 64 and instance norm this is the paper's generator: 9 blocks for 256-pixel
images and 6 for 128-pixel ones (11,378,179 and 7,837,699 parameters for RGB -> RGB).
"""

from __future__ import annotations

from torch import Tensor, nn

from cyclegen import Domain, Mapper
from cyclegen_cyclegan.layers import Norm, check_width, conv_bias, norm_layer, official_init
from cyclegen_cyclegan.shapes import image_shape

#: Stride-2 stages on each side of the residual blocks; images shrink by 2**SAMPLING.
SAMPLING = 2
#: The bottleneck must stay at least 2 pixels wide for the blocks' reflection padding.
MIN_BOTTLENECK = 2


def check_sizes(source: tuple[int, ...], target: tuple[int, ...]) -> None:
    """Same-size images whose sides survive two halvings and come back to the same size."""
    _, height, width = image_shape(source, "source")
    _, target_height, target_width = image_shape(target, "target")
    if (height, width) != (target_height, target_width):
        raise ValueError(
            f"source images are {height}x{width} but target images are {target_height}x{target_width};"
            " the generator keeps the image size, so give both domains the same size"
        )
    factor = 2**SAMPLING
    if height % factor or width % factor or min(height, width) < factor * MIN_BOTTLENECK:
        raise ValueError(
            f"image size {height}x{width} is not supported: height and width must be multiples of"
            f" {factor} and at least {factor * MIN_BOTTLENECK}; resize the domains (e.g. size = 64)"
        )


class ResidualBlock(nn.Module):
    """x + (reflect-pad, 3x3 conv, norm, ReLU, [dropout 0.5], reflect-pad, 3x3 conv, norm)(x)."""

    def __init__(self, channels: int, norm: Norm, dropout: bool) -> None:
        super().__init__()
        bias = conv_bias(norm)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=bias),
            norm_layer(norm, channels),
            nn.ReLU(),
        ]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias), norm_layer(norm, channels)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResnetGenerator(Mapper):
    """CycleGAN's ResNet generator: image -> image of the same size, in [-1, 1].

    Two stride-2 convs shrink the image by 4, `blocks` residual blocks transform it, two
    transposed convs restore the size. Reflection padding avoids border artefacts. Paper:
    `blocks` = 6 for 128-pixel images, 9 for 256; `width` is the first layer's channels.

    Options:
        blocks: Residual blocks at the bottleneck (the paper: 6 for 128-pixel images, 9 for 256).
        width: Channels of the first conv; the bottleneck has 4 times as many.
        norm: What normalises the activations: InstanceNorm without learned parameters
            (`instance`, the paper's), BatchNorm (`batch`; its convs then have no bias) or
            nothing (`none`).
        dropout: Dropout of rate 0.5 inside every residual block, in training only.
    """

    def __init__(
        self,
        source: Domain,
        target: Domain,
        blocks: int = 9,
        width: int = 64,
        norm: Norm = "instance",
        dropout: bool = False,
    ) -> None:
        super().__init__(source, target)
        if blocks < 1:
            raise ValueError(f"blocks must be >= 1, got {blocks}")
        check_width(width)
        check_sizes(source.shape, target.shape)
        bias = conv_bias(norm)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(source.shape[0], width, 7, bias=bias),
            norm_layer(norm, width),
            nn.ReLU(),
        ]
        channels = width
        for _ in range(SAMPLING):
            layers += [nn.Conv2d(channels, channels * 2, 3, 2, 1, bias=bias), norm_layer(norm, channels * 2), nn.ReLU()]
            channels *= 2
        layers += [ResidualBlock(channels, norm, dropout) for _ in range(blocks)]
        for _ in range(SAMPLING):
            layers += [
                nn.ConvTranspose2d(channels, channels // 2, 3, 2, 1, output_padding=1, bias=bias),
                norm_layer(norm, channels // 2),
                nn.ReLU(),
            ]
            channels //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(channels, target.shape[0], 7), nn.Tanh()]
        self.body = nn.Sequential(*layers)
        official_init(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)
