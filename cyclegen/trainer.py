"""One training step: the critic phase, then the mapper phase, on the recipe's schedule."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from cyclegen.distributed import SINGLE, Ranks, average_gradients, own_shard, seed_rank, shard_size
from cyclegen.graph import Graph, Path, Term, domain_generator
from cyclegen.history import SampleHistory
from cyclegen.interfaces import AdversarialLoss
from cyclegen.optim import OptimGroup, build_optim_groups
from cyclegen.recipe import Recipe

#: A reusable do-nothing context, for regions that need none in this configuration.
NO_CONTEXT = nullcontext()
#: The autocast dtype of each `train.precision`; None runs in float32 without autocast.
AUTOCAST_DTYPES: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class CriticBatch:
    """One critic update's samples: a real batch (scored or kept for penalties) and fakes."""

    real: Tensor
    fakes: list[Tensor]
    score_real: bool


@contextmanager
def eval_mode(modules: list[nn.Module]) -> Iterator[None]:
    """Temporarily switch modules to inference behaviour (no noise, no dropout)."""
    previous = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        yield
    finally:
        for m, was in zip(modules, previous):
            m.train(was)


def prepare_networks(networks: Iterable[nn.Module], channels_last: bool, compiled: bool) -> None:
    """Convert 4-D weights to channels-last and compile, in place, as `[train]` asks.

    `Module.compile` compiles lazily (on the first call) and, unlike wrapping in
    `torch.compile(module)`, keeps the state_dict keys, so checkpoints stay interchangeable
    between compiled and eager runs.
    """
    for net in networks:
        if channels_last:
            net.to(memory_format=torch.channels_last)
        if compiled:
            net.compile()


class Trainer:
    """Owns the optimisers and random streams; `step()` performs one scheduled step.

    Mapper losses are backpropagated into mapper parameters only (`backward(inputs=...)`):
    gradients flow through the critics, which get neither gradients nor updates from it.
    Critics see generated samples computed without a graph, so no gradient reaches a mapper.

    Networks run under autocast at `train.precision`; what leaves them for a loss, a history
    or a critic update is cast to float32, so no loss is reduced in half precision. Every
    backward has its gradient scaler (enabled for fp16 only): one for the mapper phase, which
    backpropagates all mapper groups at once, and one per critic group.
    """

    def __init__(self, graph: Graph, recipe: Recipe, device: torch.device, ranks: Ranks = SINGLE) -> None:
        self.graph = graph.to(device)
        self.recipe = recipe
        self.device = device
        self.ranks = ranks
        train = recipe.train
        self.batch_size = train.batch_size
        shard_size(train.batch_size, ranks)
        if ranks.rank:
            seed_rank(recipe.seed, ranks.rank)
        self.autocast_dtype = AUTOCAST_DTYPES[train.precision]
        self.channels_last = train.channels_last
        self.compiled = train.compile
        prepare_networks(graph.networks.values(), train.channels_last, train.compile)
        self.mapper_groups, self.critic_groups = build_optim_groups(graph, recipe.optim)
        self.mapper_scaler = self.new_scaler()
        self.critic_scalers = {group.name: self.new_scaler() for group in self.critic_groups}
        self.mapper_params = [p for g in self.mapper_groups for p in g.params]
        self.generators = {name: domain_generator(recipe.seed, name) for name in graph.domains}
        schedule = recipe.schedule
        self.critic_steps = schedule.critic_steps or graph.adversarial.preferred_critic_steps
        self.critic_fake_paths = {
            name: _unique(term.path for term in graph.adversarial_terms(name)) for name in graph.critics
        }
        # Per-step constants, computed once: the step runs every few milliseconds on small models.
        self.fake_plan = graph.plan(term.path for term in graph.terms if term.critic)
        self.term_plan = graph.plan(term.path for term in graph.terms)
        self.term_outputs = [self.term_plan.paths.index(term.path) for term in graph.terms]
        self.full_precision = self.autocast_dtype is None  # then no cast to float32 is needed
        self.mapper_list = list(graph.mappers.values())
        self.critic_modules = dict(graph.critics.items())  # a plain dict: ModuleDict lookups are Python calls
        self.eval_fakes = schedule.fakes == "eval"
        self.joint_batches = schedule.critic_batches == "joint"
        self.has_penalties = graph.penalty is not None or type(graph.adversarial).penalty is not AdversarialLoss.penalty
        #: Term weights, None where 1: a multiply by 1 is an operation forward and backward for nothing.
        self.term_weights = [None if term.weight == 1.0 else term.weight for term in graph.terms]
        self.histories = {
            (name, path): SampleHistory(
                recipe.critics[name].history, domain_generator(recipe.seed, f"{name}/{path}", "history")
            )
            for name in graph.critics
            if recipe.critics[name].history
            for path in self.critic_fake_paths[name]
        }
        self.step_count = 0
        self.loss_names = [f"critic {name}" for name in graph.critics] + [t.label for t in graph.terms]

    def new_scaler(self) -> torch.amp.GradScaler:
        """A gradient scaler for one backward; disabled (a pass-through) unless training in fp16."""
        return torch.amp.GradScaler(self.device.type, enabled=self.recipe.train.precision == "fp16")

    def average_gradients(self, params: list[nn.Parameter]) -> None:
        """Under torchrun, the mean gradient over ranks (before unscaling and clipping, so
        every rank clips, skips or steps alike and the weights stay identical)."""
        if self.ranks.world_size > 1:
            average_gradients(params, self.ranks.world_size)

    def autocast(self) -> AbstractContextManager[object]:
        """The region networks run in: autocast to the recipe's precision; for fp32 none at all
        (entering even a disabled autocast costs microseconds per network call)."""
        if self.autocast_dtype is None:
            return NO_CONTEXT
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def as_float(self, tensor: Tensor) -> Tensor:
        """`tensor` in float32 for a loss; in an fp32 run it already is (and .float() costs a call)."""
        return tensor if self.full_precision else tensor.float()

    def eager(self) -> AbstractContextManager[object]:
        """Run compiled networks eagerly: for the penalties' double backward, which compiled
        code does not support, and for samples and evaluation, not worth compiling."""
        return torch.compiler.set_stance("force_eager") if self.compiled else NO_CONTEXT

    def draw(self, domain: str) -> Tensor:
        """A training batch of `domain` from its own random stream, on the device.

        Image batches (4-D) are made channels-last when the networks are, so that convolutions
        need no layout conversion.
        """
        batch = self.graph.domains[domain].batch(self.batch_size, self.generators[domain], "train")
        if self.ranks.world_size > 1:  # the whole global batch is drawn, so streams stay shared
            batch = own_shard(batch, self.ranks)
        layout = torch.channels_last if self.channels_last and batch.dim() == 4 else torch.preserve_format
        return batch.to(self.device, non_blocking=True, memory_format=layout)

    def draw_inputs(self, paths: list[Path]) -> dict[str, Tensor]:
        return self.draw_starts(_unique(p.start for p in paths))

    def draw_starts(self, starts: list[str]) -> dict[str, Tensor]:
        return {start: self.draw(start) for start in starts}

    def step(self) -> Tensor:
        """Run one step; returns the detached losses in the order of `loss_names`."""
        for group in self.groups:
            group.schedule_lr(self.step_count, self.recipe.train.steps)
        critic_losses = self.critic_phase() if self.critic_groups else []
        mapper_losses = self.mapper_phase()
        self.step_count += 1
        return torch.stack([*critic_losses, *mapper_losses])

    # -- critics -------------------------------------------------------------------------

    def critic_phase(self) -> list[Tensor]:
        totals: dict[str, Tensor] = {}
        for _ in range(self.critic_steps):
            fakes = self.make_fakes()
            for group in self.critic_groups:
                for name, loss in self.update_critic_group(group, fakes).items():
                    totals[name] = _plus(totals.get(name), loss)
        return [_mean(totals[name], self.critic_steps) for name in self.graph.critics]

    def make_fakes(self) -> dict[Path, Tensor]:
        """Each fake path's output, without a graph, in float32 (histories store them)."""
        plan = self.fake_plan
        with torch.no_grad(), eval_mode(self.mapper_list) if self.eval_fakes else NO_CONTEXT, self.autocast():
            fakes = self.graph.run(plan, self.draw_starts(plan.starts))
        return {path: self.as_float(fake) for path, fake in zip(plan.paths, fakes)}

    def update_critic_group(self, group: OptimGroup, fakes: dict[Path, Tensor]) -> dict[str, Tensor]:
        """Update the critics of one optimiser group; returns each critic's logged loss.

        The logged loss is the real loss plus the mean fake loss, whichever batching is used.
        """
        batches = {name: self.critic_batches(name, fakes) for name in group.networks}
        logged: dict[str, Tensor] = {}
        scaler = self.critic_scalers[group.name]
        for k in range(max(len(b) for b in batches.values())):
            total: Tensor | None = None
            for name, sequence in batches.items():
                if k < len(sequence):
                    loss = self.critic_loss(self.critic_modules[name], sequence[k])
                    total = _plus(total, loss)
                    logged[name] = _plus(logged.get(name), loss.detach())
            assert total is not None
            group.zero_grad()
            scaler.scale(total).backward(inputs=group.params)
            self.average_gradients(group.params)
            group.step(scaler)
            scaler.update()
            for name in batches:
                self.graph.adversarial.after_critic_step(self.critic_modules[name])
        return {name: _mean(logged[name], len(self.critic_fake_paths[name])) for name in logged}

    def critic_batches(self, name: str, fakes: dict[Path, Tensor]) -> list[CriticBatch]:
        """The batches each update of critic `name` trains on, in order.

        Joint: one update on a real batch and every fake path's batch. Single-class (the
        AEGAN reference): a real batch, then one fake path's batch, in turn, each its own
        update; the fake update keeps the real batch only for penalties that need both.
        """
        domain = self.graph.critic_domains[name]
        paths = self.critic_fake_paths[name]
        shown = [self.shown_fakes(name, path, fakes[path]) for path in paths]
        if self.joint_batches:
            return [CriticBatch(self.draw(domain), shown, score_real=True)]
        sequence = []
        for fake in shown:
            real = self.draw(domain)
            sequence += [CriticBatch(real, [], score_real=True), CriticBatch(real, [fake], score_real=False)]
        return sequence

    def shown_fakes(self, critic: str, path: Path, fakes: Tensor) -> Tensor:
        """The fakes critic `critic` sees for `path`: through its sample history, if it keeps one."""
        history = self.histories.get((critic, path))
        return fakes if history is None else history.exchange(fakes)

    def critic_loss(self, critic: nn.Module, batch: CriticBatch) -> Tensor:
        """Real loss (weighted to balance the fake batches), fake losses and penalties."""
        loss_fn = self.graph.adversarial
        loss: Tensor | None = None
        if batch.score_real:  # weighted to balance the fake batches
            count = len(batch.fakes)
            loss = _weighted(loss_fn.critic_real(self.score(critic, batch.real)), count if count > 1 else None)
        for fake in batch.fakes:
            loss = _plus(loss, loss_fn.critic_fake(self.score(critic, fake)))
            if self.has_penalties:
                for penalty in self.penalties(critic, batch.real, fake):
                    loss = loss + penalty.float()
        assert loss is not None, "a critic batch scores real samples or holds fakes"
        return loss

    def score(self, critic: nn.Module, samples: Tensor) -> Tensor:
        """The critic's scores of `samples`, computed under autocast, in float32 for the loss."""
        with self.autocast():
            return self.as_float(critic(samples))

    def penalties(self, critic: nn.Module, real: Tensor, fake: Tensor) -> list[Tensor]:
        """The loss's own penalty and the recipe's, with the critic run under autocast (and
        eagerly, since they differentiate its input gradients)."""
        with self.autocast(), self.eager():
            found = [self.graph.adversarial.penalty(critic, real, fake)]
            if self.graph.penalty is not None:
                found.append(self.graph.penalty(critic, real, fake))
        return [penalty for penalty in found if penalty is not None]

    # -- mappers -------------------------------------------------------------------------

    def mapper_phase(self) -> list[Tensor]:
        steps = self.recipe.schedule.mapper_steps
        totals: list[Tensor] = []
        for _ in range(steps):
            inputs = self.draw_starts(self.term_plan.starts)
            losses = self.term_losses(inputs)
            for group in self.mapper_groups:
                group.zero_grad()
            total: Tensor | None = None
            for weight, loss in zip(self.term_weights, losses):
                total = _plus(total, _weighted(loss, weight))
            assert total is not None
            self.mapper_scaler.scale(total).backward(inputs=self.mapper_params)
            self.average_gradients(self.mapper_params)
            for group in self.mapper_groups:
                group.step(self.mapper_scaler)
            self.mapper_scaler.update()
            detached = [loss.detach() for loss in losses]
            totals = [t + d for t, d in zip(totals, detached)] if totals else detached
        return [_mean(t, steps) for t in totals]

    def term_losses(self, inputs: dict[str, Tensor]) -> list[Tensor]:
        """Each term's unweighted loss on `inputs`, evaluating shared path prefixes once."""
        with self.autocast():
            outputs = self.graph.run(self.term_plan, inputs)
        return [
            self.term_loss(term, inputs, outputs[index]) for term, index in zip(self.graph.terms, self.term_outputs)
        ]

    def term_loss(self, term: Term, inputs: dict[str, Tensor], output: Tensor) -> Tensor:
        """`term`'s unweighted loss, given the output of its path."""
        if term.critic is not None:
            return self.graph.adversarial.mapper(self.score(self.critic_modules[term.critic], output))
        assert term.loss is not None
        return term.loss(self.as_float(inputs[term.path.start]), self.as_float(output))

    # -- state ---------------------------------------------------------------------------

    @property
    def term_paths(self) -> list[Path]:
        """Every term's path, each once, in the order the step evaluates them."""
        return list(self.term_plan.paths)

    @property
    def groups(self) -> list[OptimGroup]:
        return [*self.mapper_groups, *self.critic_groups]

    @property
    def scalers(self) -> dict[str, torch.amp.GradScaler]:
        """The enabled gradient scalers by checkpoint name: the mapper phase's, each critic group's."""
        named = {"mappers": self.mapper_scaler, **{f"critic/{n}": s for n, s in self.critic_scalers.items()}}
        return {name: scaler for name, scaler in named.items() if scaler.is_enabled()}


def _unique(items: Iterable[Any]) -> list[Any]:
    return list(dict.fromkeys(items))


# Running sums and means of losses without starting from torch.zeros or dividing by 1: each of
# those is an operation (and an allocation) per use, and the step uses them dozens of times.
# The results are bit for bit the same: 0 + x == x, x / 1 == x and 1 * x == x.


def _plus(total: Tensor | None, value: Tensor) -> Tensor:
    return value if total is None else total + value


def _mean(total: Tensor, count: int) -> Tensor:
    return total if count == 1 else total / count


def _weighted(loss: Tensor, weight: float | None) -> Tensor:
    return loss if weight is None else weight * loss
