"""The model graph: domains joined by mappers, watched by critics, trained by terms.

Building the graph resolves every name through the registry and checks the recipe before
any training: paths type-check against mapper domains, shapes agree, every network is
trained by some term.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from cyclegen.ema import MapperAverages, half_life_in_samples
from cyclegen.errors import RecipeError, StateError, unknown_name_message
from cyclegen.interfaces import AdversarialLoss, Domain, Penalty, ReconstructionLoss
from cyclegen.packing import PackedCritic, PackedDomain
from cyclegen.recipe import Recipe, TermSpec
from cyclegen.registry import Registry
from cyclegen.state import Parts, State
from cyclegen.streams import domain_generator

ARROW = "->"
#: Where a training state (and so a checkpoint) keeps the graph's weights: the part that
#: commands on a trained run load.
WEIGHTS_KEY = "net"
#: Where checkpoints keep the mappers' moving averages (`[ema]`).
AVERAGES_KEY = "ema"


@dataclass(frozen=True)
class Route:
    """A start domain followed by the mappers applied in order: `x -> E -> G`."""

    start: str
    mappers: tuple[str, ...]

    def __post_init__(self) -> None:
        # Paths key the step's dictionaries dozens of times a step; hash the fields once.
        object.__setattr__(self, "_hash", hash((self.start, self.mappers)))

    def __hash__(self) -> int:
        return self._hash  # type: ignore[attr-defined, no-any-return]

    def __str__(self) -> str:
        return f" {ARROW} ".join((self.start, *self.mappers))

    @classmethod
    def parse(cls, text: str, where: str) -> "Route":
        nodes = [node.strip() for node in text.split(ARROW)]
        if len(nodes) < 2 or not all(nodes):
            raise RecipeError(
                f"{where}: path {text!r} must be a domain followed by one or more mappers, "
                f"for example \"x {ARROW} E {ARROW} G\""
            )
        return cls(nodes[0], tuple(nodes[1:]))


@dataclass(frozen=True)
class Term:
    """One loss on one path. `critic` is set for adversarial terms, `loss` for reconstruction."""

    label: str
    path: Route
    weight: float
    critic: str | None = None
    loss: ReconstructionLoss | None = None
    loss_name: str | None = None
    identity: bool = False


class Graph:
    """Built components and the terms that train them."""

    def __init__(
        self,
        domains: dict[str, Domain],
        mappers: dict[str, nn.Module],
        mapper_ends: dict[str, tuple[str, str]],
        critics: dict[str, nn.Module],
        critic_domains: dict[str, str],
        adversarial: AdversarialLoss,
        terms: list[Term],
        penalties: list[Penalty],
        critic_steps: int,
        averages: MapperAverages | None = None,
    ) -> None:
        self.domains = domains
        self.mappers = nn.ModuleDict(mappers)
        self.mapper_ends = mapper_ends
        self.critics = nn.ModuleDict(critics)
        self.critic_domains = critic_domains
        self.adversarial = adversarial
        self.terms = terms
        #: Every critic penalty, the loss's own and the recipe's, applied to each (real, fake) batch.
        self.penalties = penalties
        #: Critic rounds per step: the recipe's, else what the adversarial loss prefers.
        self.critic_steps = critic_steps
        #: Moving averages of some mappers (`[ema]`), which samples and evaluation run.
        self.averages = averages

    @property
    def networks(self) -> dict[str, nn.Module]:
        return {**self.mappers, **self.critics}

    def state_dict(self) -> State:
        return {name: net.state_dict() for name, net in self.networks.items()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for name, net in self.networks.items():
            if name not in state:
                raise StateError("no saved weights for this network", (name,))
            try:
                net.load_state_dict(state[name])
            except RuntimeError as exc:
                raise StateError(f"the saved weights do not match the recipe's network ({exc})", (name,)) from None

    def weight_parts(self) -> Parts:
        """The stateful parts that hold weights: the networks, and the averages if any."""
        return Parts({WEIGHTS_KEY: self, **({AVERAGES_KEY: self.averages} if self.averages else {})})

    def averaged(self) -> "Graph":
        """This graph with each averaged mapper replaced by its average, sharing everything
        else: what samples, evaluation and commands on a trained run use by default."""
        if self.averages is None:
            return self
        mappers = {name: self.averages[name] if name in self.averages else net for name, net in self.mappers.items()}
        return Graph(self.domains, mappers, self.mapper_ends, dict(self.critics.items()), self.critic_domains,
                     self.adversarial, self.terms, self.penalties, self.critic_steps)

    def non_finite(self) -> list[str]:
        """The networks whose parameters or buffers hold NaN or infinity (one sync for all)."""
        tensors = [
            (name, t) for name, net in self.networks.items()
            for t in (*net.parameters(), *net.buffers()) if t.is_floating_point()
        ]
        if not tensors:
            return []
        finite = torch.stack([torch.isfinite(t).all() for _, t in tensors]).tolist()
        return list(dict.fromkeys(name for (name, _), ok in zip(tensors, finite) if not ok))

    def adversarial_terms(self, critic: str) -> list[Term]:
        return [term for term in self.terms if term.critic == critic]

    def plan(self, routes: Iterable[Route]) -> "Plan":
        """Compile `routes` into mapper calls, each shared prefix once (see Plan)."""
        routes = tuple(dict.fromkeys(routes))
        starts = tuple(dict.fromkeys(route.start for route in routes))
        slot_of: dict[tuple[str, ...], int] = {(start,): i for i, start in enumerate(starts)}
        calls: list[tuple[nn.Module, int]] = []
        outputs: list[int] = []
        for route in routes:
            key: tuple[str, ...] = (route.start,)
            for mapper in route.mappers:
                source = slot_of[key]
                key = (*key, mapper)
                if key not in slot_of:
                    slot_of[key] = len(starts) + len(calls)
                    calls.append((self.mappers[mapper], source))
            outputs.append(slot_of[key])
        return Plan(routes, starts, tuple(calls), tuple(outputs))

    def run(self, plan: "Plan", inputs: dict[str, Tensor]) -> list[Tensor]:
        """The output of each of `plan.routes`, in order, on `inputs[route.start]`."""
        values = [inputs[start] for start in plan.starts]
        for mapper, source in plan.calls:
            values.append(mapper(values[source]))
        return [values[slot] for slot in plan.outputs]

    def evaluate(self, routes: Iterable[Route], inputs: dict[str, Tensor]) -> dict[Route, Tensor]:
        """Run each route on `inputs[route.start]`, computing each shared prefix only once."""
        plan = self.plan(routes)
        return dict(zip(plan.routes, self.run(plan, inputs)))

    def to(self, device: torch.device) -> "Graph":
        self.mappers.to(device)
        self.critics.to(device)
        if self.averages is not None:
            self.averages.to(device)
        return self


@dataclass(frozen=True)
class Plan:
    """Routes as a flat list of mapper calls, for a training step that evaluates them every time.

    Slots hold tensors: first one per start domain (`starts`), then one per call, where call
    (mapper, source) applies `mapper` to slot `source`. Route i's output is slot `outputs[i]`.
    Built once, it saves the step the prefix bookkeeping and module lookups.
    """

    routes: tuple[Route, ...]
    starts: tuple[str, ...]
    calls: tuple[tuple[nn.Module, int], ...]
    outputs: tuple[int, ...]


def build_graph(recipe: Recipe, registry: Registry) -> Graph:
    """Build and check every component of `recipe`; networks are initialised from its seed."""
    domains = {
        name: registry.build("domain", spec.type, f"domains.{name}", spec.options, name=name)
        for name, spec in recipe.domains.items()
    }
    torch.manual_seed(recipe.seed)
    mappers: dict[str, nn.Module] = {}
    mapper_ends: dict[str, tuple[str, str]] = {}
    for name, spec in recipe.mappers.items():
        where = f"mappers.{name}"
        source = _domain(domains, spec.source, f"{where}.from")
        target = _domain(domains, spec.target, f"{where}.to")
        mappers[name] = _module(
            registry.build("mapper", spec.type, where, spec.options, source=source, target=target),
            where,
        )
        mapper_ends[name] = (spec.source, spec.target)
    critics: dict[str, nn.Module] = {}
    for name, spec in recipe.critics.items():
        where = f"critics.{name}"
        domain = _domain(domains, spec.domain, f"{where}.domain")
        seen = domain if spec.pack == 1 else PackedDomain(domain, spec.pack)
        critic = _module(registry.build("critic", spec.type, where, spec.options, domain=seen), where)
        critics[name] = critic if spec.pack == 1 else PackedCritic(critic, spec.pack)
    clash = set(mappers) & set(critics) | (set(mappers) | set(critics)) & set(domains)
    if clash:
        raise RecipeError(f"names must be unique across domains, mappers and critics: {sorted(clash)}")
    adversarial = registry.build(
        "adversarial_loss", recipe.adversarial.loss, "adversarial.loss", recipe.adversarial.options
    )
    if callable(getattr(adversarial, "penalty", None)):  # written for the interface before penalties()
        raise RecipeError(
            f"adversarial.loss {recipe.adversarial.loss!r} defines penalty(critic, real, fake), which cyclegen "
            "no longer calls; return the penalty from penalties() as a list of cyclegen.Penalty objects "
            "(docs/writing-plugins.md)"
        )
    penalties = list(adversarial.penalties())
    penalty_spec = recipe.adversarial.penalty
    if penalty_spec is not None:
        penalties.append(registry.build("penalty", penalty_spec.type, "adversarial.penalty", penalty_spec.options))
    graph = Graph(
        domains,
        mappers,
        mapper_ends,
        critics,
        {name: spec.domain for name, spec in recipe.critics.items()},
        adversarial,
        [_term(spec, i, registry, domains, mapper_ends, recipe) for i, spec in enumerate(recipe.terms)],
        penalties,
        recipe.schedule.critic_steps or adversarial.preferred_critic_steps,
        _averages(recipe, mappers),
    )
    _check_everything_trained(graph)
    _check_shapes(graph, recipe.seed)
    return graph


def _averages(recipe: Recipe, mappers: dict[str, nn.Module]) -> MapperAverages | None:
    """The `[ema]` averages, copied from the freshly initialised mappers."""
    spec = recipe.ema
    if spec is None:
        return None
    for i, name in enumerate(spec.mappers):
        if name not in mappers:
            raise RecipeError(f"ema.mappers[{i}]: {unknown_name_message('mapper', name, mappers)}")
    half_life = half_life_in_samples(spec.half_life, spec.decay, recipe.train.batch_size)
    chosen = {name: mappers[name] for name in dict.fromkeys(spec.mappers)}
    return MapperAverages(chosen, half_life, spec.warmup, recipe.train.batch_size)


def _domain(domains: dict[str, Domain], name: str, where: str) -> Domain:
    if name not in domains:
        raise RecipeError(f"{where}: {unknown_name_message('domain', name, domains)}")
    return domains[name]


def _module(built: object, where: str) -> nn.Module:
    if not isinstance(built, nn.Module):
        raise RecipeError(f"{where}: the plugin built a {type(built).__name__}, not a torch.nn.Module")
    return built


def _term(
    spec: TermSpec,
    index: int,
    registry: Registry,
    domains: dict[str, Domain],
    mapper_ends: dict[str, tuple[str, str]],
    recipe: Recipe,
) -> Term:
    where = f"terms[{index}]"
    path = Route.parse(spec.path, f"{where}.path")
    _domain(domains, path.start, f"{where}.path")
    if spec.kind == "identity":
        return _identity_term(spec, where, path, registry, domains, mapper_ends)
    current = path.start
    for mapper in path.mappers:
        if mapper not in mapper_ends:
            raise RecipeError(f"{where}.path {spec.path!r}: {unknown_name_message('mapper', mapper, mapper_ends)}")
        source, target = mapper_ends[mapper]
        if source != current:
            raise RecipeError(
                f"{where}.path {spec.path!r}: mapper {mapper!r} maps {source} -> {target}, but "
                f"the path reaches it in domain {current!r}; start the path in {source!r} or "
                f"use a mapper from {current!r}"
            )
        current = target
    if spec.kind == "adversarial":
        assert spec.critic is not None
        if spec.critic not in recipe.critics:
            raise RecipeError(f"{where}.critic: {unknown_name_message('critic', spec.critic, recipe.critics)}")
        judged = recipe.critics[spec.critic].domain
        if current != judged:
            raise RecipeError(
                f"{where}: critic {spec.critic!r} judges domain {judged!r}, but path "
                f"{spec.path!r} ends in {current!r}"
            )
        return Term(f"adv {spec.critic}({path})", path, spec.weight, critic=spec.critic)
    if current != path.start:
        raise RecipeError(
            f"{where}: reconstruction path {spec.path!r} must return to its start domain "
            f"{path.start!r} but ends in {current!r}"
        )
    assert spec.loss is not None
    loss = registry.build("reconstruction_loss", spec.loss, f"{where}.loss", {})
    return Term(f"rec {spec.loss}({path})", path, spec.weight, loss=loss, loss_name=spec.loss)


def _identity_term(
    spec: TermSpec,
    where: str,
    path: Route,
    registry: Registry,
    domains: dict[str, Domain],
    mapper_ends: dict[str, tuple[str, str]],
) -> Term:
    """`a -> H` with H: b -> a: H should leave samples already in its target domain alone.

    CycleGAN's identity loss keeps a translator from changing what needs no change
    (colour composition, for instance); it needs a and b to share a sample shape.
    """
    if len(path.mappers) != 1 or path.mappers[0] not in mapper_ends:
        raise RecipeError(
            f"{where}.path {spec.path!r}: an identity term is a domain and one mapper into that "
            f"domain, for example \"a {ARROW} H\" with H mapping b {ARROW} a"
        )
    mapper = path.mappers[0]
    source, target = mapper_ends[mapper]
    if target != path.start:
        raise RecipeError(
            f"{where}.path {spec.path!r}: mapper {mapper!r} maps into {target!r}, so an identity term "
            f"on it must start in {target!r}"
        )
    if domains[source].shape != domains[target].shape:
        raise RecipeError(
            f"{where}: identity term {spec.path!r} feeds {path.start!r} samples of shape "
            f"{domains[target].shape} to {mapper!r}, which takes {source!r} samples of shape "
            f"{domains[source].shape}; give both domains the same shape or drop the term"
        )
    assert spec.loss is not None
    loss = registry.build("reconstruction_loss", spec.loss, f"{where}.loss", {})
    return Term(f"idt {spec.loss}({path})", path, spec.weight, loss=loss, loss_name=spec.loss, identity=True)


def _check_everything_trained(graph: Graph) -> None:
    used_mappers = {mapper for term in graph.terms for mapper in term.path.mappers}
    judging = {term.critic for term in graph.terms if term.critic}
    problems = [
        f"mapper {name!r} is trained by no term: add a term whose path goes through it, or remove it"
        for name in graph.mappers
        if name not in used_mappers
    ] + [
        f"critic {name!r} judges no term: add an adversarial term with critic = {name!r}, or remove it"
        for name in graph.critics
        if name not in judging
    ]
    if problems:
        raise RecipeError("\n".join(problems))


def _check_shapes(graph: Graph, seed: int) -> None:
    """Push two samples through every mapper and critic to check the shapes they produce."""
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        for name, mapper in graph.mappers.items():
            source, target = graph.mapper_ends[name]
            sample = graph.domains[source].batch(2, domain_generator(seed, source, "check"))
            was_training = mapper.training
            out = mapper.eval()(sample)
            mapper.train(was_training)
            expected = (2, *graph.domains[target].shape)
            if tuple(out.shape) != expected:
                raise RecipeError(
                    f"mappers.{name}: produces shape {tuple(out.shape)[1:]} but domain "
                    f"{target!r} holds samples of shape {expected[1:]}"
                )
        for name, critic in graph.critics.items():
            domain = graph.critic_domains[name]
            pack = critic.pack if isinstance(critic, PackedCritic) else 1
            sample = graph.domains[domain].batch(2 * pack, domain_generator(seed, domain, "check"))
            was_training = critic.training
            scores = critic.eval()(sample)
            critic.train(was_training)
            if scores.ndim == 0 or scores.shape[0] != 2:
                raise RecipeError(
                    f"critics.{name}: must return one score (or score map) per sample, "
                    f"got shape {tuple(scores.shape)} for a batch of 2"
                    + (f" packed inputs ({2 * pack} samples)" if pack > 1 else "")
                )
