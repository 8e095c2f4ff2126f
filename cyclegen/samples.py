"""Sample pictures written during training: fixed and fresh noise, translations and cycles of held-out data."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from cyclegen.evaluate import map_in_chunks, samplers, translators
from cyclegen.graph import Graph, Route
from cyclegen.interfaces import call_with_title
from cyclegen.runtime import eval_mode
from cyclegen.streams import domain_generator


class SampleWriter:
    """Shows each generating mapper's outputs, each translation and each data cycle, through the domains' display.

    Mappers with an `[ema]` average are shown by their average, as samples and evaluation
    after training run them, and captioned "EMA".

    Fixed inputs are drawn once (the same at every step, so grids can be compared over
    time); fresh inputs come from a stream seeded by the step, so writing samples never
    touches the training streams. Each picture is captioned with what it shows and the step,
    for domains whose `show` takes a title (`Domain.show`).
    """

    def __init__(self, graph: Graph, seed: int, count: int, device: torch.device, directory: Path) -> None:
        self.graph, self.seed, self.count, self.device, self.directory = graph.averaged(), seed, count, device, directory
        self.averaged = set(graph.averages.names()) if graph.averages else set()
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
        """Write every picture of `step`, each captioned with what it shows."""
        written = []
        for name, inputs in self.fixed.items():
            source, target = self.graph.mapper_ends[name]
            fresh = self._draw(source, "fresh", seed=self.seed * 1_000_003 + step)
            show = self.graph.domains[target].show
            for label, noise, batch in (("fixed", "fixed", inputs), ("random", "fresh", fresh)):
                outputs = map_in_chunks(self.graph.mappers[name], batch, self.device)
                shown = f"{name}({source}){self._ema(name)}, {noise} noise"
                written.append(self._show(show, f"{name}-{label}", step, shown, outputs))
        for name, inputs in self.translations.items():
            source, target = self.graph.mapper_ends[name]
            outputs = map_in_chunks(self.graph.mappers[name], inputs, self.device)
            caption = f"{name}{self._ema(name)} ({source} -> {target}): input | translation"
            written.append(self._show(self.graph.domains[target].show_pairs, f"{name}-translation", step, caption,
                                      inputs, outputs))
        for path, inputs in self.cycles.items():
            with torch.no_grad(), eval_mode(list(self.graph.mappers.values())):
                outputs = self.graph.evaluate([path], {path.start: inputs.to(self.device)})[path].cpu()
            slug = "-".join((path.start, *path.mappers))
            averaged = " (EMA)" if self.averaged & set(path.mappers) else ""
            written.append(self._show(self.graph.domains[path.start].show_pairs, f"cycle-{slug}", step,
                                      f"{path}{averaged}: input | reconstruction", inputs, outputs))
        return written

    def _ema(self, name: str) -> str:
        return " EMA" if name in self.averaged else ""

    def _show(self, method: Callable[..., Path], stem: str, step: int, caption: str, *batches: Tensor) -> Path:
        """One picture through a domain's `show` or `show_pairs`, captioned with `caption` and the step."""
        at = f"·\u00a0step\u00a0{step:,}"  # no-break spaces: a domain that wraps the caption keeps these whole
        return call_with_title(method, *batches, self._path(stem, step), title=f"{caption} {at}")

    def _path(self, stem: str, step: int) -> Path:
        return self.directory / f"{stem}-step{step:09d}.png"
