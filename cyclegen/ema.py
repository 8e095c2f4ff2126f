"""Exponential moving averages of mapper weights (the "EMA generator" of StyleGAN and BigGAN).

A GAN's generator oscillates around its target from one update to the next; an average of
its recent weights does not, and draws sharper, better balanced samples. Averages follow
StyleGAN's rule: a half-life counted in training samples, never longer than `warmup` times
the samples trained on so far, so the average forgets the random initialisation early.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from cyclegen.errors import StateError
from cyclegen.state import State


def half_life_in_samples(half_life: int | None, decay: float | None, batch_size: int) -> float:
    """The recipe's half-life (given in samples, or as a per-update `decay`) in samples."""
    if half_life is not None:
        return float(half_life)
    assert decay is not None, "the recipe gives a half-life or a decay"
    return batch_size * math.log(0.5) / math.log(decay)


class MapperAverages:
    """Averaged copies of some mappers, updated after each mapper update (`update`).

    The copies are deep copies made before training (so never compiled, and run eagerly by
    samples and evaluation); parameters are averaged with one `torch._foreach_lerp_` per
    update, and buffers (batch-norm statistics) are copied from the trained mapper, as
    StyleGAN does. Weights are float32 in every precision setting (autocast casts only
    activations), and every torchrun rank holds the same trained weights, so the averages
    need no communication.

    Stateful: the copies' weights and the samples seen, so resume stays bit-exact.
    """

    def __init__(self, mappers: Mapping[str, nn.Module], half_life: float, warmup: float, batch_size: int) -> None:
        self.trained = dict(mappers)
        self.copies = nn.ModuleDict({name: copy.deepcopy(net).requires_grad_(False) for name, net in mappers.items()})
        self.half_life, self.warmup, self.batch_size = half_life, warmup, batch_size
        self.samples = 0
        self._pair_up()

    def _pair_up(self) -> None:
        """Flat lists of (average, trained) tensors, built once: an update is then two calls."""
        names = list(self.copies)
        self.averaged_params = [p for name in names for p in self.copies[name].parameters()]
        self.trained_params = [p for name in names for p in self.trained[name].parameters()]
        self.averaged_buffers = [b for name in names for b in self.copies[name].buffers()]
        self.trained_buffers = [b for name in names for b in self.trained[name].buffers()]

    def beta(self) -> float:
        """The weight the average keeps at the next update: 0.5 ** (batch / half-life so far)."""
        half_life = min(self.half_life, self.warmup * self.samples) if self.warmup else self.half_life
        return 0.5 ** (self.batch_size / half_life) if half_life > 0 else 0.0

    @torch.no_grad()
    def update(self) -> None:
        """Move each average towards its trained mapper; call after every mapper update."""
        torch._foreach_lerp_(self.averaged_params, self.trained_params, 1.0 - self.beta())
        if self.averaged_buffers:
            torch._foreach_copy_(self.averaged_buffers, self.trained_buffers)
        self.samples += self.batch_size

    def to(self, device: torch.device) -> "MapperAverages":
        self.copies.to(device)
        self._pair_up()  # `Module.to` may replace parameter tensors
        return self

    def state_dict(self) -> State:
        return {"samples": self.samples, "weights": {name: net.state_dict() for name, net in self.copies.items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        weights = state["weights"]
        for name, net in self.copies.items():
            if name not in weights:
                raise StateError("no saved average for this mapper (was [ema] changed?)", ("weights", name))
            try:
                net.load_state_dict(weights[name])
            except RuntimeError as exc:
                raise StateError(f"the saved average does not match the recipe's network ({exc})",
                                 ("weights", name)) from None
        self.samples = int(state["samples"])

    def __contains__(self, name: str) -> bool:
        return name in self.copies

    def __getitem__(self, name: str) -> nn.Module:
        return self.copies[name]

    def names(self) -> list[str]:
        return list(self.copies)

