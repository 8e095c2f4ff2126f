"""DCGAN-style conv networks: a plain, fast family for small presets and user recipes.

Every stage doubles or halves the spatial size with a 4x4 stride-2 (transposed) conv, so
the depth follows the image size: 3, 4 or 5 stages between 4x4 and 32, 64 or 128 pixels.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from cyclegen import Critic, Domain, Mapper
from cyclegen_layers import ChannelLayerNorm, image_shape, latent_dim, normal_init

Norm = Literal["batch", "layer", "none"]

#: Spatial size of the generator's first feature map and of the encoder's last.
GRID = 4
LEAK = 0.2


def stage_count(size: int) -> int:
    """How many factor-2 stages lie between the 4x4 grid and `size` pixels."""
    return (size // GRID).bit_length() - 1


def check_base(base: int) -> None:
    if base < 1:
        raise ValueError(f"base must be >= 1, got {base}")


def norm_layer(norm: Norm, channels: int) -> nn.Module:
    """BatchNorm, per-pixel channel LayerNorm, or nothing."""
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "layer":
        return ChannelLayerNorm(channels, eps=1e-5)
    return nn.Identity()


class DCGANGenerator(Mapper):
    """DCGAN generator: latent -> image through 4x4 stride-2 transposed convs, ReLU, tanh.

    A Linear projects to a 4x4 map of base*2^k channels; k stages halve the channels while
    doubling the size, and a 3x3 conv maps `base` channels to the image. `norm` follows
    the projection and every stage.

    Options:
        base: Channels of the last, full-size stage; they double at every stage back towards
            the 4x4 map.
        norm: What normalises the activations: BatchNorm (`batch`), a LayerNorm over the
            channels of every pixel (`layer`) or nothing (`none`).
    """

    def __init__(self, source: Domain, target: Domain, base: int = 64, norm: Norm = "batch") -> None:
        super().__init__(source, target)
        check_base(base)
        channels, size = image_shape(target.shape)
        stages = stage_count(size)
        self.grid_channels = base * 2**stages
        self.project = nn.Linear(latent_dim(source.shape), GRID * GRID * self.grid_channels)
        layers: list[nn.Module] = [norm_layer(norm, self.grid_channels), nn.ReLU()]
        width = self.grid_channels
        for _ in range(stages):
            layers += [nn.ConvTranspose2d(width, width // 2, 4, 2, 1), norm_layer(norm, width // 2), nn.ReLU()]
            width //= 2
        layers += [nn.Conv2d(width, channels, 3, 1, 1), nn.Tanh()]
        self.body = nn.Sequential(*layers)
        normal_init(self)

    def forward(self, z: Tensor) -> Tensor:
        return self.body(self.project(z).view(-1, self.grid_channels, GRID, GRID))


def down_stack(channels: int, size: int, base: int, norm: Norm) -> tuple[nn.Sequential, int]:
    """4x4 stride-2 convs from `base` channels, doubling, down to 4x4; LeakyReLU(0.2).

    As in DCGAN the first conv, which sees raw pixels, has no norm. Returns the stack and
    its flattened output size.
    """
    check_base(base)
    layers: list[nn.Module] = []
    previous = channels
    for stage in range(stage_count(size)):
        out = base * 2**stage
        stage_norm = norm if stage else "none"
        layers += [nn.Conv2d(previous, out, 4, 2, 1), norm_layer(stage_norm, out), nn.LeakyReLU(LEAK)]
        previous = out
    layers.append(nn.Flatten())
    return nn.Sequential(*layers), GRID * GRID * previous


class DCGANEncoder(Mapper):
    """DCGAN encoder: image -> latent through 4x4 stride-2 convs, then a linear layer.

    Options:
        base: Channels of the first conv, doubled at every stage down to 4x4.
        norm: What normalises the activations after every conv but the first (which sees raw
            pixels): BatchNorm (`batch`), a LayerNorm over the channels of every pixel
            (`layer`) or nothing (`none`).
    """

    def __init__(self, source: Domain, target: Domain, base: int = 64, norm: Norm = "layer") -> None:
        super().__init__(source, target)
        channels, size = image_shape(source.shape)
        self.trunk, features = down_stack(channels, size, base, norm)
        self.head = nn.Linear(features, latent_dim(target.shape))
        normal_init(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.trunk(x))


class DCGANCritic(Critic):
    """DCGAN critic: the encoder's conv stack, then one logit per image.

    Options:
        base: Channels of the first conv, doubled at every stage down to 4x4.
        norm: What normalises the activations after every conv but the first (which sees raw
            pixels): BatchNorm (`batch`), a LayerNorm over the channels of every pixel
            (`layer`) or nothing (`none`).
    """

    def __init__(self, domain: Domain, base: int = 64, norm: Norm = "none") -> None:
        super().__init__(domain)
        channels, size = image_shape(domain.shape)
        self.trunk, features = down_stack(channels, size, base, norm)
        self.head = nn.Linear(features, 1)
        normal_init(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.trunk(x)).squeeze(1)
