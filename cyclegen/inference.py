"""Using a trained model: choosing its encoder and decoder, encoding and interpolating."""

from __future__ import annotations

import torch
from torch import Tensor

from cyclegen.errors import CycleGenError
from cyclegen.evaluate import map_in_chunks
from cyclegen.graph import Graph


def pick_mapper(graph: Graph, given: str | None, role: str, source_kind: str, target_kind: str) -> str:
    """The mapper named by `given`, or the only one from a `source_kind` to a `target_kind` domain."""
    if given is not None:
        if given not in graph.mappers:
            raise CycleGenError(f"--{role} {given!r}: the run has mappers {', '.join(graph.mappers)}")
        return given
    candidates = [
        name
        for name, (source, target) in graph.mapper_ends.items()
        if graph.domains[source].kind == source_kind and graph.domains[target].kind == target_kind
    ]
    if len(candidates) != 1:
        found = ", ".join(candidates) if candidates else f"none maps {source_kind} -> {target_kind}"
        raise CycleGenError(f"choose the {role} with --{role} (candidates: {found}; mappers: {', '.join(graph.mappers)})")
    return candidates[0]


def encoder_of(graph: Graph, given: str | None) -> str:
    return pick_mapper(graph, given, "encoder", "data", "prior")


def decoder_of(graph: Graph, given: str | None) -> str:
    return pick_mapper(graph, given, "decoder", "prior", "data")


def lerp(a: Tensor, b: Tensor, steps: int) -> Tensor:
    """`steps` points on the line from each row of `a` to the same row of `b`, endpoints included.

    Returns (len(a) * steps, ...) ordered row by row.
    """
    t = torch.linspace(0.0, 1.0, steps).view(1, steps, *([1] * (a.dim() - 1)))
    return ((1 - t) * a.unsqueeze(1) + t * b.unsqueeze(1)).flatten(0, 1)


def interpolate_images(
    graph: Graph, encoder: str, decoder: str, starts: Tensor, ends: Tensor, steps: int, device: torch.device
) -> Tensor:
    """Rows of [start, decoded points between the two encodings, end] (the paper's Figure 1)."""
    codes_a = map_in_chunks(graph.mappers[encoder], starts, device)
    codes_b = map_in_chunks(graph.mappers[encoder], ends, device)
    decoded = map_in_chunks(graph.mappers[decoder], lerp(codes_a, codes_b, steps), device)
    decoded = decoded.view(len(starts), steps, *decoded.shape[1:])
    return torch.cat([starts.unsqueeze(1), decoded, ends.unsqueeze(1)], 1).flatten(0, 1)


def interpolate_codes(graph: Graph, decoder: str, starts: Tensor, ends: Tensor, steps: int, device: torch.device) -> Tensor:
    """Rows of decoded points on the line between pairs of latent codes."""
    return map_in_chunks(graph.mappers[decoder], lerp(starts, ends, steps), device)
