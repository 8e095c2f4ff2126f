"""The four networks of the AEGAN paper's published Keras code (see the reference document).

At width 1.0 and 64x64 images these match the reference layer for layer and parameter for
parameter; `width` shrinks every channel and unit count for CPU presets, and 32 or 128 pixel
images drop or add one factor-2 stage.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cyclegen import Critic, Domain, Mapper
from cyclegen_aegan.fused import FusedUpsampleConv2d
from cyclegen_aegan.layers import (
    GaussianDropout,
    GaussianNoise,
    SameConv2d,
    flatten_channels_last,
    glorot_init,
)
from cyclegen_layers import KERAS_EPS, ChannelLayerNorm, image_shape, latent_dim, normal_init, scaled

#: Spatial size of G's first feature map and of E's and Dx's last.
GRID = 4
GENERATOR_CHANNELS = (256, 128, 128, 64, 64)
GENERATOR_FACTORS = {32: (2, 2, 2, 1, 1), 64: (2, 2, 2, 2, 1), 128: (2, 2, 2, 2, 2)}
ENCODER_CHANNELS = (64, 64, 128, 128, 128, 256)
ENCODER_STRIDES = {32: (2, 2, 2, 1, 1, 1), 64: (2, 2, 2, 2, 1, 1), 128: (2, 2, 2, 2, 2, 1)}
#: Dz's dense blocks: how many, and each one's width at width 1.0.
LATENT_CRITIC_BLOCKS, LATENT_CRITIC_UNITS = 16, 16
LEAK = 0.02


def with_code(features: Tensor, code: Tensor) -> Tensor:
    """Concatenate a per-sample code (N, D), tiled over the grid, onto `features`."""
    return torch.cat([features, code[:, :, None, None].expand(-1, -1, *features.shape[2:])], 1)


class UpStage(nn.Module):
    """One G stage: nearest upsample, then conv 4x4 of (features, tiled code) -> LayerNorm -> ReLU.

    `fused` runs the upsample and conv as one exact FusedUpsampleConv2d on the low-res
    features; `fold_code` applies the code's conv channels without tiling the code (see
    SameConv2d.forward). Same parameters either way; the plain path is the reference both
    are tested against.
    """

    def __init__(
        self, in_channels: int, out_channels: int, factor: int, fused: bool = True, fold_code: bool = True
    ) -> None:
        super().__init__()
        self.factor = factor
        self.fused = fused and factor > 1
        self.fold_code = fold_code
        if self.fused:
            self.conv: SameConv2d = FusedUpsampleConv2d(in_channels, out_channels, 4, factor)
        else:
            self.conv = SameConv2d(in_channels, out_channels, 4)
        self.norm = ChannelLayerNorm(out_channels)

    def forward(self, features: Tensor, code: Tensor) -> Tensor:
        # The code is constant over the grid, so tiling it before or after upsampling is the
        # same: the plain path tiles after (cheaper), the fused conv needs it at low res.
        if self.factor > 1 and not self.fused:
            features = F.interpolate(features, scale_factor=self.factor, mode="nearest")
        if self.fold_code:
            return torch.relu(self.norm(self.conv(features, code)))
        return torch.relu(self.norm(self.conv(with_code(features, code))))

    def extra_repr(self) -> str:
        return f"factor={self.factor}, fused={self.fused}, fold_code={self.fold_code}"


class AEGANGenerator(Mapper):
    """The AEGAN generator G: latent -> image, with the latent re-injected at every stage.

    Dense(1024) -> LN -> ReLU reshaped to 4x4x64, then five upsample+conv stages each fed
    the tiled output of a latent branch Dense(64) -> LN -> ReLU, then conv to the image, tanh.
    `fused_upsample` computes each upsample+conv exactly on the low-res input (see fused.py);
    `fold_code` applies each conv's weights for the tiled latent code as a per-sample bias map
    (exact, and 20-50% of every conv's input channels; see layers.constant_image_conv). Both
    off, G runs the plain reference arithmetic. All settings hold the same parameters.

    Options:
        width: Multiplies every layer's channel and unit count (rounded, at least 1); 1.0 is
            the reference network, smaller values make CPU presets.
        fused_upsample: Run each upsample and the conv after it as one exact convolution on the
            low-resolution features: the same result, faster.
        fold_code: Apply each conv's weights for the tiled latent code as a per-sample bias
            map instead of convolving the tiled code: the same result, faster.
    """

    def __init__(
        self,
        source: Domain,
        target: Domain,
        width: float = 1.0,
        fused_upsample: bool = True,
        fold_code: bool = True,
    ) -> None:
        super().__init__(source, target)
        latent = latent_dim(source.shape)
        channels, size = image_shape(target.shape)
        self.grid_channels = scaled(64, width)
        units = GRID * GRID * self.grid_channels
        self.main = nn.Sequential(nn.Linear(latent, units), nn.LayerNorm(units, eps=KERAS_EPS), nn.ReLU())
        code = scaled(64, width)
        self.branch = nn.Sequential(nn.Linear(latent, code), nn.LayerNorm(code, eps=KERAS_EPS), nn.ReLU())
        stages, previous = [], self.grid_channels
        for factor, out in zip(GENERATOR_FACTORS[size], GENERATOR_CHANNELS):
            stages.append(UpStage(previous + code, scaled(out, width), factor, fused_upsample, fold_code))
            previous = scaled(out, width)
        self.stages = nn.ModuleList(stages)
        self.output = SameConv2d(previous + code, channels, 4)
        self.fold_code = fold_code
        normal_init(self)
        glorot_init(self.branch)

    def forward(self, z: Tensor) -> Tensor:
        # Keras reshapes channels-last: (N, 4, 4, C), then to torch's (N, C, 4, 4).
        features = self.main(z).view(-1, GRID, GRID, self.grid_channels).permute(0, 3, 1, 2)
        code = self.branch(z)
        for stage in self.stages:
            features = stage(features, code)
        if self.fold_code:
            return torch.tanh(self.output(features, code))
        return torch.tanh(self.output(with_code(features, code)))


def conv_stack(
    channels: int,
    size: int,
    kernel: int,
    activation: Callable[[], nn.Module],
    width: float,
    noise: float,
    dropout: float,
) -> tuple[nn.Sequential, int]:
    """E's and Dx's trunk: input noise, six conv -> dropout -> LN -> act blocks down to 4x4.

    Returns the trunk and its flattened output size.
    """
    layers: list[nn.Module] = [GaussianNoise(noise)]
    previous = channels
    for stride, out in zip(ENCODER_STRIDES[size], ENCODER_CHANNELS):
        out = scaled(out, width)
        conv = SameConv2d(previous, out, kernel, stride)
        layers += [conv, GaussianDropout(dropout), ChannelLayerNorm(out), activation()]
        previous = out
    return nn.Sequential(*layers), GRID * GRID * previous


class AEGANEncoder(Mapper):
    """The AEGAN encoder E: image -> latent, six 4x4 convs with ReLU, then a linear Dense.

    Input noise (`noise`, sigma) and Gaussian dropout (`dropout`, rate) act in training only.

    Options:
        width: Multiplies every layer's channel and unit count (rounded, at least 1); 1.0 is
            the reference network, smaller values make CPU presets.
        noise: Standard deviation of the Gaussian noise added to the input images, in training only.
        dropout: Rate of the Gaussian dropout after every conv (multiplicative noise of
            variance rate / (1 - rate)), in training only; in [0, 1).
    """

    def __init__(
        self, source: Domain, target: Domain, width: float = 1.0, noise: float = 0.01, dropout: float = 0.005
    ) -> None:
        super().__init__(source, target)
        channels, size = image_shape(source.shape)
        self.trunk, features = conv_stack(channels, size, 4, nn.ReLU, width, noise, dropout)
        self.head = nn.Linear(features, latent_dim(target.shape))
        normal_init(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(flatten_channels_last(self.trunk(x)))


class AEGANImageCritic(Critic):
    """The AEGAN image critic Dx: E's stack with 3x3 kernels and LeakyReLU(0.02), one logit.

    Input noise (`noise`, sigma) and Gaussian dropout (`dropout`, rate) act in training only.

    Options:
        width: Multiplies every layer's channel and unit count (rounded, at least 1); 1.0 is
            the reference network, smaller values make CPU presets.
        noise: Standard deviation of the Gaussian noise added to the input images, in training only.
        dropout: Rate of the Gaussian dropout after every conv (multiplicative noise of
            variance rate / (1 - rate)), in training only; in [0, 1).
    """

    def __init__(self, domain: Domain, width: float = 1.0, noise: float = 0.01, dropout: float = 0.005) -> None:
        super().__init__(domain)
        channels, size = image_shape(domain.shape)
        self.trunk, features = conv_stack(channels, size, 3, partial(nn.LeakyReLU, LEAK), width, noise, dropout)
        self.head = nn.Linear(features, 1)
        normal_init(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(flatten_channels_last(self.trunk(x))).squeeze(1)


class AEGANLatentCritic(Critic):
    """The AEGAN latent critic Dz: 16 densely connected blocks, then Dense(128) and one logit.

    Each block (Dense(16) -> dropout -> LN -> LeakyReLU) is concatenated onto its input.
    Input noise (`noise`, sigma) and Gaussian dropout (`dropout`, rate) act in training only.

    Options:
        width: Multiplies every layer's channel and unit count (rounded, at least 1); 1.0 is
            the reference network, smaller values make CPU presets.
        noise: Standard deviation of the Gaussian noise added to the input codes, in training only.
        dropout: Rate of the Gaussian dropout after every block's Dense layer (multiplicative
            noise of variance rate / (1 - rate)), in training only; in [0, 1).
    """

    def __init__(self, domain: Domain, width: float = 1.0, noise: float = 0.01, dropout: float = 0.005) -> None:
        super().__init__(domain)
        latent = latent_dim(domain.shape)
        units = scaled(LATENT_CRITIC_UNITS, width)
        self.noise = GaussianNoise(noise)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.Linear(latent + i * units, units),
                GaussianDropout(dropout),
                nn.LayerNorm(units, eps=KERAS_EPS),
                nn.LeakyReLU(LEAK),
            )
            for i in range(LATENT_CRITIC_BLOCKS)
        )
        hidden = scaled(128, width)
        self.head = nn.Sequential(
            nn.Linear(latent + LATENT_CRITIC_BLOCKS * units, hidden), nn.LeakyReLU(LEAK), nn.Linear(hidden, 1)
        )
        glorot_init(self)

    def forward(self, z: Tensor) -> Tensor:
        features = self.noise(z)
        for block in self.blocks:
            features = torch.cat([features, block(features)], 1)
        return self.head(features).squeeze(1)
