"""A history of generated samples shown to a critic (Shrivastava et al. 2017; CycleGAN).

Training a critic on a mix of current and past fakes keeps it from chasing only the
mappers' latest output, which damps oscillation. Until the history is full every fake is
stored and passed through; afterwards each fake, with probability one half, is swapped
for a stored one (which it replaces).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from cyclegen.state import State


class SampleHistory:
    """Up to `capacity` past samples of one fake path, with its own random stream."""

    def __init__(self, capacity: int, generator: torch.Generator, device: torch.device | None = None) -> None:
        if capacity < 1:
            raise ValueError(f"history capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self.generator = generator
        self.device = device or torch.device("cpu")  # where loaded samples go
        self.samples: Tensor | None = None
        self.count = 0

    def exchange(self, fakes: Tensor) -> Tensor:
        """The batch the critic sees in place of `fakes`; updates the history."""
        if self.samples is None:
            self.samples = fakes.new_empty((self.capacity, *fakes.shape[1:]))
        shown = fakes.clone()
        coins = torch.rand(len(fakes), generator=self.generator).tolist()
        slots = torch.randint(self.capacity, (len(fakes),), generator=self.generator).tolist()
        for i, fake in enumerate(fakes):
            if self.count < self.capacity:
                self.samples[self.count] = fake
                self.count += 1
            elif coins[i] < 0.5:
                shown[i] = self.samples[slots[i]]
                self.samples[slots[i]] = fake
        return shown

    def state_dict(self) -> State:
        state: State = {"generator": self.generator.get_state()}
        if self.samples is not None and self.count:
            state["samples"] = self.samples[: self.count]
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        stored = state.get("samples")
        self.count = 0 if stored is None else len(stored)
        if stored is None:
            self.samples = None
            return
        self.samples = stored.new_empty((self.capacity, *stored.shape[1:])).to(self.device)
        self.samples[: self.count] = stored.to(self.device)
