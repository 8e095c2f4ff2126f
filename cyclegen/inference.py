"""Using a trained model: sampling, encoding, reconstructing, translating and interpolating.

Each function takes an experiment opened with `open_trained` and writes what it made, through
the domains' own display for pictures; the command line only parses and reports.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from torch import Tensor

from cyclegen.errors import CycleGenError
from cyclegen.evaluate import map_in_chunks
from cyclegen.experiment import Experiment
from cyclegen.graph import Graph
from cyclegen.interfaces import Domain
from cyclegen.streams import domain_generator

#: Raw-tensor outputs of `sample`; any other suffix is a picture through the domain's display.
RAW_SUFFIXES = (".npy", ".safetensors")


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


def read_inputs(exp: Experiment, mapper: str, inputs: list[Path], limit: int | None = None) -> Tensor:
    """User files read and preprocessed by the source domain of `mapper`, as in training."""
    domain = exp.graph.domains[exp.graph.mapper_ends[mapper][0]]
    if not inputs:
        raise CycleGenError("give at least one input file, folder or .zip")
    try:
        return domain.read(inputs, limit)
    except (ValueError, NotImplementedError) as exc:
        raise CycleGenError(str(exc)) from None


def shown_by(domain: Domain) -> Domain:
    """`domain`, after checking it can draw pictures (a plugin's domain need not)."""
    if not domain.can_show:
        raise CycleGenError(
            f"domain {domain.name!r} cannot display samples; `cyclegen sample` can write raw tensors "
            "(--out x.npy or x.safetensors)"
        )
    return domain


def sample(exp: Experiment, n: int, out: Path, mapper: str | None = None, seed: int = 0) -> str:
    """`n` samples of the generating mapper (returned) to `out`: a picture, .npy or .safetensors."""
    graph = exp.graph
    name = pick_mapper(graph, mapper, "mapper", "prior", "data")
    source, target = graph.mapper_ends[name]
    inputs = graph.domains[source].batch(n, domain_generator(seed, source, "sample"), "test")
    outputs = map_in_chunks(graph.mappers[name], inputs, exp.device)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix not in RAW_SUFFIXES:
        shown_by(graph.domains[target]).show(outputs, out)
    elif out.suffix == ".npy":
        np.save(out, outputs.numpy())
    else:
        save_file({"samples": outputs.contiguous()}, str(out))
    return name


def encode(exp: Experiment, inputs: list[Path], out: Path, encoder: str | None = None) -> Tensor:
    """Latent codes of `inputs`, saved to `out` as safetensors (tensor "latents", inputs in metadata)."""
    name = encoder_of(exp.graph, encoder)
    codes = map_in_chunks(exp.graph.mappers[name], read_inputs(exp, name, inputs), exp.device)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({"latents": codes.contiguous()}, str(out), metadata={"inputs": json.dumps([str(p) for p in inputs])})
    return codes


def reconstruct(
    exp: Experiment, inputs: list[Path], out: Path, encoder: str | None = None, decoder: str | None = None
) -> int:
    """(input, reconstruction) pairs side by side in `out`; returns how many."""
    graph = exp.graph
    enc, dec = encoder_of(graph, encoder), decoder_of(graph, decoder)
    batch = read_inputs(exp, enc, inputs)
    codes = map_in_chunks(graph.mappers[enc], batch, exp.device)
    outputs = map_in_chunks(graph.mappers[dec], codes, exp.device)
    shown_by(graph.domains[graph.mapper_ends[enc][0]]).show_pairs(batch, outputs, out)
    return len(batch)


def translate(
    exp: Experiment, inputs: list[Path], out: Path, mapper: str | None = None, limit: int | None = None
) -> tuple[str, int]:
    """(input, translation) pairs in `out`, by the data -> data mapper; returns it and the count."""
    graph = exp.graph
    name = pick_mapper(graph, mapper, "mapper", "data", "data")
    batch = read_inputs(exp, name, inputs, limit)
    outputs = map_in_chunks(graph.mappers[name], batch, exp.device)
    shown_by(graph.domains[graph.mapper_ends[name][1]]).show_pairs(batch, outputs, out)
    return name, len(batch)


def interpolate(
    exp: Experiment,
    inputs: list[Path],
    out: Path,
    steps: int = 7,
    rows: int = 9,
    random: bool = False,
    seed: int = 0,
    encoder: str | None = None,
    decoder: str | None = None,
) -> int:
    """Rows of decoded points between latent codes in `out` (the paper's Figure 1); returns the rows.

    With inputs, row i is [input i, points between E(input i) and E(input i+1), input i+1];
    with `random`, points between pairs of prior samples.
    """
    if steps < 2 or rows < 1:
        raise CycleGenError("--steps must be at least 2 and --rows at least 1")
    graph = exp.graph
    dec = decoder_of(graph, decoder)
    prior, data = graph.mapper_ends[dec]
    if random:
        generator = domain_generator(seed, prior, "interpolate")
        starts, ends = (graph.domains[prior].batch(rows, generator, "test") for _ in range(2))
        grid = map_in_chunks(graph.mappers[dec], lerp(starts, ends, steps), exp.device)
        columns = steps
    else:
        enc = encoder_of(graph, encoder)
        batch = read_inputs(exp, enc, inputs, limit=rows + 1)
        if len(batch) < 2:
            raise CycleGenError("interpolate needs at least two images (or --random)")
        count = min(rows, len(batch) - 1)
        grid = interpolate_images(exp, enc, dec, batch[:count], batch[1 : count + 1], steps)
        columns = steps + 2
    shown_by(graph.domains[data]).show(grid, out, columns=columns)
    return len(grid) // columns


def lerp(a: Tensor, b: Tensor, steps: int) -> Tensor:
    """`steps` points on the line from each row of `a` to the same row of `b`, endpoints included.

    Returns (len(a) * steps, ...) ordered row by row.
    """
    t = torch.linspace(0.0, 1.0, steps).view(1, steps, *([1] * (a.dim() - 1)))
    return ((1 - t) * a.unsqueeze(1) + t * b.unsqueeze(1)).flatten(0, 1)


def interpolate_images(exp: Experiment, encoder: str, decoder: str, starts: Tensor, ends: Tensor, steps: int) -> Tensor:
    """Rows of [start, decoded points between the two encodings, end]."""
    mappers, device = exp.graph.mappers, exp.device
    codes_a = map_in_chunks(mappers[encoder], starts, device)
    codes_b = map_in_chunks(mappers[encoder], ends, device)
    decoded = map_in_chunks(mappers[decoder], lerp(codes_a, codes_b, steps), device)
    decoded = decoded.view(len(starts), steps, *decoded.shape[1:])
    return torch.cat([starts.unsqueeze(1), decoded, ends.unsqueeze(1)], 1).flatten(0, 1)
