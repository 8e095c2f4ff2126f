"""Keras layer semantics the reference AEGAN depends on, rebuilt for PyTorch.

PyTorch's defaults differ from Keras in padding ("same" is asymmetric in TensorFlow),
normalisation axis (Keras LayerNorm on conv features is per pixel over channels) and noise
layers (GaussianNoise / GaussianDropout have no torch counterpart). Matching them keeps
the parameter counts and behaviour of the published code.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "same" padding along one axis: (before, after), surplus after."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


@functools.lru_cache(maxsize=512)
def tap_coverage(
    out_size: int, in_size: int, kernel: int, stride: int, before: int, device: torch.device, dtype: torch.dtype
) -> Tensor:
    """(out_size, kernel) 0/1 matrix along one axis: 1 where a tap of output i reads inside the input.

    Output i's tap k reads input i * stride - before + k; outside [0, in_size) it reads padding.
    Cached: every G conv asks for the same few per step, and on a GPU building one costs
    several kernel launches. Built outside inference mode, so autograd may save it later.
    """
    with torch.inference_mode(False), torch.no_grad():
        reads = torch.arange(out_size, device=device)[:, None] * stride - before
        reads = reads + torch.arange(kernel, device=device)
        return ((reads >= 0) & (reads < in_size)).to(dtype)


def constant_image_conv(
    code: Tensor, weight: Tensor, in_size: tuple[int, int], stride: int, before: tuple[int, int], out_size: tuple[int, int]
) -> Tensor:
    """conv2d (no bias) of `code` (N, D) tiled over an `in_size` image with zero padding, exactly.

    A constant image makes every tap read the same value except where it reads padding, so
    the result is the code times the sum of the in-bounds taps: (N, D) x (O, D, Kh, Kw) summed
    per output pixel through each axis' tap coverage. That costs a few multiply-adds per output
    pixel instead of D * Kh * Kw, and no tiled copy of the code is ever made.
    """
    rows = tap_coverage(out_size[0], in_size[0], weight.shape[2], stride, before[0], code.device, code.dtype)
    cols = tap_coverage(out_size[1], in_size[1], weight.shape[3], stride, before[1], code.device, code.dtype)
    per_tap = torch.einsum("nd,odij->noij", code, weight)
    return rows @ (per_tap @ cols.t())


class SameConv2d(nn.Conv2d):
    """A Conv2d with TensorFlow "same" padding, so outputs are ceil(input / stride) wide.

    The padding depends on the input size when stride > 1, so it is computed per call.
    `forward(x, code)` equals the conv of `x` with the per-sample `code` (N, D) tiled over the
    grid and concatenated as the last D input channels, which the weight must include; the
    code's channels are applied by constant_image_conv rather than convolved (see there).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride)

    def forward(self, x: Tensor, code: Tensor | None = None) -> Tensor:
        weight = self.weight if code is None else self.feature_weight(x, code)
        top, bottom = same_padding(x.shape[-2], self.kernel_size[0], self.stride[0])
        left, right = same_padding(x.shape[-1], self.kernel_size[1], self.stride[1])
        if top == bottom and left == right:  # symmetric: let the conv pad without a copy
            out = F.conv2d(x, weight, self.bias, self.stride, (top, left))
        else:
            out = F.conv2d(F.pad(x, (left, right, top, bottom)), weight, self.bias, self.stride)
        if code is None:
            return out
        return out + self.code_response(code, x.shape[1], x.shape[-2:], out.shape[-2:])

    def feature_weight(self, x: Tensor, code: Tensor) -> Tensor:
        """The weight's input channels that read `x`, checking `x` and `code` fill the conv's input."""
        if x.shape[1] + code.shape[1] != self.in_channels:
            raise ValueError(
                f"{x.shape[1]} feature + {code.shape[1]} code channels given, the conv takes {self.in_channels}"
            )
        return self.weight[:, : x.shape[1]]

    def code_response(self, code: Tensor, features: int, in_size: tuple[int, int], out_size: tuple[int, int]) -> Tensor:
        """What the weight's code channels (those after `features`) add to an `out_size` output
        of an `in_size` input."""
        stride = self.stride[0]
        before = (same_padding(in_size[0], self.kernel_size[0], stride)[0],
                  same_padding(in_size[1], self.kernel_size[1], stride)[0])
        return constant_image_conv(code, self.weight[:, features:], in_size, stride, before, out_size)


def flatten_channels_last(x: Tensor) -> Tensor:
    """Flatten (N, C, H, W) in Keras' (H, W, C) order, so dense weights line up with Keras'."""
    return x.permute(0, 2, 3, 1).flatten(1)


def standard_normal_like(x: Tensor) -> Tensor:
    """N(0, 1) noise with `x`'s shape, dtype, device and memory layout.

    Drawn in storage order: torch fills a non-contiguous tensor (say, channels-last conv
    features) element by element, about 7x slower on CPU than a contiguous fill. empty_like
    is always dense and non-overlapping, so its storage is exactly its elements.
    """
    noise = torch.empty_like(x)
    noise.as_strided((noise.numel(),), (1,)).normal_()
    return noise


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
        return torch.add(x, standard_normal_like(x), alpha=self.sigma)

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
        return torch.addcmul(x, x, standard_normal_like(x), value=self.std)  # x * (1 + std * noise)

    def extra_repr(self) -> str:
        return f"rate={self.rate}"


def glorot_init(module: nn.Module) -> None:
    """Keras' default Glorot-uniform kernels and zero biases for every dense layer in `module`."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
