"""Random streams: one CPU generator per domain and purpose, and each process's global stream.

Domains draw from their own generators, seeded from the recipe seed and the domain's name, so
samples are identical on any device and writing samples or evaluating never moves training's
streams. Network noise and penalties use torch's global stream (and the GPU's), which under
torchrun differs per rank. Both kinds are stateful parts, so resume continues every stream.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import Tensor

from cyclegen.distributed import Ranks, gather_objects
from cyclegen.errors import StateError
from cyclegen.state import State


def domain_generator(seed: int, name: str, purpose: str = "train") -> torch.Generator:
    """A CPU generator for one domain whose stream depends only on seed, name and purpose."""
    generator = torch.Generator()
    generator.manual_seed(derived_seed(seed * 1_000_003 + zlib.crc32(f"{purpose}/{name}".encode())))
    return generator


def derived_seed(value: int) -> int:
    """`value` within torch's seed range (64 bits), unchanged where it already is."""
    return value % 2**64


class DomainStreams(dict[str, torch.Generator]):
    """The training stream of each domain, by domain name."""

    def __init__(self, seed: int, domains: Iterable[str]) -> None:
        super().__init__((name, domain_generator(seed, name)) for name in domains)

    def state_dict(self) -> State:
        return {name: generator.get_state() for name, generator in self.items()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for name, generator in self.items():
            if name not in state:
                raise StateError("no saved stream for this domain", (name,))
            generator.set_state(state[name])


class ProcessStreams:
    """torch's global stream (and this GPU's) in every process of a run.

    Rank 0 keeps the single-process stream; every other rank starts its own from the seed, so
    network noise differs across ranks. The state holds every rank's stream (rank 0's at the
    top, rank r's under `rank<r>`): saving is a collective call, which every rank makes at
    once. A rank that a checkpoint of fewer processes has no stream for starts a fresh one,
    derived from the seed, its rank and the saved rank-0 stream.
    """

    def __init__(self, seed: int, ranks: Ranks, device: torch.device) -> None:
        self.seed, self.ranks, self.device = seed, ranks, device
        if ranks.rank:
            seed_rank(seed, ranks.rank)

    def _own(self) -> dict[str, Tensor]:
        states = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            states["cuda"] = torch.cuda.get_rng_state(self.device)
        return states

    def state_dict(self) -> State:
        first, *others = gather_objects(self._own())
        return {**first, **{f"rank{rank}": states for rank, states in enumerate(others, start=1)}}  # type: ignore[dict-item]

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        rank = self.ranks.rank
        own = state if rank == 0 else state.get(f"rank{rank}")
        if own is None:
            offset = zlib.crc32(state["torch"].numpy().tobytes())
            seed_rank(self.seed, rank, offset)
            return
        torch.set_rng_state(own["torch"])
        if "cuda" in own and self.device.type == "cuda":
            torch.cuda.set_rng_state(own["cuda"], self.device)


def seed_rank(seed: int, rank: int, offset: int = 0) -> None:
    """Give a rank > 0 its own network-noise stream (rank 0 keeps the single-process one)."""
    torch.manual_seed(derived_seed(seed * 1_000_003 + 7_919 * rank + offset))
