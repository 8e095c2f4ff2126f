"""Critic penalties on input gradients: WGAN-GP's gradient penalty and R1.

Both are computed in float32 whatever precision the critic runs in: a squared gradient norm
over a whole image overflows or underflows in half precision, and the norm's square root has an
infinite derivative at zero (a known NaN source of mixed-precision WGAN-GP code), so an epsilon
sits inside the root. Samples are flattened per sample, so image critics with score maps
(N, 1, h, w) and latent critics with one score per sample are treated alike.

Score maps (a PatchGAN's (N, 1, h, w)) are averaged per sample before differentiating, as the
adversarial losses average them: the penalised function is then the one the loss trains, and
a penalty weight means the same whatever the number of patches (differentiating the sum
instead would scale the effective weight with h * w).
"""

from __future__ import annotations

import warnings
import weakref

import torch
from torch import Tensor, nn

from cyclegen import Penalty

#: Added to the squared gradient norm before its square root. d sqrt(u)/du is infinite at
#: u = 0, so without it a critic whose input gradient is exactly zero (a dead ReLU, a constant
#: output) gives NaN parameter gradients instead of zero ones.
NORM_EPS = 1e-12

_checked: weakref.WeakSet[nn.Module] = weakref.WeakSet()


def input_gradients(critic: nn.Module, samples: Tensor) -> Tensor:
    """d(each sample's mean score)/d(samples) in float32, flattened to (N, features).

    Summing the per-sample scores gives each sample its own gradient because a critic scores
    samples independently; a score map is averaged over its patches first. The critic runs as the caller set
    it up (inside the caller's autocast region, if any); the graph is kept (`create_graph`) so
    that the penalty trains the critic.
    """
    _warn_if_batch_norm(critic)
    x = samples.detach().float().requires_grad_(True)
    scores = critic(x)
    per_sample = scores.float().reshape(len(x), -1).mean(1)
    (grad,) = torch.autograd.grad(per_sample.sum(), x, create_graph=True)
    return grad.float().flatten(1)


def gradient_norms(grads: Tensor) -> Tensor:
    """Per-sample L2 norms of flattened gradients, with `NORM_EPS` inside the square root."""
    return torch.sqrt(grads.pow(2).sum(1) + NORM_EPS)


def _warn_if_batch_norm(critic: nn.Module) -> None:
    """Warn once per critic: batch statistics mix samples, so per-sample gradients are ill-defined."""
    if critic in _checked:
        return
    _checked.add(critic)
    batch_norms = [
        name
        for name, module in critic.named_modules()
        if isinstance(module, nn.modules.batchnorm._BatchNorm)
        and (module.training or not module.track_running_stats)
    ]
    if batch_norms:
        warnings.warn(
            f"critic {type(critic).__name__} normalises with batch statistics ({', '.join(batch_norms)}): "
            "each sample's score depends on the rest of the batch, so gradient penalties are "
            "ill-defined (Gulrajani et al. 2017 use layer norm instead); use layer or instance norm",
            stacklevel=3,
        )


class GradientPenalty(Penalty):
    """WGAN-GP's gradient penalty (Gulrajani et al. 2017): `weight * (|grad D(x_hat)| - target)^2`.

    x_hat = eps * real + (1 - eps) * fake with one uniform eps per sample: the optimal
    Wasserstein critic has unit gradient norm on the segments between the two distributions,
    so the 1-Lipschitz constraint is enforced softly where it matters. Averaged over the batch.

    Options:
        weight: Multiplies the penalty in the critic's loss; at least 0 (the paper: 10).
        target: The gradient norm the penalty pulls towards; at least 0 (1 for a 1-Lipschitz
            critic).
    """

    def __init__(self, weight: float = 10.0, target: float = 1.0) -> None:
        if weight < 0:
            raise ValueError(f"weight must be >= 0, got {weight}")
        if target < 0:
            raise ValueError(f"target (a gradient norm) must be >= 0, got {target}")
        self.weight = weight
        self.target = target

    def __call__(self, critic: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
        if real.shape != fake.shape:
            raise ValueError(
                f"the gradient penalty interpolates real and fake samples, which need one shape; "
                f"got {tuple(real.shape)} and {tuple(fake.shape)}"
            )
        real, fake = real.detach().float(), fake.detach().float()
        # One position per sample, from the global stream (checkpointed, so resume is exact).
        eps = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), device=real.device, dtype=torch.float32)
        x_hat = eps * real + (1 - eps) * fake
        norms = gradient_norms(input_gradients(critic, x_hat))
        return self.weight * (norms - self.target).pow(2).mean()


class R1(Penalty):
    """R1 (Mescheder et al. 2018): `weight / 2 * mean |grad D(real)|^2`, on real samples only.

    Penalising the critic's gradient on the data makes GAN training locally convergent
    where unregularised training can oscillate around equilibrium; it needs no fakes, and no
    square root, so a zero gradient is harmless.

    Options:
        weight: The penalty is weight / 2 times the mean squared gradient norm; at least 0.
    """

    def __init__(self, weight: float = 10.0) -> None:
        if weight < 0:
            raise ValueError(f"weight must be >= 0, got {weight}")
        self.weight = weight

    def __call__(self, critic: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
        return self.weight / 2 * input_gradients(critic, real).pow(2).sum(1).mean()
