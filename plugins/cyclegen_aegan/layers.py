"""Keras layer semantics the reference AEGAN depends on, rebuilt for PyTorch.

PyTorch's defaults differ from Keras in padding ("same" is asymmetric in TensorFlow),
normalisation axis (Keras LayerNorm on conv features is per pixel over channels) and noise
layers (GaussianNoise / GaussianDropout have no torch counterpart). Matching them keeps
the parameter counts and behaviour of the published code.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Keras LayerNormalization's default epsilon (torch's is 1e-5).
KERAS_EPS = 1e-3


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "same" padding along one axis: (before, after), surplus after."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SameConv2d(nn.Conv2d):
    """A Conv2d with TensorFlow "same" padding, so outputs are ceil(input / stride) wide.

    The padding depends on the input size when stride > 1, so it is computed per call.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride)

    def forward(self, x: Tensor) -> Tensor:
        top, bottom = same_padding(x.shape[-2], self.kernel_size[0], self.stride[0])
        left, right = same_padding(x.shape[-1], self.kernel_size[1], self.stride[1])
        if top == bottom and left == right:  # symmetric: let the conv pad without a copy
            return F.conv2d(x, self.weight, self.bias, self.stride, (top, left))
        return F.conv2d(F.pad(x, (left, right, top, bottom)), self.weight, self.bias, self.stride)


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels of every pixel separately (a channels-last LayerNorm)."""

    def __init__(self, channels: int, eps: float = KERAS_EPS) -> None:
        super().__init__(channels, eps=eps)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def flatten_channels_last(x: Tensor) -> Tensor:
    """Flatten (N, C, H, W) in Keras' (H, W, C) order, so dense weights line up with Keras'."""
    return x.permute(0, 2, 3, 1).flatten(1)


class GaussianNoise(nn.Module):
    """Keras GaussianNoise: adds N(0, sigma^2) noise in training mode only."""

    def __init__(self, sigma: float) -> None:
        super().__init__()
        if sigma < 0:
            raise ValueError(f"noise must be >= 0, got {sigma}")
        self.sigma = sigma

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.sigma == 0:
            return x
        return x + self.sigma * torch.randn_like(x)

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}"


class GaussianDropout(nn.Module):
    """Keras GaussianDropout: multiplies by N(1, rate / (1 - rate)) noise in training mode only."""

    def __init__(self, rate: float) -> None:
        super().__init__()
        if not 0 <= rate < 1:
            raise ValueError(f"dropout must be in [0, 1), got {rate}")
        self.rate = rate
        self.std = math.sqrt(rate / (1 - rate))

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.rate == 0:
            return x
        return x * (1 + self.std * torch.randn_like(x))

    def extra_repr(self) -> str:
        return f"rate={self.rate}"


def normal_init(module: nn.Module, std: float = 0.02) -> None:
    """N(0, std) kernels and zero biases for every conv and dense layer inside `module`."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(layer.weight, 0.0, std)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


def glorot_init(module: nn.Module) -> None:
    """Keras' default Glorot-uniform kernels and zero biases for every dense layer in `module`."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
