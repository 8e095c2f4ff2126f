"""Sample pictures written during training: fixed and fresh noise, translations and cycles of held-out data."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from cyclegen.evaluate import map_in_chunks, samplers, translators
from cyclegen.graph import Graph, Route
from cyclegen.runtime import eval_mode
from cyclegen.streams import domain_generator


class SampleWriter:
    """Shows each generating mapper's outputs, each translation and each data cycle, through the domains' display.

    Fixed inputs are drawn once (the same at every step, so grids can be compared over
    time); fresh inputs come from a stream seeded by the step, so writing samples never
    touches the training streams.
    """

    def __init__(self, graph: Graph, seed: int, count: int, device: torch.device, directory: Path) -> None:
        self.graph, self.seed, self.count, self.device, self.directory = graph, seed, count, device, directory
        shown = [name for name, domain in graph.domains.items() if domain.can_show]
        ends = graph.mapper_ends
        self.fixed = {name: self._draw(ends[name][0], "fixed") for name in samplers(graph) if ends[name][1] in shown}
        self.cycles: dict[Route, Tensor] = {
            term.path: self._draw(term.path.start, "fixed")
            for term in graph.terms
            if term.loss is not None
            and not term.identity
            and graph.domains[term.path.start].kind == "data"
            and term.path.start in shown
        }
        self.translations = {
            name: self._draw(ends[name][0], "fixed") for name in translators(graph) if ends[name][1] in shown
        }

    def _draw(self, domain: str, purpose: str, seed: int | None = None) -> Tensor:
        generator = domain_generator(self.seed if seed is None else seed, domain, purpose)
        return self.graph.domains[domain].batch(self.count, generator, "test")

    def write(self, step: int) -> list[Path]:
        written = []
        for name, inputs in self.fixed.items():
            source, target = self.graph.mapper_ends[name]
            fresh = self._draw(source, "fresh", seed=self.seed * 1_000_003 + step)
            for label, batch in (("fixed", inputs), ("random", fresh)):
                outputs = map_in_chunks(self.graph.mappers[name], batch, self.device)
                written.append(self.graph.domains[target].show(outputs, self._path(f"{name}-{label}", step)))
        for name, inputs in self.translations.items():
            outputs = map_in_chunks(self.graph.mappers[name], inputs, self.device)
            target = self.graph.domains[self.graph.mapper_ends[name][1]]
            written.append(target.show_pairs(inputs, outputs, self._path(f"{name}-translation", step)))
        for path, inputs in self.cycles.items():
            with torch.no_grad(), eval_mode(list(self.graph.mappers.values())):
                outputs = self.graph.evaluate([path], {path.start: inputs.to(self.device)})[path].cpu()
            slug = "-".join((path.start, *path.mappers))
            written.append(self.graph.domains[path.start].show_pairs(inputs, outputs, self._path(f"cycle-{slug}", step)))
        return written

    def _path(self, stem: str, step: int) -> Path:
        return self.directory / f"{stem}-step{step:09d}.png"

