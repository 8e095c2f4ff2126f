"""Wasserstein adversarial losses: WGAN (weight clipping) and WGAN-GP (gradient penalty).

The critic estimates the Wasserstein-1 distance between real and generated samples as
mean D(real) - mean D(fake), which it maximises and the mappers minimise. Scores are raw
(no sigmoid) and the losses are computed in float32.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from cyclegen import AdversarialLoss, Penalty
from cyclegen_wasserstein.penalties import GradientPenalty


class Wasserstein(AdversarialLoss):
    """The Wasserstein loss without a Lipschitz constraint (the subclasses add one)."""

    #: Both papers train the critic 5 times per generator update so it stays near optimal.
    preferred_critic_steps: ClassVar[int] = 5

    def critic_real(self, scores: Tensor) -> Tensor:
        return -scores.float().mean()

    def critic_fake(self, scores: Tensor) -> Tensor:
        return scores.float().mean()

    def mapper(self, scores: Tensor) -> Tensor:
        return -scores.float().mean()


class WGAN(Wasserstein):
    """Wasserstein GAN (Arjovsky et al. 2017): every critic weight clipped to [-clip, clip].

    Clipping keeps the critic K-Lipschitz, which the Wasserstein estimate needs; it is crude
    (capacity loss, sensitivity to `clip`), which is what WGAN-GP fixes.

    Options:
        clip: After every critic update, each critic weight is clamped to [-clip, clip];
            positive (the paper: 0.01).
    """

    def __init__(self, clip: float = 0.01) -> None:
        if not clip > 0:
            raise ValueError(f"clip must be > 0, got {clip}")
        self.clip = clip

    def after_critic_step(self, critic: nn.Module) -> None:
        with torch.no_grad():
            for param in critic.parameters():
                param.clamp_(-self.clip, self.clip)


class WGANGP(Wasserstein):
    """WGAN-GP (Gulrajani et al. 2017): the Wasserstein loss plus a gradient penalty.

    The penalty `gp_weight * (|grad D(x_hat)| - 1)^2` on real/fake interpolates replaces
    weight clipping as the Lipschitz constraint (the `gradient-penalty` penalty component).

    Options:
        gp_weight: The weight of the gradient penalty in the critic's loss (the paper: 10).
    """

    def __init__(self, gp_weight: float = 10.0) -> None:
        self.gradient_penalty = GradientPenalty(weight=gp_weight)

    def penalties(self) -> list[Penalty]:
        return [self.gradient_penalty]
