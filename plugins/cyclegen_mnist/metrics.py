"""Mode coverage on Stacked MNIST: each channel labelled by the digit classifier, 1,000 modes."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from cyclegen import Domain, Metric
from cyclegen_mnist.classifier import classify

#: Digits per sample (the R, G and B channels) and the modes they make: 10 ** DIGITS.
DIGITS = 3
MODES = 10**DIGITS
#: A channel counts as a confidently read digit when the classifier gives its label at least this probability.
CONFIDENT = 0.5


def modes_of(labels: Tensor) -> Tensor:
    """(N, 3) digit labels -> (N,) modes 100 a + 10 b + c."""
    return (labels * torch.tensor([100, 10, 1], dtype=labels.dtype)).sum(1)


class StackedModes(Metric):
    """Modes of Stacked MNIST that samples cover, counted as VEEGAN, PacGAN and PresGAN count them.

    The classifier labels each of a sample's three channels; its mode is 100 a + 10 b + c, one of
    1,000. "modes covered" counts modes holding any sample. "kl" is the KL divergence of the mode
    histogram of all samples from uniform over the 1,000 modes (0 is perfectly balanced), the
    formula of the 2-D ring and grid's mode metric. The papers count 26,000 samples, so the
    recipes set `[eval] samples = 26000`: real stacked digits then cover all 1,000 modes with a KL
    of 0.025 (test digits; 0.023 training digits), the histogram's sampling noise and MNIST's
    slightly unequal digit counts.

    "confident %" is the share of samples whose three channels are each read with probability at
    least 0.5: where it is low, samples are not digit-like and the modes counted are the
    classifier's guesses. It is a one-way check: a softmax classifier can also be sure of images
    that are no digits (an untrained generator's blobs read as one digit at 100%), so a high
    value proves nothing; look at the samples.
    """

    name = "stacked-modes"

    def __init__(self, classifier: nn.Module) -> None:
        self.classifier = classifier

    def labels(self, samples: Tensor) -> tuple[Tensor, Tensor]:
        """Each channel's digit label (N, 3) and the classifier's probability of it (N, 3)."""
        n, channels = samples.shape[:2]
        labels, confidence = classify(self.classifier, samples.reshape(n * channels, 1, *samples.shape[2:]))
        return labels.view(n, channels), confidence.view(n, channels)

    def evaluate(self, samples: Tensor, domain: Domain, generator: torch.Generator) -> dict[str, float]:
        domain.validate(samples)
        labels, confidence = self.labels(samples)
        counts = torch.bincount(modes_of(labels), minlength=MODES).double()
        share = counts / len(samples) if len(samples) else counts
        kl = float((share[share > 0] * (share[share > 0] * MODES).log()).sum()) if len(samples) else math.nan
        confident = (confidence >= CONFIDENT).all(1).double().mean() if len(samples) else torch.tensor(math.nan)
        return {
            "modes covered": float((counts > 0).sum()),
            "modes total": float(MODES),
            "kl": kl,
            "confident %": 100.0 * float(confident),
        }
