"""Packing (PacGAN, Lin et al. 2018): a critic judges `m` samples at once, as one input.

A critic that sees several samples together can tell a batch that repeats a few modes from one
that covers them all, which a critic of single samples cannot (PacGAN reports it balancing the
25-mode grid and Stacked MNIST; docs/benchmarks.md measures it here). The samples are stacked
along their first axis (the channels of an image, the coordinates of a vector), so any critic
plugin built for the packed shape serves, without knowing it is packed.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cyclegen.interfaces import Domain


def packed_shape(shape: tuple[int, ...], pack: int) -> tuple[int, ...]:
    """The shape of one packed input: `pack` samples of `shape` stacked along the first axis."""
    return (shape[0] * pack, *shape[1:])


def pack_samples(samples: Tensor, pack: int) -> Tensor:
    """`(N, C, ...)` samples as `(N / pack, pack * C, ...)`: consecutive samples share an input."""
    count = samples.shape[0]
    if count % pack:
        raise ValueError(f"a critic that packs {pack} samples got a batch of {count}, which {pack} does not divide")
    return samples.reshape(count // pack, pack * samples.shape[1], *samples.shape[2:])


class PackedDomain(Domain):
    """How a packing critic sees a domain: its samples `pack` at a time, stacked as one.

    Critic factories build from a domain's `shape`; handing them this view builds a critic for
    packed inputs. Its batches are real packed batches of the underlying domain.
    """

    def __init__(self, domain: Domain, pack: int) -> None:
        super().__init__(domain.name, packed_shape(domain.shape, pack))
        self.unpacked = domain
        self.pack = pack

    def batch(self, n: int, generator: torch.Generator, split: str = "train") -> Tensor:
        return pack_samples(self.unpacked.batch(n * self.pack, generator, split), self.pack)


class PackedCritic(nn.Module):
    """A critic of packed inputs, called on unpacked batches: one score per `pack` samples.

    Batches whose size `pack` does not divide are an error, never silently trimmed.
    """

    def __init__(self, critic: nn.Module, pack: int) -> None:
        super().__init__()
        self.critic = critic
        self.pack = pack

    def forward(self, samples: Tensor) -> Tensor:
        return self.critic(pack_samples(samples, self.pack))
