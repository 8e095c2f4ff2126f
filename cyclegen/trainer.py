"""One training step: the critic phase, then the mapper phase, on the recipe's schedule."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from cyclegen.distributed import SINGLE, Ranks, shard_size
from cyclegen.errors import CycleGenError
from cyclegen.graph import Graph, Route, Term
from cyclegen.history import SampleHistory
from cyclegen.optim import OptimGroup, build_optim_groups
from cyclegen.packing import PackedCritic, pack_samples
from cyclegen.recipe import Recipe
from cyclegen.runtime import NO_CONTEXT, Runtime, eval_mode
from cyclegen.state import Parts, State
from cyclegen.streams import DomainStreams, ProcessStreams, domain_generator


@dataclass
class CriticBatch:
    """One critic update's samples: a real batch (scored or kept for penalties) and fakes."""

    real: Tensor
    fakes: list[Tensor]
    score_real: bool


class Trainer:
    """Owns the optimisers, random streams and histories; `step()` performs one scheduled step.

    Mapper losses are backpropagated into mapper parameters only (`backward(inputs=...)`):
    gradients flow through the critics, which get neither gradients nor updates from it.
    Critics see generated samples computed without a graph, so no gradient reaches a mapper.

    How networks run (precision, layout, compilation, torchrun) is the `runtime`'s business:
    what leaves a network for a loss, a history or a critic update is cast to float32 through
    it, and every backward has its gradient scaler (enabled for fp16 only): one for the
    mapper phase, which backpropagates all mapper groups at once, and one per critic group.

    Stateful: `state_dict()` holds the step and every part in `parts` (weights and their
    moving averages, optimiser groups, gradient scalers, random streams, sample histories).
    """

    def __init__(self, graph: Graph, recipe: Recipe, device: torch.device, ranks: Ranks = SINGLE) -> None:
        _check_packs_divide_shards(recipe, ranks)
        self.runtime = Runtime.for_training(recipe.train, device, ranks)
        self.graph = graph.to(device)
        self.recipe = recipe
        self.batch_size = recipe.train.batch_size
        process_streams = ProcessStreams(recipe.seed, ranks, device)  # a rank > 0 reseeds here
        self.runtime.prepare(graph.networks.values())
        self.mapper_groups, self.critic_groups = build_optim_groups(graph, recipe.optim)
        self.mapper_scaler = self.runtime.scaler("mappers")
        self.critic_scalers = {group.name: self.runtime.scaler(f"critic/{group.name}") for group in self.critic_groups}
        self.mapper_params = [p for g in self.mapper_groups for p in g.params]
        self.streams = DomainStreams(recipe.seed, graph.domains)
        self.critic_fake_paths = {
            name: _unique(term.path for term in graph.adversarial_terms(name)) for name in graph.critics
        }
        # Per-step constants, computed once: the step runs every few milliseconds on small models.
        self.fake_plan = graph.plan(term.path for term in graph.terms if term.critic)
        self.term_plan = graph.plan(term.path for term in graph.terms)
        self.term_outputs = [self.term_plan.routes.index(term.path) for term in graph.terms]
        self.mapper_list = list(graph.mappers.values())
        self.critic_modules = dict(graph.critics.items())  # a plain dict: ModuleDict lookups are Python calls
        self.eval_fakes = recipe.schedule.fakes == "eval"
        self.joint_batches = recipe.schedule.critic_batches == "joint"
        #: Term weights, None where 1: a multiply by 1 is an operation forward and backward for nothing.
        self.term_weights = [None if term.weight == 1.0 else term.weight for term in graph.terms]
        self.histories = {
            (name, path): SampleHistory(
                recipe.critics[name].history, domain_generator(recipe.seed, f"{name}/{path}", "history"), device
            )
            for name in graph.critics
            if recipe.critics[name].history
            for path in self.critic_fake_paths[name]
        }
        self.averages = graph.averages
        self.parts = Parts(
            {
                **graph.weight_parts(),
                "optim": Parts({group.name: group for group in self.groups}),
                "scalers": self.runtime,
                "rng": process_streams,
                "domains": self.streams,
                "history": Parts({f"{critic}/{path}": h for (critic, path), h in self.histories.items()}),
            }
        )
        self.step_count = 0
        self.loss_names = [f"critic {name}" for name in graph.critics] + [t.label for t in graph.terms]
        #: The critics whose score spread each step reports after its losses (see `critic_phase`).
        self.spread_names = list(graph.critics) if self.critic_groups else []

    def state_dict(self) -> State:
        """Everything a resume needs; under torchrun a collective call (each rank's noise stream)."""
        return {"step": self.step_count, **self.parts.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.parts.load_state_dict(state)
        self.step_count = int(state["step"])

    def draw(self, domain: str) -> Tensor:
        """A training batch of `domain` from its own random stream: this process's share, on the device."""
        return self.runtime.place(self.graph.domains[domain].batch(self.batch_size, self.streams[domain], "train"))

    def draw_starts(self, starts: Iterable[str]) -> dict[str, Tensor]:
        return {start: self.draw(start) for start in starts}

    def step(self) -> Tensor:
        """Run one step; returns the detached losses in the order of `loss_names`, then each
        critic's score spread in the order of `spread_names`."""
        for group in self.groups:
            group.schedule_lr(self.step_count, self.recipe.train.steps)
        critic_losses, spreads = self.critic_phase() if self.critic_groups else ([], [])
        mapper_losses = self.mapper_phase()
        self.step_count += 1
        return torch.stack([*critic_losses, *mapper_losses, *spreads])

    # -- critics -------------------------------------------------------------------------

    def critic_phase(self) -> tuple[list[Tensor], list[Tensor]]:
        """Each critic's loss and score spread, averaged over the critic steps.

        The spread is the standard deviation of a critic's scores over one round, its real and
        generated batches together: near 0, the critic scores every sample alike (Run warns).
        """
        totals: dict[str, Tensor] = {}
        spreads: dict[str, Tensor] = {}
        for _ in range(self.graph.critic_steps):
            fakes = self.make_fakes()
            for group in self.critic_groups:
                for name, (loss, spread) in self.update_critic_group(group, fakes).items():
                    totals[name] = _plus(totals.get(name), loss)
                    spreads[name] = _plus(spreads.get(name), spread)
        steps = self.graph.critic_steps
        return [_mean(totals[name], steps) for name in self.graph.critics], [
            _mean(spreads[name], steps) for name in self.graph.critics
        ]

    def make_fakes(self) -> dict[Route, Tensor]:
        """Each fake path's output, without a graph, in float32 (histories store them)."""
        plan, runtime = self.fake_plan, self.runtime
        with torch.no_grad(), eval_mode(self.mapper_list) if self.eval_fakes else NO_CONTEXT, runtime.autocast():
            fakes = self.graph.run(plan, self.draw_starts(plan.starts))
        return {route: runtime.as_float(fake) for route, fake in zip(plan.routes, fakes)}

    def update_critic_group(
        self, group: OptimGroup, fakes: dict[Route, Tensor]
    ) -> dict[str, tuple[Tensor, Tensor]]:
        """Update the critics of one optimiser group; returns each critic's logged loss and
        the spread of the scores it gave in this round.

        The logged loss is the real loss plus the mean fake loss, whichever batching is used.
        """
        batches = {name: self.critic_batches(name, fakes) for name in group.networks}
        logged: dict[str, Tensor] = {}
        scored: dict[str, list[Tensor]] = {name: [] for name in batches}
        scaler = self.critic_scalers[group.name]
        for k in range(max(len(b) for b in batches.values())):
            total: Tensor | None = None
            for name, sequence in batches.items():
                if k < len(sequence):
                    loss = self.critic_loss(self.critic_modules[name], sequence[k], scored[name])
                    total = _plus(total, loss)
                    logged[name] = _plus(logged.get(name), loss.detach())
            assert total is not None
            group.zero_grad()
            scaler.scale(total).backward(inputs=group.params)
            self.runtime.average_gradients(group.params)
            group.step(scaler)
            scaler.update()
            for name in batches:
                self.graph.adversarial.after_critic_step(self.critic_modules[name])
        return {
            name: (_mean(logged[name], len(self.critic_fake_paths[name])), _spread(scored[name])) for name in logged
        }

    def critic_batches(self, name: str, fakes: dict[Route, Tensor]) -> list[CriticBatch]:
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

    def shown_fakes(self, critic: str, path: Route, fakes: Tensor) -> Tensor:
        """The fakes critic `critic` sees for `path`: through its sample history, if it keeps one."""
        history = self.histories.get((critic, path))
        return fakes if history is None else history.exchange(fakes)

    def critic_loss(self, critic: nn.Module, batch: CriticBatch, scored: list[Tensor]) -> Tensor:
        """Real loss (weighted to balance the fake batches), fake losses and penalties; the
        scores it computes are appended to `scored`."""
        loss_fn = self.graph.adversarial
        loss: Tensor | None = None
        if batch.score_real:  # weighted to balance the fake batches
            count = len(batch.fakes)
            scored.append(scores := self.score(critic, batch.real))
            loss = _weighted(loss_fn.critic_real(scores), count if count > 1 else None)
        for fake in batch.fakes:
            scored.append(scores := self.score(critic, fake))
            loss = _plus(loss, loss_fn.critic_fake(scores))
            if self.graph.penalties:
                for penalty in self.penalties(critic, batch.real, fake):
                    loss = loss + penalty.float()
        assert loss is not None, "a critic batch scores real samples or holds fakes"
        return loss

    def score(self, critic: nn.Module, samples: Tensor) -> Tensor:
        """The critic's scores of `samples`, computed under autocast, in float32 for the loss."""
        with self.runtime.autocast():
            return self.runtime.as_float(critic(samples))

    def penalties(self, critic: nn.Module, real: Tensor, fake: Tensor) -> list[Tensor]:
        """Every penalty of the graph, with the critic run under autocast (and eagerly, since
        they differentiate its input gradients).

        A packing critic's penalties see its packed inputs: a gradient norm belongs to what the
        critic judges as one input, and an interpolation mixes packs, not single samples.
        """
        if isinstance(critic, PackedCritic):
            critic, real, fake = critic.critic, pack_samples(real, critic.pack), pack_samples(fake, critic.pack)
        with self.runtime.autocast(), self.runtime.eager():
            return [penalty(critic, real, fake) for penalty in self.graph.penalties]

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
            self.runtime.average_gradients(self.mapper_params)
            for group in self.mapper_groups:
                group.step(self.mapper_scaler)
            self.mapper_scaler.update()
            if self.averages is not None:
                self.averages.update()
            detached = [loss.detach() for loss in losses]
            totals = [t + d for t, d in zip(totals, detached)] if totals else detached
        return [_mean(t, steps) for t in totals]

    def term_losses(self, inputs: dict[str, Tensor]) -> list[Tensor]:
        """Each term's unweighted loss on `inputs`, evaluating shared path prefixes once."""
        with self.runtime.autocast():
            outputs = self.graph.run(self.term_plan, inputs)
        return [
            self.term_loss(term, inputs, outputs[index]) for term, index in zip(self.graph.terms, self.term_outputs)
        ]

    def term_loss(self, term: Term, inputs: dict[str, Tensor], output: Tensor) -> Tensor:
        """`term`'s unweighted loss, given the output of its path."""
        if term.critic is not None:
            return self.graph.adversarial.mapper(self.score(self.critic_modules[term.critic], output))
        assert term.loss is not None
        return term.loss(self.runtime.as_float(inputs[term.path.start]), self.runtime.as_float(output))

    @property
    def groups(self) -> list[OptimGroup]:
        return [*self.mapper_groups, *self.critic_groups]


def _check_packs_divide_shards(recipe: Recipe, ranks: Ranks) -> None:
    """Under torchrun each process's critics pack its share of the batch (the recipe checked the whole)."""
    share = shard_size(recipe.train.batch_size, ranks)
    for name, spec in recipe.critics.items():
        if share % spec.pack:
            raise CycleGenError(
                f"critics.{name}.pack = {spec.pack} must divide each process's share of train.batch_size "
                f"({recipe.train.batch_size} over {ranks.world_size} processes: {share}); use a batch size "
                f"that is a multiple of {spec.pack * ranks.world_size}"
            )


def _unique(items: Iterable[Any]) -> list[Any]:
    return list(dict.fromkeys(items))


# Running sums and means of losses without starting from torch.zeros or dividing by 1: each of
# those is an operation (and an allocation) per use, and the step uses them dozens of times.
# The results are bit for bit the same: 0 + x == x, x / 1 == x and 1 * x == x.


def _plus(total: Tensor | None, value: Tensor) -> Tensor:
    return value if total is None else total + value


def _spread(scores: list[Tensor]) -> Tensor:
    """The standard deviation of every score of one round, real and generated together."""
    return torch.cat([score.detach().reshape(-1) for score in scores]).std(correction=0)


def _mean(total: Tensor, count: int) -> Tensor:
    return total if count == 1 else total / count


def _weighted(loss: Tensor, weight: float | None) -> Tensor:
    return loss if weight is None else weight * loss
