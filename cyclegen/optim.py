"""Optimiser groups: which networks share an optimiser, and how their gradients are clipped."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from cyclegen.errors import RecipeError, StateError, unknown_name_message
from cyclegen.graph import Graph
from cyclegen.recipe import ClipSpec, LRScheduleSpec, OptimSpec
from cyclegen.state import State


@dataclass
class OptimGroup:
    name: str
    networks: list[str]
    params: list[nn.Parameter]
    optimizer: torch.optim.Optimizer
    clip: ClipSpec
    base_lr: float
    lr_schedule: LRScheduleSpec

    def schedule_lr(self, step: int, total_steps: int) -> None:
        """Set the learning rate for `step`; a pure function of the step, so resume is exact."""
        lr = self.base_lr * self.lr_schedule.factor(step, total_steps)
        for param_group in self.optimizer.param_groups:
            param_group["lr"] = lr

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def state_dict(self) -> State:
        return self.optimizer.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        try:
            self.optimizer.load_state_dict(dict(state))
        except (ValueError, KeyError) as exc:
            raise StateError(f"the saved optimiser state does not fit networks {self.networks} ({exc})") from None

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def step(self, scaler: torch.amp.GradScaler) -> None:
        """Clip and update. Gradients are unscaled first, so clipping sees their true norms;
        the scaler skips the update when they hold inf or NaN (fp16 overflow)."""
        scaler.unscale_(self.optimizer)
        if self.clip.per_tensor is not None:
            grads = [p.grad for p in self.params if p.grad is not None]
            if grads:
                clip_per_tensor(grads, self.clip.per_tensor)
        if self.clip.global_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.params, self.clip.global_norm)
        scaler.step(self.optimizer)


def clip_per_tensor(grads: list[torch.Tensor], max_norm: float) -> None:
    """Scale each gradient tensor to L2 norm at most `max_norm` (Keras `clipnorm`)."""
    norms = torch._foreach_norm(grads)
    scales = [torch.clamp(max_norm / torch.clamp(norm, min=1e-12), max=1.0) for norm in norms]
    torch._foreach_mul_(grads, scales)


def implementation(params: list[nn.Parameter]) -> dict[str, bool]:
    """Fused Adam (one kernel for all tensors) where torch has it: the default on CPU is a
    Python loop over tensors, several small ops each, a few percent of a conv step and most
    of a small-MLP step; elsewhere torch's own default."""
    devices = {p.device.type for p in params}
    return {"fused": True} if devices and devices <= {"cpu", "cuda"} else {}


def make_optimizer(spec: OptimSpec, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    """The optimiser `spec` names, over `params`."""
    common = dict(lr=spec.lr, weight_decay=spec.weight_decay)
    if spec.type == "rmsprop":
        return torch.optim.RMSprop(params, alpha=spec.alpha, eps=spec.eps, momentum=spec.momentum, **common)
    if spec.type == "sgd":
        return torch.optim.SGD(params, momentum=spec.momentum, **common)
    adam = torch.optim.AdamW if spec.type == "adamw" else torch.optim.Adam
    return adam(params, betas=spec.betas, eps=spec.eps, **common, **implementation(params))


def default_optim(graph: Graph) -> dict[str, OptimSpec]:
    """Without an [optim] section: one Adam for all mappers, one per critic."""
    groups = {"mappers": OptimSpec(networks=list(graph.mappers))} if len(graph.mappers) else {}
    groups.update({f"critic_{name}": OptimSpec(networks=[name]) for name in graph.critics})
    return groups


def build_optim_groups(graph: Graph, specs: dict[str, OptimSpec]) -> tuple[list[OptimGroup], list[OptimGroup]]:
    """Return (mapper groups, critic groups), checking each network is in exactly one group."""
    specs = specs or default_optim(graph)
    owner: dict[str, str] = {}
    mapper_groups: list[OptimGroup] = []
    critic_groups: list[OptimGroup] = []
    for group_name, spec in specs.items():
        where = f"optim.{group_name}.networks"
        if not spec.networks:
            raise RecipeError(f"{where}: list at least one network")
        for net in spec.networks:
            if net not in graph.networks:
                raise RecipeError(f"{where}: {unknown_name_message('network', net, graph.networks)}")
            if net in owner:
                raise RecipeError(f"{where}: network {net!r} is already in optim.{owner[net]}; a network belongs to one group")
            owner[net] = group_name
        kinds = {"mapper" if net in graph.mappers else "critic" for net in spec.networks}
        if len(kinds) > 1:
            raise RecipeError(f"{where}: a group holds only mappers or only critics, not both; split it in two")
        params = [p for net in spec.networks for p in graph.networks[net].parameters()]
        optimizer = make_optimizer(spec, params)
        group = OptimGroup(group_name, list(spec.networks), params, optimizer, spec.clip, spec.lr, spec.lr_schedule)
        (mapper_groups if "mapper" in kinds else critic_groups).append(group)
    missing = [net for net in graph.networks if net not in owner]
    if missing:
        raise RecipeError(
            f"network(s) {', '.join(map(repr, missing))} are in no optimiser group: add them to "
            f"an [optim.<group>] networks list"
        )
    return mapper_groups, critic_groups
