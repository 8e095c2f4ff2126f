"""Adversarial losses (bce, lsgan, hinge) and reconstruction losses (l1, l2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from cyclegen import AdversarialLoss, ReconstructionLoss, hookimpl


class BCE(AdversarialLoss):
    """Non-saturating GAN loss on logits.

    `label_smoothing` s trains the critic towards 1 - s on real samples and, unless
    `one_sided`, towards s on generated ones (the AEGAN reference: s = 0.05). The mappers
    always aim at a hard 1.

    Options:
        label_smoothing: The critic's targets move this far from 0 and 1 (in [0, 0.5)); the
            mappers' target stays 1.
        one_sided: Smooth only the real samples' target, keeping 0 for generated ones.
    """

    #: Logits: 0.1 is a spread of about 0.025 in the sigmoid's output near 0.5.
    constant_below = 0.1

    def __init__(self, label_smoothing: float = 0.0, one_sided: bool = False) -> None:
        if not 0.0 <= label_smoothing < 0.5:
            raise ValueError(f"label_smoothing must be in [0, 0.5), got {label_smoothing}")
        self.real_target = 1.0 - label_smoothing
        self.fake_target = 0.0 if one_sided else label_smoothing

    def critic_real(self, scores: Tensor) -> Tensor:
        return _bce(scores, self.real_target)

    def critic_fake(self, scores: Tensor) -> Tensor:
        return _bce(scores, self.fake_target)

    def mapper(self, scores: Tensor) -> Tensor:
        return _bce(scores, 1.0)


def _bce(logits: Tensor, target: float) -> Tensor:
    logits = logits.float()
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


class LSGAN(AdversarialLoss):
    """Least-squares GAN (Mao et al. 2017): critic regresses 1 on real and 0 on fake."""

    #: Scores regressed onto 0 and 1, like the BCE critic's sigmoid outputs (0.1 logits = 0.025).
    constant_below = 0.025

    def critic_real(self, scores: Tensor) -> Tensor:
        return (scores.float() - 1).pow(2).mean()

    def critic_fake(self, scores: Tensor) -> Tensor:
        return scores.float().pow(2).mean()

    def mapper(self, scores: Tensor) -> Tensor:
        return (scores.float() - 1).pow(2).mean()


class Hinge(AdversarialLoss):
    """Hinge loss (Lim and Ye 2017; SAGAN, BigGAN): margins of 1 for the critic."""

    #: Scores on the scale of the margin of 1, like BCE's logits.
    constant_below = 0.1

    def critic_real(self, scores: Tensor) -> Tensor:
        return F.relu(1 - scores.float()).mean()

    def critic_fake(self, scores: Tensor) -> Tensor:
        return F.relu(1 + scores.float()).mean()

    def mapper(self, scores: Tensor) -> Tensor:
        return -scores.float().mean()


class L1(ReconstructionLoss):
    """Mean absolute error."""

    def __call__(self, target: Tensor, reconstruction: Tensor) -> Tensor:
        return (reconstruction.float() - target.float()).abs().mean()


class L2(ReconstructionLoss):
    """Mean squared error."""

    def __call__(self, target: Tensor, reconstruction: Tensor) -> Tensor:
        return (reconstruction.float() - target.float()).pow(2).mean()


@hookimpl
def cyclegen_register(registry) -> None:
    registry.adversarial_loss("bce", BCE)
    registry.adversarial_loss("lsgan", LSGAN)
    registry.adversarial_loss("hinge", Hinge)
    registry.reconstruction_loss("l1", L1)
    registry.reconstruction_loss("l2", L2)
