"""Normalisation, bias and initialisation choices shared by the CycleGAN networks.

They follow the official code (junyanz/pytorch-CycleGAN-and-pix2pix, models/networks.py),
so that parameter counts and starting weights match the published networks.
"""

from __future__ import annotations

from typing import Literal

from torch import nn

Norm = Literal["instance", "batch", "none"]


def norm_layer(norm: Norm, channels: int) -> nn.Module:
    """InstanceNorm without affine parameters or running statistics (as the official code), BatchNorm, or nothing."""
    if norm == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    return nn.Identity()


def conv_bias(norm: Norm) -> bool:
    """Whether a conv followed by `norm` needs a bias: BatchNorm's learned shift replaces it."""
    return norm != "batch"


def check_width(width: int) -> None:
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")


def official_init(module: nn.Module, std: float = 0.02) -> None:
    """The official `init_weights(init_type="normal")`: conv kernels N(0, std), BatchNorm scales N(1, std), zero biases."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(layer.weight, 0.0, std)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.BatchNorm2d):
            nn.init.normal_(layer.weight, 1.0, std)
            nn.init.zeros_(layer.bias)
