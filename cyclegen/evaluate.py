"""Evaluating a trained graph with the metrics its domains offer."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from cyclegen.experiment import Experiment
from cyclegen.graph import Graph
from cyclegen.interfaces import Domain, Metric
from cyclegen.runtime import eval_mode
from cyclegen.streams import domain_generator

CHUNK = 1024


def metrics_json(metrics: dict[str, dict[str, float]]) -> str:
    """Metrics as strict JSON: a NaN or infinite value (undefined metric) becomes null."""
    return json.dumps(finite_or_none(metrics), indent=2)


def finite_or_none(metrics: dict[str, dict[str, float]]) -> dict[str, dict[str, float | None]]:
    """`metrics` with each NaN or infinite value (an undefined metric) as None, for strict JSON."""
    return {
        section: {key: value if math.isfinite(value) else None for key, value in values.items()}
        for section, values in metrics.items()
    }


def map_in_chunks(mapper: nn.Module, inputs: Tensor, device: torch.device) -> Tensor:
    """Apply `mapper` in inference mode, in chunks, returning CPU outputs."""
    with torch.no_grad(), eval_mode([mapper]):
        return torch.cat([mapper(chunk.to(device)).cpu() for chunk in inputs.split(CHUNK)])


def samplers(graph: Graph) -> list[str]:
    """Mappers that turn prior samples into another domain: the ones that generate."""
    return [name for name, (source, _) in graph.mapper_ends.items() if graph.domains[source].kind == "prior"]


def translators(graph: Graph) -> list[str]:
    """Mappers between two data domains: the ones that translate (CycleGAN's F and H)."""
    return [
        name
        for name, (source, target) in graph.mapper_ends.items()
        if graph.domains[source].kind == "data" and graph.domains[target].kind == "data"
    ]


def true_pairs(graph: Graph, mapper: str, n: int) -> tuple[Tensor, Tensor] | None:
    """Up to `n` held-out (source view, target view) pairs of the same items, if the domains know them."""
    source, target = graph.mapper_ends[mapper]
    source_items, target_items = graph.domains[source].held_out(), graph.domains[target].held_out()
    if source_items is None or target_items is None:
        return None
    target_index = {key: i for i, key in enumerate(target_items[0])}
    matched = [(i, target_index[key]) for i, key in enumerate(source_items[0]) if key in target_index][:n]
    if not matched:
        return None
    source_rows, target_rows = (torch.tensor(rows) for rows in zip(*matched))
    return source_items[1][source_rows], target_items[1][target_rows]


def translation_metrics(graph: Graph, mapper: str, n: int, device: torch.device) -> dict[str, float] | None:
    """A translation scored by the target domain's pair metrics against the true held-out pairs,
    and, where the source domain is a view of the target's (`Domain.view_of`), its outputs
    drawn back into the source's view against the inputs ("redrawn psnr")."""
    pairs = true_pairs(graph, mapper, n)
    if pairs is None:
        return None
    inputs, truth = pairs
    source_name, target_name = graph.mapper_ends[mapper]
    source, target = graph.domains[source_name], graph.domains[target_name]
    outputs = map_in_chunks(graph.mappers[mapper], inputs, device)
    section = {"pairs": float(len(inputs))}
    for metric in target.pair_metrics():
        section.update(metric.evaluate(truth, outputs, target))
    section.update(redrawn_metrics(source, target, inputs, outputs))
    return section


def redrawn_metrics(source: Domain, target: Domain, inputs: Tensor, outputs: Tensor) -> dict[str, float]:
    """Outputs in `target` drawn back into `source`'s view (`Domain.view_of`) and scored by
    `source`'s pair metrics against the inputs, each key prefixed "redrawn"; empty where
    `source` is no view of `target`. A colourised sketch, sketched again, vs the sketch."""
    redrawn = source.view_of(outputs, target)
    if redrawn is None:
        return {}
    return {
        f"redrawn {key}": value
        for metric in source.pair_metrics()
        for key, value in metric.evaluate(inputs, redrawn, source).items()
    }


def evaluate(graph: Graph, extras: list[Metric], n: int, seed: int, device: torch.device) -> dict[str, dict[str, float]]:
    """Score each mapper's outputs with its target domain's metrics (and the `extras` that apply
    to that domain), and each cycle's error.

    Translators between data domains that share held-out items are also scored against
    the true pairs. Inputs come from the test split (or the prior) with a fixed stream, so
    numbers are repeatable for a given checkpoint.
    """
    results: dict[str, dict[str, float]] = {}
    for name, (source, target) in graph.mapper_ends.items():
        domain = graph.domains[target]
        metrics = domain.metrics() + [metric for metric in extras if metric.applies_to(domain)]
        if not metrics:
            continue
        inputs = graph.domains[source].batch(n, domain_generator(seed, source, "eval"), "test")
        outputs = map_in_chunks(graph.mappers[name], inputs, device)
        generator = domain_generator(seed, target, "eval-reference")
        section: dict[str, float] = {}
        for metric in metrics:
            section.update(metric.evaluate(outputs, domain, generator))
        results[f"{name}: {source} -> {target}"] = section
    for name in translators(graph):
        section = translation_metrics(graph, name, n, device)
        if section is not None:
            source, target = graph.mapper_ends[name]
            results[f"{name}: {source} -> {target} vs true pairs"] = section
    for term in graph.terms:
        if term.loss is None:
            continue
        start = term.path.start
        domain = graph.domains[start]
        inputs = domain.batch(min(n, CHUNK), domain_generator(seed, start, "eval-cycle"), "test")
        with torch.no_grad(), eval_mode(list(graph.mappers.values())):
            outputs = graph.evaluate([term.path], {start: inputs.to(device)})[term.path].cpu()
        section: dict[str, float] = {}
        for metric in domain.pair_metrics():
            section.update(metric.evaluate(inputs, outputs, domain))
        if term.loss_name not in section:  # an image cycle's "l1" pair metric is its l1 loss
            section = {f"{term.loss_name} loss": float(term.loss(inputs, outputs)), **section}
        results[f"{'identity' if term.identity else 'cycle'}: {term.path}"] = section
    return results


def evaluate_experiment(
    exp: Experiment, samples: int | None = None, extra_metrics: Sequence[str] = ()
) -> dict[str, dict[str, float]]:
    """`evaluate` of the experiment's inference graph (the `[ema]` averages unless raw weights
    were asked for) with the recipe's metrics (and the registered ones named in
    `extra_metrics`), sample count (unless `samples` is given) and seed."""
    recipe = exp.recipe
    metrics = exp.eval_metrics(extra_metrics)
    return evaluate(exp.inference_graph(), metrics, samples or recipe.eval.samples, recipe.seed, exp.device)
