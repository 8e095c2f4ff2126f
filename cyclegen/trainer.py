"""One training step: the critic phase, then the mapper phase, on the recipe's schedule."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from cyclegen.graph import Graph, Path, Term, domain_generator
from cyclegen.history import SampleHistory
from cyclegen.optim import OptimGroup, build_optim_groups
from cyclegen.recipe import Recipe


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


class Trainer:
    """Owns the optimisers and random streams; `step()` performs one scheduled step.

    Mapper losses are backpropagated into mapper parameters only (`backward(inputs=...)`):
    gradients flow through the critics, which get neither gradients nor updates from it.
    Critics see generated samples computed without a graph, so no gradient reaches a mapper.
    """

    def __init__(self, graph: Graph, recipe: Recipe, device: torch.device) -> None:
        self.graph = graph.to(device)
        self.recipe = recipe
        self.device = device
        self.batch_size = recipe.train.batch_size
        self.mapper_groups, self.critic_groups = build_optim_groups(graph, recipe.optim)
        self.mapper_params = [p for g in self.mapper_groups for p in g.params]
        self.generators = {name: domain_generator(recipe.seed, name) for name in graph.domains}
        schedule = recipe.schedule
        self.critic_steps = schedule.critic_steps or graph.adversarial.preferred_critic_steps
        self.fake_paths = _unique(term.path for term in graph.terms if term.critic)
        self.critic_fake_paths = {
            name: _unique(term.path for term in graph.adversarial_terms(name)) for name in graph.critics
        }
        self.term_paths = _unique(term.path for term in graph.terms)
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

    def draw(self, domain: str) -> Tensor:
        """A training batch of `domain` from its own random stream, on the device."""
        batch = self.graph.domains[domain].batch(self.batch_size, self.generators[domain], "train")
        return batch.to(self.device, non_blocking=True)

    def draw_inputs(self, paths: list[Path]) -> dict[str, Tensor]:
        return {start: self.draw(start) for start in dict.fromkeys(p.start for p in paths)}

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
        totals = {name: torch.zeros((), device=self.device) for name in self.graph.critics}
        for _ in range(self.critic_steps):
            fakes = self.make_fakes()
            for group in self.critic_groups:
                for name, loss in self.update_critic_group(group, fakes).items():
                    totals[name] = totals[name] + loss
        return [totals[name] / self.critic_steps for name in self.graph.critics]

    def make_fakes(self) -> dict[Path, Tensor]:
        mappers = list(self.graph.mappers.values())
        eval_fakes = self.recipe.schedule.fakes == "eval"
        with torch.no_grad(), eval_mode(mappers) if eval_fakes else nullcontext():
            return self.graph.evaluate(self.fake_paths, self.draw_inputs(self.fake_paths))

    def update_critic_group(self, group: OptimGroup, fakes: dict[Path, Tensor]) -> dict[str, Tensor]:
        """Update the critics of one optimiser group; returns each critic's logged loss.

        The logged loss is the real loss plus the mean fake loss, whichever batching is used.
        """
        batches = {name: self.critic_batches(name, fakes) for name in group.networks}
        logged = {name: torch.zeros((), device=self.device) for name in group.networks}
        for k in range(max(len(b) for b in batches.values())):
            total = torch.zeros((), device=self.device)
            for name, sequence in batches.items():
                if k < len(sequence):
                    loss = self.critic_loss(self.graph.critics[name], sequence[k])
                    total = total + loss
                    logged[name] = logged[name] + loss.detach()
            group.zero_grad()
            total.backward(inputs=group.params)
            group.step()
            for name in batches:
                self.graph.adversarial.after_critic_step(self.graph.critics[name])
        return {name: logged[name] / len(self.critic_fake_paths[name]) for name in logged}

    def critic_batches(self, name: str, fakes: dict[Path, Tensor]) -> list[CriticBatch]:
        """The batches each update of critic `name` trains on, in order.

        Joint: one update on a real batch and every fake path's batch. Single-class (the
        AEGAN reference): a real batch, then one fake path's batch, in turn, each its own
        update; the fake update keeps the real batch only for penalties that need both.
        """
        domain = self.graph.critic_domains[name]
        paths = self.critic_fake_paths[name]
        shown = [self.shown_fakes(name, path, fakes[path]) for path in paths]
        if self.recipe.schedule.critic_batches == "joint":
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
        loss = torch.zeros((), device=self.device)
        if batch.score_real:
            loss = loss + max(1, len(batch.fakes)) * loss_fn.critic_real(critic(batch.real))
        for fake in batch.fakes:
            loss = loss + loss_fn.critic_fake(critic(fake))
            penalty = loss_fn.penalty(critic, batch.real, fake)
            if penalty is not None:
                loss = loss + penalty
            if self.graph.penalty is not None:
                loss = loss + self.graph.penalty(critic, batch.real, fake)
        return loss

    # -- mappers -------------------------------------------------------------------------

    def mapper_phase(self) -> list[Tensor]:
        steps = self.recipe.schedule.mapper_steps
        totals = [torch.zeros((), device=self.device) for _ in self.graph.terms]
        for _ in range(steps):
            inputs = self.draw_inputs(self.term_paths)
            losses = self.term_losses(inputs)
            for group in self.mapper_groups:
                group.zero_grad()
            total = sum(term.weight * loss for term, loss in zip(self.graph.terms, losses))
            total.backward(inputs=self.mapper_params)
            for group in self.mapper_groups:
                group.step()
            totals = [t + loss.detach() for t, loss in zip(totals, losses)]
        return [t / steps for t in totals]

    def term_losses(self, inputs: dict[str, Tensor]) -> list[Tensor]:
        """Each term's unweighted loss on `inputs`, evaluating shared path prefixes once."""
        outputs = self.graph.evaluate(self.term_paths, inputs)
        return [self.term_loss(term, inputs, outputs) for term in self.graph.terms]

    def term_loss(self, term: Term, inputs: dict[str, Tensor], outputs: dict[Path, Tensor]) -> Tensor:
        if term.critic is not None:
            return self.graph.adversarial.mapper(self.graph.critics[term.critic](outputs[term.path]))
        assert term.loss is not None
        return term.loss(inputs[term.path.start], outputs[term.path])

    # -- state ---------------------------------------------------------------------------

    @property
    def groups(self) -> list[OptimGroup]:
        return [*self.mapper_groups, *self.critic_groups]


def _unique(paths: object) -> list[Path]:
    return list(dict.fromkeys(paths))  # type: ignore[arg-type]
