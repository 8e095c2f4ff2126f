"""FID, KID, precision/recall and density/coverage as cyclegen metrics.

Each compares a mapper's samples with reference data of the target domain in a feature space:
the FID Inception-v3 by default, or any registered extractor (`features = "raw"` for a
domain's own coordinates). Reference data is the domain's held-out set where it has one (all
of it, or `reference` samples of it), else `reference` test draws; its features are cached.
On other features than the Inception ones, FID and KID are reported as "fd" and "kd" and
every name carries the extractor's, since they are no longer the published measures.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor

from cyclegen import Domain, FeatureExtractor, Metric
from cyclegen.registry import Components
from cyclegen_fidelity.distances import frechet_distance, kernel_distance
from cyclegen_fidelity.features import cache_folder, reference_features
from cyclegen_fidelity.manifold import density_coverage, precision_recall

#: The extractor a metric uses when the recipe does not name one.
INCEPTION = "inception"
#: Names of the Inception measures and what they become on other features.
GENERIC_NAMES = {"fid": "fd", "kid": "kd"}

Features = str | dict[str, Any]


def reference_data(domain: Domain, n: int, generator: torch.Generator) -> Tensor:
    """Up to `n` distinct held-out samples (a seeded choice when there are more), or `n` test
    draws from a domain without a held-out set (a prior, the toy data)."""
    held = domain.held_out()
    if held is None:
        return domain.batch(n, generator, "test")
    data = held[1]
    if n < len(data):
        data = data[torch.randperm(len(data), generator=generator)[:n]]
    return data


class FeatureMetric(Metric):
    """Extracts features of the samples and of the reference data, then compares them.

    Options:
        features: The feature extractor: a registered name ("inception", "raw") or a table
            with its `type` and options. On other features than "inception" the numbers are
            named after the extractor, and FID and KID are reported as "fd" and "kd".
        reference: Reference samples of the target domain: that many of its held-out set
            (at least 2), or test draws from a domain without one; unset, as many as the
            samples evaluated (at most the whole held-out set).
        cache: Where the reference features are cached: "auto" is $CYCLEGEN_CACHE/features
            or ~/.cache/cyclegen/features, "off" computes them every time, anything else is
            the cache folder.
    """

    #: The name of the sample-count entry's stem ("fid" gives "fid reference").
    first: ClassVar[str]

    def __init__(self, components: Components, features: Features, reference: int | None, cache: str) -> None:
        if reference is not None and reference < 2:
            raise ValueError(f"reference must be at least 2 samples, got {reference}")
        self.extractor: FeatureExtractor = components.build("features", features, "features")
        self.features = features if isinstance(features, str) else features["type"]  # checked by the build
        self.reference = reference
        self.cache = cache_folder(cache)

    def applies_to(self, domain: Domain) -> bool:
        return self.extractor.applies_to(domain)

    def evaluate(self, samples: Tensor, domain: Domain, generator: torch.Generator) -> dict[str, float]:
        data = reference_data(domain, self.reference or len(samples), generator)
        real = reference_features(self.extractor, data, domain, self.cache)
        fake = self.extractor(samples, domain)
        numbers = {**self.compare(real, fake, generator), f"{self.first} reference": float(len(real))}
        return {self.named(key): value for key, value in numbers.items()}

    def named(self, key: str) -> str:
        """`key` as reported: unchanged on Inception features, else "fd reference (raw)"."""
        if self.features == INCEPTION:
            return key
        head, _, rest = key.partition(" ")
        return " ".join(filter(None, [GENERIC_NAMES.get(head, head), rest, f"({self.features})"]))

    @abstractmethod
    def compare(self, real: Tensor, fake: Tensor, generator: torch.Generator) -> dict[str, float]:
        """Named numbers for real and fake features, (N, D) and (M, D)."""


class FID(FeatureMetric):
    """Fréchet Inception distance (Heusel et al. 2017): lower is better, 0 for equal statistics.

    Biased upwards by small sample counts, roughly by a constant over the count: compare FIDs
    only at equal counts (the literature uses 50,000 samples; docs/fidelity.md).
    """

    name = "fid"
    first = "fid"

    def __init__(
        self, components: Components, features: Features = INCEPTION, reference: int | None = None, cache: str = "auto"
    ) -> None:
        super().__init__(components, features, reference, cache)

    def compare(self, real: Tensor, fake: Tensor, generator: torch.Generator) -> dict[str, float]:
        return {"fid": frechet_distance(real, fake)}


class KID(FeatureMetric):
    """Kernel Inception distance (Bińkowski et al. 2018): an unbiased MMD, so comparable across
    sample counts, with its spread over `subsets` subsets of `subset_size` (capped at the counts).

    Options:
        subsets: Random subsets the distance is averaged over; their spread is reported as
            "kid std".
        subset_size: Samples per subset from each set (at least 2); with fewer samples,
            subsets are half the smaller set.
    """

    name = "kid"
    first = "kid"

    def __init__(
        self,
        components: Components,
        features: Features = INCEPTION,
        reference: int | None = None,
        cache: str = "auto",
        subsets: int = 100,
        subset_size: int = 1000,
    ) -> None:
        if subsets < 1 or subset_size < 2:
            raise ValueError(f"subsets must be at least 1 and subset_size at least 2, got {subsets} and {subset_size}")
        super().__init__(components, features, reference, cache)
        self.subsets = subsets
        self.subset_size = subset_size

    def compare(self, real: Tensor, fake: Tensor, generator: torch.Generator) -> dict[str, float]:
        mean, std = kernel_distance(real, fake, self.subsets, self.subset_size, generator)
        return {"kid": mean, "kid std": std}


class NeighbourMetric(FeatureMetric):
    """A pair of k-th-neighbour-ball measures of the two feature sets.

    Options:
        k: The balls that make up a set's manifold reach each point's k-th nearest neighbour
            in that set; at least 1.
    """

    #: The two numbers' names, and the function of (real, fake, k) that gives them.
    names: ClassVar[tuple[str, str]]
    measure: ClassVar[Callable[[Tensor, Tensor, int], tuple[float, float]]]

    def __init__(self, components: Components, features: Features, reference: int | None, cache: str, k: int) -> None:
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        super().__init__(components, features, reference, cache)
        self.k = k

    def compare(self, real: Tensor, fake: Tensor, generator: torch.Generator) -> dict[str, float]:
        return dict(zip(self.names, type(self).measure(real, fake, self.k)))


class PrecisionRecall(NeighbourMetric):
    """Improved precision (how much of the samples is realistic) and recall (how much of the data
    the samples cover), Kynkäänniemi et al. 2019, with k-th neighbour balls (k = 3 as there)."""

    name = "precision-recall"
    first = "precision"
    names = ("precision", "recall")
    measure = staticmethod(precision_recall)

    def __init__(
        self,
        components: Components,
        features: Features = INCEPTION,
        reference: int | None = None,
        cache: str = "auto",
        k: int = 3,
    ) -> None:
        super().__init__(components, features, reference, cache, k)


class DensityCoverage(NeighbourMetric):
    """Density and coverage (Naeem et al. 2020), robust to outliers where precision and recall
    are not; k = 5 as there."""

    name = "density-coverage"
    first = "density"
    names = ("density", "coverage")
    measure = staticmethod(density_coverage)

    def __init__(
        self,
        components: Components,
        features: Features = INCEPTION,
        reference: int | None = None,
        cache: str = "auto",
        k: int = 5,
    ) -> None:
        super().__init__(components, features, reference, cache, k)
