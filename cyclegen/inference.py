"""Using a trained model: sampling, encoding, reconstructing, translating and interpolating.

The tensor functions (`network`, `apply`, `draw`, `reconstruction`, `interpolation`) hold the
logic, shared by the Python API (cyclegen.trained) and the commands; the file functions below
them read the user's inputs, call them and write what they made, through the domains' own
display for pictures. The command line only parses and reports.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from torch import Tensor, nn

from cyclegen.errors import CycleGenError
from cyclegen.evaluate import map_in_chunks
from cyclegen.experiment import Experiment
from cyclegen.graph import Graph
from cyclegen.interfaces import Domain
from cyclegen.streams import domain_generator

#: Raw-tensor outputs of `sample`; any other suffix is a picture through the domain's display.
RAW_SUFFIXES = (".npy", ".safetensors")


def pick_mapper(
    graph: Graph, given: str | None, role: str, source_kind: str, target_kind: str, option: str | None = None
) -> str:
    """The mapper named by `given`, or the only one from a `source_kind` to a `target_kind` domain.

    `option` is how the user names the choice in the messages (default the flag `--<role>`).
    """
    option = option or f"--{role}"
    if given is not None:
        if given not in graph.mappers:
            raise CycleGenError(f"unknown {role} {given!r}: the run has mappers {', '.join(graph.mappers)}")
        return given
    candidates = [
        name
        for name, (source, target) in graph.mapper_ends.items()
        if graph.domains[source].kind == source_kind and graph.domains[target].kind == target_kind
    ]
    if not candidates:
        ends = ", ".join(f"{name}: {source} -> {target}" for name, (source, target) in graph.mapper_ends.items())
        raise CycleGenError(f"this run has no mapper from a {source_kind} to a {target_kind} domain (its mappers: {ends})")
    if len(candidates) > 1:
        raise CycleGenError(
            f"choose the {role} with {option} (candidates: {', '.join(candidates)}; mappers: {', '.join(graph.mappers)})"
        )
    return candidates[0]


def encoder_of(graph: Graph, given: str | None, option: str | None = None) -> str:
    return pick_mapper(graph, given, "encoder", "data", "prior", option)


def decoder_of(graph: Graph, given: str | None, option: str | None = None) -> str:
    return pick_mapper(graph, given, "decoder", "prior", "data", option)


def generator_of(graph: Graph, given: str | None, option: str | None = None) -> str:
    return pick_mapper(graph, given, "mapper", "prior", "data", option)


def translator_of(graph: Graph, given: str | None, option: str | None = None) -> str:
    return pick_mapper(graph, given, "mapper", "data", "data", option)


# -- tensors in, tensors out ----------------------------------------------------------------


def network(exp: Experiment, name: str) -> nn.Module:
    """The weights inference runs mapper `name` with: its `[ema]` average where the run keeps
    one, unless the experiment was opened with `raw_weights` (see `Experiment.inference_graph`)."""
    return exp.inference_graph().mappers[name]


def apply(exp: Experiment, name: str, inputs: Tensor) -> Tensor:
    """`inputs` through mapper `name` in inference mode (eval, no gradients); CPU outputs."""
    return map_in_chunks(network(exp, name), inputs, exp.device)


def draw(exp: Experiment, n: int, name: str, seed: int = 0) -> Tensor:
    """`n` outputs of the generating mapper `name`, from the prior stream of `seed`, so the same
    seed draws the same samples in `cyclegen sample` and in Python."""
    if n < 1:
        raise CycleGenError(f"the number of samples must be at least 1, got {n}")
    source = exp.graph.mapper_ends[name][0]
    inputs = exp.graph.domains[source].batch(n, domain_generator(seed, source, "sample"), "test")
    return apply(exp, name, inputs)


def reconstruction(exp: Experiment, encoder: str, decoder: str, batch: Tensor) -> Tensor:
    """`batch` encoded, then decoded."""
    return apply(exp, decoder, apply(exp, encoder, batch))


def interpolation(exp: Experiment, encoder: str, decoder: str, starts: Tensor, ends: Tensor, steps: int) -> Tensor:
    """(len(starts), steps, ...): decoded points on the line from each start's code to the same
    row's end's code, endpoints included."""
    if steps < 2:
        raise CycleGenError(f"steps must be at least 2 (the two endpoints), got {steps}")
    codes = lerp(apply(exp, encoder, starts), apply(exp, encoder, ends), steps)
    decoded = apply(exp, decoder, codes)
    return decoded.view(len(starts), steps, *decoded.shape[1:])


def lerp(a: Tensor, b: Tensor, steps: int) -> Tensor:
    """`steps` points on the line from each row of `a` to the same row of `b`, endpoints included.

    Returns (len(a) * steps, ...) ordered row by row.
    """
    t = torch.linspace(0.0, 1.0, steps).view(1, steps, *([1] * (a.dim() - 1)))
    return ((1 - t) * a.unsqueeze(1) + t * b.unsqueeze(1)).flatten(0, 1)


# -- files in, files out (the commands) ---------------------------------------------------------


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
    name = generator_of(exp.graph, mapper)
    outputs = draw(exp, n, name, seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix not in RAW_SUFFIXES:
        shown_by(exp.graph.domains[exp.graph.mapper_ends[name][1]]).show(outputs, out)
    elif out.suffix == ".npy":
        np.save(out, outputs.numpy())
    else:
        save_file({"samples": outputs.contiguous()}, str(out))
    return name


def encode(exp: Experiment, inputs: list[Path], out: Path, encoder: str | None = None) -> Tensor:
    """Latent codes of `inputs`, saved to `out` as safetensors (tensor "latents", inputs in metadata)."""
    name = encoder_of(exp.graph, encoder)
    codes = apply(exp, name, read_inputs(exp, name, inputs))
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
    outputs = reconstruction(exp, enc, dec, batch)
    shown_by(graph.domains[graph.mapper_ends[enc][0]]).show_pairs(batch, outputs, out)
    return len(batch)


def translate(
    exp: Experiment, inputs: list[Path], out: Path, mapper: str | None = None, limit: int | None = None
) -> tuple[str, int]:
    """(input, translation) pairs in `out`, by the data -> data mapper; returns it and the count."""
    graph = exp.graph
    name = translator_of(graph, mapper)
    batch = read_inputs(exp, name, inputs, limit)
    outputs = apply(exp, name, batch)
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
        grid = apply(exp, dec, lerp(starts, ends, steps))
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


def interpolate_images(exp: Experiment, encoder: str, decoder: str, starts: Tensor, ends: Tensor, steps: int) -> Tensor:
    """Rows of [start, decoded points between the two encodings, end], flattened for a grid."""
    decoded = interpolation(exp, encoder, decoder, starts, ends, steps)
    return torch.cat([starts.unsqueeze(1), decoded, ends.unsqueeze(1)], 1).flatten(0, 1)
