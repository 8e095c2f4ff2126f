"""The contracts every plugin implements.

The engine only ever talks to these types, so it stays free of images, Gaussians,
convolutions or particular losses. Components are built by factories registered in the
plugin registry; a factory's keyword arguments are the options a recipe may set.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar, Literal

import torch
from torch import Tensor, nn

DomainKind = Literal["data", "prior"]


class Domain(ABC):
    """A named space of samples with a fixed per-sample `shape`.

    Data domains draw from a dataset (with train/test splits); prior domains sample a
    distribution. The engine hands every call its own CPU generator so that runs are
    reproducible and resumable regardless of device.
    """

    kind: ClassVar[DomainKind] = "data"
    #: Whether `show` draws pictures; the engine writes sample pictures only of domains that do.
    can_show: ClassVar[bool] = False

    def __init__(self, name: str, shape: tuple[int, ...]) -> None:
        self.name = name
        self.shape = tuple(shape)

    @abstractmethod
    def batch(self, n: int, generator: torch.Generator, split: str = "train") -> Tensor:
        """Return `n` samples of shape `(n, *self.shape)` on the CPU."""

    def show(self, samples: Tensor, path: Path, columns: int | None = None, *, title: str | None = None) -> Path:
        """Write a picture of `samples` to `path` (a PNG) and return the path written.

        Domains that lay samples out in a grid use `columns` per row when given. `title` is a
        short caption saying what the picture shows, so that pictures read on their own
        (training passes, say, "G(z), fixed noise · step 1,200"); a domain draws it where it
        fits, or may ignore it. No-break spaces (U+00A0) in it join words a wrapped caption
        should keep on one line; Pillow's default font lacks the glyph, and
        `cyclegen_plots.text.printable` turns them into spaces. A domain that implements this
        sets `can_show = True`.

        Overrides need not take `title`: callers pass it only to a method that accepts it
        (`call_with_title`), so a plugin written before captions existed keeps working and its
        pictures simply have none.
        """
        raise NotImplementedError(f"domain {self.name!r} cannot display samples")

    def show_pairs(self, first: Tensor, second: Tensor, path: Path, *, title: str | None = None) -> Path:
        """Write a picture of corresponding samples side by side (e.g. real, reconstruction).

        `title` is a caption as in `show`; by default the pairs are interleaved into `show`.
        """
        return call_with_title(self.show, torch.stack([first, second], 1).flatten(0, 1), path, columns=10, title=title)

    def view_of(self, samples: Tensor, domain: Domain) -> Tensor | None:
        """This domain's own rendering of samples of `domain`, where its data is a fixed view
        of that domain's (a sketch domain draws colour images as it drew its data), else None.

        A translation into `domain` can then be checked by drawing it back: a colourised
        sketch, sketched again, should give the sketch it came from.
        """
        return None

    def read(self, paths: list[Path], limit: int | None = None) -> Tensor:
        """Load user files (at most `limit`) as a batch of this domain, preprocessed as in training."""
        raise NotImplementedError(f"domain {self.name!r} cannot read files")

    def metrics(self) -> list["Metric"]:
        """Metrics this domain offers for samples produced into it."""
        return []

    def pair_metrics(self) -> list["PairMetric"]:
        """Metrics this domain offers for an output compared with its known target."""
        return []

    def held_out(self) -> tuple[list[str], Tensor] | None:
        """Held-out samples with an identity key each, or None when items have no identity.

        Two domains that return the same key hold two views of one underlying item (a
        face's sketch and its colour image): a true pair, so evaluation can score a
        translation between them against the truth.
        """
        return None

    def validate(self, samples: Tensor) -> None:
        """Raise ValueError when `samples` is not a batch of this domain."""
        if tuple(samples.shape[1:]) != self.shape:
            raise ValueError(
                f"domain {self.name!r} expects samples of shape (N, {', '.join(map(str, self.shape))}),"
                f" got {tuple(samples.shape)}"
            )


def accepts_title(method: Callable[..., object]) -> bool:
    """Whether a domain's `show` or `show_pairs` takes the `title` keyword (or any keyword)."""
    try:
        parameters = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):  # a callable Python cannot describe: call it the old way
        return False
    return any(
        p.kind is p.VAR_KEYWORD or (p.name == "title" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))
        for p in parameters
    )


def call_with_title(method: Callable[..., Path], *args: object, title: str | None, **kwargs: object) -> Path:
    """Call a domain's `show` or `show_pairs`, passing `title` only where its signature accepts it.

    Always passing it would break, mid-run, every plugin domain whose override predates the
    keyword; asking the signature costs microseconds beside drawing a PNG, and is asked at each
    call so that it stays right for a domain whose method is replaced.
    """
    if title is not None and accepts_title(method):
        kwargs["title"] = title
    return method(*args, **kwargs)


class Mapper(nn.Module):
    """A network from one domain to another. Factories receive `source` and `target`."""

    def __init__(self, source: Domain, target: Domain) -> None:
        super().__init__()
        self.source_shape = source.shape
        self.target_shape = target.shape


class Critic(nn.Module):
    """A network that scores samples of one domain: `(N, *shape) -> (N, ...)` scores."""

    def __init__(self, domain: Domain) -> None:
        super().__init__()
        self.domain_shape = domain.shape


class AdversarialLoss(ABC):
    """How a critic is trained and how it trains the mappers.

    The critic loss is split into a real and a fake part so that the engine can show a
    critic real and fake samples together or in separate single-class batches.
    Losses return tensors; the engine owns backward passes and optimiser steps.
    """

    #: Critic updates per mapper update this loss wants when the recipe does not say.
    preferred_critic_steps: ClassVar[int] = 1
    #: The spread (standard deviation) of a critic's scores over one round, real and generated
    #: batches together, below which it scores every sample alike, in this loss's score units.
    #: Training warns when a critic that scored above it falls below. None: the scores have no
    #: fixed scale, and critics are not watched.
    constant_below: ClassVar[float | None] = None

    @abstractmethod
    def critic_real(self, scores: Tensor) -> Tensor:
        """The critic's loss on scores of real samples."""

    @abstractmethod
    def critic_fake(self, scores: Tensor) -> Tensor:
        """The critic's loss on scores of generated samples."""

    @abstractmethod
    def mapper(self, scores: Tensor) -> Tensor:
        """The mappers' loss on the critic's scores of their outputs."""

    def penalties(self) -> list["Penalty"]:
        """Critic penalties this loss needs (WGAN-GP's gradient penalty); the engine applies
        them beside the recipe's `[adversarial] penalty`, once per (real, fake) batch."""
        return []

    def after_critic_step(self, critic: nn.Module) -> None:
        """Called after each critic update (e.g. weight clipping)."""


class Penalty(ABC):
    """A critic regulariser usable beside any adversarial loss (R1, gradient penalty).

    Called once per (real batch, fake batch) the critic is trained on, whether the recipe
    names it or a loss lists it in `AdversarialLoss.penalties()`; returns the weighted penalty.
    """

    @abstractmethod
    def __call__(self, critic: nn.Module, real: Tensor, fake: Tensor) -> Tensor: ...


class ReconstructionLoss(ABC):
    """A distance between a batch and its reconstruction, as a scalar."""

    @abstractmethod
    def __call__(self, target: Tensor, reconstruction: Tensor) -> Tensor: ...


class Metric(ABC):
    """Scores samples that a mapper produced into a domain, against that domain's data."""

    name: ClassVar[str] = "metric"

    def applies_to(self, domain: Domain) -> bool:
        """Whether this metric can score samples of `domain`. A metric a recipe names in
        `eval.metrics` scores every mapper whose target it applies to (FID: the image domains)."""
        return True

    @abstractmethod
    def evaluate(self, samples: Tensor, domain: Domain, generator: torch.Generator) -> dict[str, float]:
        """Return named numbers for `samples` (N, *domain.shape), on the CPU.

        Reference data, where needed, comes from `domain.batch(..., generator, split)`.
        """


class PairMetric(ABC):
    """Scores outputs against known targets of the same domain (a cycle's input, a true pair)."""

    @abstractmethod
    def evaluate(self, target: Tensor, output: Tensor, domain: Domain) -> dict[str, float]:
        """Return named numbers for `output` compared with `target`, both (N, *domain.shape)."""


class FeatureExtractor(ABC):
    """Maps a domain's samples to feature vectors, for metrics that compare distributions in a
    feature space (FID compares Inception-v3 pool features); registered with `registry.features`.

    Metrics cache the features of reference data under `identity()`, so it must change whenever
    the features would: another network, other weights, other preprocessing.
    """

    @abstractmethod
    def identity(self) -> str:
        """A short string naming the network, its weights and its preprocessing."""

    def applies_to(self, domain: Domain) -> bool:
        """Whether this extractor can take samples of `domain` (an image network: image domains)."""
        return True

    @abstractmethod
    def __call__(self, samples: Tensor, domain: Domain) -> Tensor:
        """Features (N, D) as float32 on the CPU of `samples` (N, *domain.shape)."""
