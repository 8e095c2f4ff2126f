"""Fully connected mappers and critics for low-dimensional domains (toy data, latents)."""

from __future__ import annotations

import math
from typing import Literal

from torch import Tensor, nn

from cyclegen import Critic, Domain, Mapper, hookimpl

Activation = Literal["relu", "leaky_relu", "elu", "tanh"]
Norm = Literal["none", "layer"]


def _activation(name: Activation) -> nn.Module:
    return {"relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(0.2), "elu": nn.ELU, "tanh": nn.Tanh}[name]()


def mlp(inputs: int, outputs: int, hidden: int, depth: int, activation: Activation, norm: Norm) -> nn.Sequential:
    """`depth` hidden layers of width `hidden`, then a linear output layer."""
    if depth < 0 or hidden < 1:
        raise ValueError(f"need depth >= 0 and hidden >= 1, got depth={depth}, hidden={hidden}")
    layers: list[nn.Module] = []
    width = inputs
    for _ in range(depth):
        layers += [nn.Linear(width, hidden)]
        if norm == "layer":
            layers += [nn.LayerNorm(hidden)]
        layers += [_activation(activation)]
        width = hidden
    layers += [nn.Linear(width, outputs)]
    return nn.Sequential(*layers)


class MLPMapper(Mapper):
    """An MLP from one domain's flattened samples to another's; linear or tanh output.

    Options:
        hidden: Units in every hidden layer.
        depth: Hidden layers; 0 makes the mapper one linear layer.
        activation: The nonlinearity after every hidden layer (`leaky_relu` has slope 0.2).
        norm: `layer` puts a LayerNorm before every activation; `none` normalises nothing.
        output: `tanh` squashes the outputs into [-1, 1], as image data is scaled; `linear`
            leaves them unbounded, as for latents and the 2-D toy data.
    """

    def __init__(
        self,
        source: Domain,
        target: Domain,
        hidden: int = 128,
        depth: int = 3,
        activation: Activation = "relu",
        norm: Norm = "none",
        output: Literal["linear", "tanh"] = "linear",
    ) -> None:
        super().__init__(source, target)
        self.net = mlp(math.prod(source.shape), math.prod(target.shape), hidden, depth, activation, norm)
        self.squash = nn.Tanh() if output == "tanh" else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.squash(self.net(x.flatten(1))).view(-1, *self.target_shape)


class MLPCritic(Critic):
    """An MLP from a domain's flattened samples to one score (a logit) per sample.

    Options:
        hidden: Units in every hidden layer.
        depth: Hidden layers; 0 makes the critic one linear layer.
        activation: The nonlinearity after every hidden layer (`leaky_relu` has slope 0.2).
        norm: `layer` puts a LayerNorm before every activation; `none` normalises nothing.
    """

    def __init__(
        self,
        domain: Domain,
        hidden: int = 128,
        depth: int = 3,
        activation: Activation = "leaky_relu",
        norm: Norm = "none",
    ) -> None:
        super().__init__(domain)
        self.net = mlp(math.prod(domain.shape), 1, hidden, depth, activation, norm)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.flatten(1)).squeeze(1)


@hookimpl
def cyclegen_register(registry) -> None:
    registry.mapper("mlp", MLPMapper)
    registry.critic("mlp", MLPCritic)
