"""A trained run as a Python object: `cyclegen.load(run_dir)` and tensors in, tensors out.

The same tensor functions as the commands (cyclegen.inference) do the work, so a notebook
gets what `cyclegen sample`, `encode`, `reconstruct`, `interpolate` and `translate` would
compute, without files in between.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import Tensor

from cyclegen import inference
from cyclegen.errors import CycleGenError
from cyclegen.experiment import CHECKPOINTS, Experiment, named_checkpoint, open_trained, usable_device
from cyclegen.interfaces import Domain
from cyclegen.recipe import Recipe

PathLike = str | os.PathLike[str]
#: What the methods that take domain samples accept: a tensor of samples, or files, folders
#: and .zip archives read by the domain as the commands read them.
Inputs = Tensor | PathLike | Sequence[PathLike]


def load(
    run_dir: PathLike,
    checkpoint: PathLike | None = None,
    *,
    trust_plugins: bool = False,
    device: str | torch.device | None = None,
    raw_weights: bool = False,
) -> TrainedModel:
    """The run in `run_dir` with the weights of `checkpoint` (default: its latest readable one;
    "best": the best checkpoint that `train.best` keeps).

    `trust_plugins` allows the local plugin files the run's recipe names (they are code, run
    as you); `device` overrides the recipe's `train.device` ("cpu", "cuda", "auto", ...).
    Mappers the recipe averages (`[ema]`) run as their averages unless `raw_weights`.
    """
    chosen = named_checkpoint(Path(run_dir), None if checkpoint is None else Path(checkpoint))
    if chosen is not None and not chosen.is_file():
        raise CycleGenError(
            f"checkpoint {checkpoint} is not a file; a run's checkpoints are in {Path(run_dir) / CHECKPOINTS}, "
            'or leave checkpoint out for the latest ("best" for the best)'
        )
    target = None if device is None else usable_device(device)
    exp = open_trained(Path(run_dir), chosen, trust_plugins=trust_plugins, device=target, raw_weights=raw_weights)
    return TrainedModel(exp, Path(run_dir))


class TrainedModel:
    """A trained run's mappers, evaluated in eval mode without gradients.

    Every method returns CPU tensors in the domains' own coordinates (images in [-1, 1], as
    the networks see them). A tensor argument is a batch `(N, *shape)` of its domain's samples;
    a single sample `shape` gives a result without the batch dimension, as torch modules do.
    Where a method has several mappers to choose from, name one (`encoder=`, `decoder=`,
    `mapper=`); with one candidate it is found.
    """

    def __init__(self, experiment: Experiment, run_dir: Path) -> None:
        assert experiment.checkpoint is not None, "open the experiment with open_trained"
        self._exp = experiment
        self._run_dir = run_dir
        experiment.graph.mappers.eval()
        experiment.graph.critics.eval()

    def __repr__(self) -> str:
        ends = ", ".join(f"{name}: {source} -> {target}" for name, (source, target) in self.mappers.items())
        return f"TrainedModel({str(self._run_dir)!r}, step={self.step}, mappers={{{ends}}})"

    @property
    def step(self) -> int:
        """The training step of the loaded checkpoint."""
        return self._loaded[1]

    @property
    def checkpoint(self) -> Path:
        """The checkpoint file whose weights are loaded."""
        return self._loaded[0]

    @property
    def recipe(self) -> Recipe:
        """The run's validated recipe."""
        return self._exp.recipe

    @property
    def mappers(self) -> dict[str, tuple[str, str]]:
        """Each mapper's name and its (source, target) domains."""
        return dict(self._exp.graph.mapper_ends)

    @property
    def weights(self) -> str:
        """Which weights run: "EMA of G, E" (the recipe's `[ema]` averages) or "trained"."""
        return self._exp.weights_label()

    @property
    def device(self) -> torch.device:
        """Where the networks run (results still come back on the CPU)."""
        return self._exp.device

    @property
    def _loaded(self) -> tuple[Path, int]:
        assert self._exp.checkpoint is not None
        return self._exp.checkpoint

    def sample(self, n: int, *, seed: int = 0, mapper: str | None = None) -> Tensor:
        """`n` generated samples (n, *target shape): the draws of `cyclegen sample -n n --seed seed`."""
        with _about("sample"):
            name = inference.generator_of(self._exp.graph, mapper, "mapper=NAME")
            return inference.draw(self._exp, n, name, seed)

    def encode(self, inputs: Inputs, *, encoder: str | None = None) -> Tensor:
        """Latent codes of `inputs` (N, *code shape), as `cyclegen encode` saves them."""
        with _about("encode"):
            name = inference.encoder_of(self._exp.graph, encoder, "encoder=NAME")
            batch, single = self._inputs(inputs, name)
            return _unbatched(inference.apply(self._exp, name, batch), single)

    def decode(self, codes: Tensor, *, decoder: str | None = None) -> Tensor:
        """Samples decoded from latent `codes` (N, *data shape)."""
        with _about("decode"):
            name = inference.decoder_of(self._exp.graph, decoder, "decoder=NAME")
            if not isinstance(codes, Tensor):
                raise CycleGenError(f"give the codes as a tensor, not {type(codes).__name__}")
            batch, single = _samples(codes, self._source(name))
            return _unbatched(inference.apply(self._exp, name, batch), single)

    def reconstruct(self, inputs: Inputs, *, encoder: str | None = None, decoder: str | None = None) -> Tensor:
        """`decode(encode(inputs))`: the reconstructions `cyclegen reconstruct` shows beside the inputs."""
        with _about("reconstruct"):
            enc, dec = self._autoencoder(encoder, decoder)
            batch, single = self._inputs(inputs, enc)
            return _unbatched(inference.reconstruction(self._exp, enc, dec, batch), single)

    def interpolate(
        self, a: Inputs, b: Inputs, steps: int = 7, *, encoder: str | None = None, decoder: str | None = None
    ) -> Tensor:
        """Decoded points on the line between the codes of `a` and `b`, endpoints included.

        Returns (N, steps, *data shape) for batches of N pairs, or (steps, *data shape) for two
        single samples. Points 0 and steps-1 are `reconstruct(a)` and `reconstruct(b)`; the
        `cyclegen interpolate` rows put the inputs themselves on either side.
        """
        with _about("interpolate"):
            enc, dec = self._autoencoder(encoder, decoder)
            starts, single_a = self._inputs(a, enc)
            ends, single_b = self._inputs(b, enc)
            if len(starts) != len(ends):
                raise CycleGenError(f"a has {len(starts)} samples and b has {len(ends)}; give as many of each")
            return _unbatched(inference.interpolation(self._exp, enc, dec, starts, ends, steps), single_a and single_b)

    def translate(self, inputs: Inputs, *, mapper: str | None = None) -> Tensor:
        """`inputs` translated into another data domain (CycleGAN), as `cyclegen translate` does."""
        with _about("translate"):
            name = inference.translator_of(self._exp.graph, mapper, "mapper=NAME")
            batch, single = self._inputs(inputs, name)
            return _unbatched(inference.apply(self._exp, name, batch), single)

    def _autoencoder(self, encoder: str | None, decoder: str | None) -> tuple[str, str]:
        graph = self._exp.graph
        return inference.encoder_of(graph, encoder, "encoder=NAME"), inference.decoder_of(graph, decoder, "decoder=NAME")

    def _source(self, mapper: str) -> Domain:
        return self._exp.graph.domains[self._exp.graph.mapper_ends[mapper][0]]

    def _inputs(self, inputs: Inputs, mapper: str) -> tuple[Tensor, bool]:
        """A batch for `mapper` from a tensor or from files, and whether it was one sample."""
        if isinstance(inputs, Tensor):
            return _samples(inputs, self._source(mapper))
        paths = [inputs] if isinstance(inputs, (str, os.PathLike)) else inputs
        if not isinstance(paths, Sequence) or not all(isinstance(p, (str, os.PathLike)) for p in paths):
            raise CycleGenError(
                f"give a tensor of {self._source(mapper).name!r} samples, or a path or a list of paths "
                f"(files, folders, .zip archives), not {type(inputs).__name__}"
            )
        return inference.read_inputs(self._exp, mapper, [Path(p) for p in paths]), False


def _samples(samples: Tensor, domain: Domain) -> tuple[Tensor, bool]:
    """`samples` as a float batch of `domain`, checked; and whether it was one sample."""
    single = samples.dim() == len(domain.shape)
    batch = samples.unsqueeze(0) if single else samples
    if not batch.is_floating_point():
        raise CycleGenError(f"domain {domain.name!r} takes floating-point samples in its own coordinates, got {batch.dtype}")
    try:
        domain.validate(batch)
    except ValueError as exc:
        raise CycleGenError(str(exc)) from None
    if len(batch) == 0:
        raise CycleGenError("the batch is empty; give at least one sample")
    return batch.detach().float(), single


def _unbatched(outputs: Tensor, single: bool) -> Tensor:
    return outputs[0] if single else outputs


@contextmanager
def _about(method: str) -> Iterator[None]:
    """Name the method in the user errors raised within, so a notebook cell says what failed."""
    try:
        yield
    except CycleGenError as exc:
        raise CycleGenError(f"{method}: {exc}") from None
