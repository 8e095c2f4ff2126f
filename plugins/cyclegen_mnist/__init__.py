"""Stacked MNIST: the 1,000-mode benchmark of VEEGAN, PacGAN and PresGAN, with its mode metric."""

from __future__ import annotations

from cyclegen import hookimpl
from cyclegen_mnist.domain import StackedMNIST


@hookimpl
def cyclegen_register(registry) -> None:
    registry.domain("stacked-mnist", StackedMNIST)
