"""The `cyclegen` command line."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Optional, TypeVar

import numpy as np
import torch
import typer
from rich.console import Console
from rich.table import Table
from safetensors.torch import save_file

from cyclegen import distributed
from cyclegen.checkpoint import latest_checkpoint, load_weights
from cyclegen.errors import CycleGenError
from cyclegen.evaluate import evaluate, map_in_chunks, metrics_json
from cyclegen.experiment import Experiment, open_recipe, open_run
from cyclegen.graph import domain_generator
from cyclegen.inference import decoder_of, encoder_of, interpolate_codes, interpolate_images, pick_mapper
from cyclegen.plugins import load_plugins
from cyclegen.run import Run

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, help=__doc__)
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])


def friendly(command: F) -> F:
    """Print a user error as one clear message (no traceback) and exit with status 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except CycleGenError as exc:
            err.print(f"[red]error:[/red] {exc}", highlight=False)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


SetOption = Annotated[
    Optional[list[str]],
    typer.Option("--set", help="Override a recipe field, e.g. --set train.steps=500 (repeatable)."),
]
CheckpointOption = Annotated[
    Optional[Path], typer.Option("--checkpoint", help="A checkpoint file instead of the run's latest.")
]


@app.command()
@friendly
def run(
    recipe: Annotated[Path, typer.Argument(help="Recipe TOML file.")],
    out: Annotated[Optional[Path], typer.Option(help="Run directory (default runs/<recipe name>).")] = None,
    set_: SetOption = None,
    resume: Annotated[bool, typer.Option(help="Require a checkpoint in the run directory to resume from.")] = False,
) -> None:
    """Train a recipe. Re-running into an existing run directory resumes it exactly.

    Under torchrun (`torchrun --nproc-per-node N -m cyclegen run RECIPE`) every process trains
    its share of each global batch and rank 0 writes the run directory.
    """
    ranks = distributed.from_environment()
    exp = open_recipe(recipe, set_ or [])
    exp.device = distributed.local_device(exp.device, ranks)
    run_dir = out or Path("runs") / exp.recipe.name
    distributed.start(ranks, exp.device)
    try:
        training = Run(exp, run_dir, console, ranks)
        training.prepare(require_checkpoint=resume)
        result = training.train()
    finally:
        distributed.stop()
    if not ranks.is_main:
        raise typer.Exit(130 if result.interrupted else 0)
    if result.interrupted:
        console.print(
            f"stopped at step {result.step}; checkpoint saved in {run_dir / 'checkpoints'}. "
            f"Resume with: cyclegen run {recipe} --out {run_dir}",
            highlight=False,
        )
        raise typer.Exit(130)
    console.print(f"trained {result.step} steps into {run_dir}", highlight=False)
    for path in result.samples:
        console.print(f"  samples: {path}", highlight=False)
    console.print(f"  metrics: {run_dir / 'metrics.jsonl'} (training), {run_dir / 'eval.json'} (evaluation)", highlight=False)
    _print_metrics(result.metrics)


@app.command()
@friendly
def validate(recipe: Annotated[Path, typer.Argument(help="Recipe TOML file.")], set_: SetOption = None) -> None:
    """Check a recipe without training; print its graph and parameter counts."""
    exp = open_recipe(recipe, set_ or [])
    _print_graph(exp)
    console.print(f"[green]recipe {recipe} is valid[/green]")


@app.command()
@friendly
def plugins() -> None:
    """List installed plugins, their versions and what each provides."""
    loaded = load_plugins()
    table = Table("plugin", "version", "kind", "name", "options")
    for info in loaded.infos:
        first = True
        for kind, components in loaded.registry.components.items():
            for name, component in sorted(components.items()):
                if component.plugin != info.name:
                    continue
                options = ", ".join(component.options())
                table.add_row(info.name if first else "", info.version if first else "", kind, name, options)
                first = False
        if first:
            table.add_row(info.name, info.version, "", "(nothing registered)", "")
    console.print(table)


@app.command()
@friendly
def sample(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    n: Annotated[int, typer.Option("-n", help="Number of samples.")] = 64,
    out: Annotated[Path, typer.Option(help="PNG (through the domain's display), .npy or .safetensors.")] = Path("samples.png"),
    mapper: Annotated[Optional[str], typer.Option(help="Generating mapper (when there are several).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the prior samples.")] = 0,
    checkpoint: CheckpointOption = None,
) -> None:
    """Draw samples from a trained run."""
    exp = _trained(run_dir, checkpoint)
    name = pick_mapper(exp.graph, mapper, "mapper", "prior", "data")
    source, target = exp.graph.mapper_ends[name]
    inputs = exp.graph.domains[source].batch(n, domain_generator(seed, source, "sample"), "test")
    outputs = map_in_chunks(exp.graph.mappers[name], inputs, exp.device)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".npy":
        np.save(out, outputs.numpy())
    elif out.suffix == ".safetensors":
        save_file({"samples": outputs.contiguous()}, str(out))
    else:
        with displaying():
            exp.graph.domains[target].show(outputs, out)
    console.print(f"wrote {n} samples of {name} ({source} -> {target}) to {out}", highlight=False)


@app.command("eval")
@friendly
def eval_(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    samples: Annotated[Optional[int], typer.Option(help="Samples per metric (default: the recipe's eval.samples).")] = None,
    checkpoint: CheckpointOption = None,
) -> None:
    """Run the metrics that the recipe's domains offer on a trained run."""
    exp = _trained(run_dir, checkpoint)
    metrics = evaluate(
        exp.graph,
        exp.plugins.registry,
        exp.recipe.eval.metrics,
        samples or exp.recipe.eval.samples,
        exp.recipe.seed,
        exp.device,
    )
    if as_json:
        print(metrics_json(metrics))
    else:
        _print_metrics(metrics)


ImagesArgument = Annotated[list[Path], typer.Argument(help="Files, folders or .zip archives of inputs.")]
EncoderOption = Annotated[Optional[str], typer.Option(help="Encoding mapper (default: the only data -> prior mapper).")]
DecoderOption = Annotated[Optional[str], typer.Option(help="Decoding mapper (default: the only prior -> data mapper).")]


@app.command()
@friendly
def encode(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    inputs: ImagesArgument,
    out: Annotated[Path, typer.Option(help="Output .safetensors file.")] = Path("latents.safetensors"),
    encoder: EncoderOption = None,
    checkpoint: CheckpointOption = None,
) -> None:
    """Encode inputs to latent codes, saved as a safetensors file (tensor "latents")."""
    exp = _trained(run_dir, checkpoint)
    name = encoder_of(exp.graph, encoder)
    batch = _read(exp, name, inputs)
    codes = map_in_chunks(exp.graph.mappers[name], batch, exp.device)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({"latents": codes.contiguous()}, str(out), metadata={"inputs": json.dumps([str(p) for p in inputs])})
    console.print(f"wrote {len(codes)} latent codes of shape {tuple(codes.shape[1:])} to {out}", highlight=False)


@app.command()
@friendly
def reconstruct(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    inputs: ImagesArgument,
    out: Annotated[Path, typer.Option(help="Output PNG: (input, reconstruction) pairs.")] = Path("reconstructions.png"),
    encoder: EncoderOption = None,
    decoder: DecoderOption = None,
    checkpoint: CheckpointOption = None,
) -> None:
    """Encode and decode inputs; write (input, reconstruction) pairs side by side."""
    exp = _trained(run_dir, checkpoint)
    enc, dec = encoder_of(exp.graph, encoder), decoder_of(exp.graph, decoder)
    batch = _read(exp, enc, inputs)
    codes = map_in_chunks(exp.graph.mappers[enc], batch, exp.device)
    outputs = map_in_chunks(exp.graph.mappers[dec], codes, exp.device)
    with displaying():
        exp.graph.domains[exp.graph.mapper_ends[enc][0]].show_pairs(batch, outputs, out)
    console.print(f"wrote {len(batch)} reconstructions to {out}", highlight=False)


@app.command()
@friendly
def translate(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    inputs: ImagesArgument,
    mapper: Annotated[Optional[str], typer.Option(help="Translating mapper (default: the only data -> data mapper).")] = None,
    out: Annotated[Path, typer.Option(help="Output PNG: (input, translation) pairs.")] = Path("translations.png"),
    limit: Annotated[Optional[int], typer.Option(help="Translate at most this many inputs.")] = None,
    checkpoint: CheckpointOption = None,
) -> None:
    """Translate inputs from one data domain to another (CycleGAN); write (input, output) pairs."""
    exp = _trained(run_dir, checkpoint)
    name = pick_mapper(exp.graph, mapper, "mapper", "data", "data")
    batch = _read(exp, name, inputs, limit)
    outputs = map_in_chunks(exp.graph.mappers[name], batch, exp.device)
    source, target = exp.graph.mapper_ends[name]
    with displaying():
        exp.graph.domains[target].show_pairs(batch, outputs, out)
    console.print(f"wrote {len(batch)} translations by {name} ({source} -> {target}) to {out}", highlight=False)


@app.command()
@friendly
def interpolate(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    inputs: Annotated[Optional[list[Path]], typer.Argument(help="Two or more images (or a folder/zip): rows between consecutive ones.")] = None,
    steps: Annotated[int, typer.Option(help="Decoded points per row, endpoints included.")] = 7,
    rows: Annotated[int, typer.Option(help="At most this many rows.")] = 9,
    random: Annotated[bool, typer.Option("--random", help="Between random latent codes instead of encoded inputs.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the random latent codes.")] = 0,
    out: Annotated[Path, typer.Option(help="Output PNG.")] = Path("interpolation.png"),
    encoder: EncoderOption = None,
    decoder: DecoderOption = None,
    checkpoint: CheckpointOption = None,
) -> None:
    """Decode points on the line between two latent codes (the paper's Figure 1).

    With images, each row is [image i, decoded points between E(image i) and E(image i+1),
    image i+1]; with --random, rows between pairs of random prior samples.
    """
    if steps < 2 or rows < 1:
        raise CycleGenError("--steps must be at least 2 and --rows at least 1")
    exp = _trained(run_dir, checkpoint)
    dec = decoder_of(exp.graph, decoder)
    prior, data = exp.graph.mapper_ends[dec]
    if random:
        generator = domain_generator(seed, prior, "interpolate")
        starts, ends = (exp.graph.domains[prior].batch(rows, generator, "test") for _ in range(2))
        grid = interpolate_codes(exp.graph, dec, starts, ends, steps, exp.device)
        columns = steps
    else:
        enc = encoder_of(exp.graph, encoder)
        batch = _read(exp, enc, inputs or [], limit=rows + 1)
        if len(batch) < 2:
            raise CycleGenError("interpolate needs at least two images (or --random)")
        count = min(rows, len(batch) - 1)
        grid = interpolate_images(exp.graph, enc, dec, batch[:count], batch[1 : count + 1], steps, exp.device)
        columns = steps + 2
    with displaying():
        exp.graph.domains[data].show(grid, out, columns=columns)
    console.print(f"wrote {len(grid) // columns} interpolation row(s) to {out}", highlight=False)


@contextmanager
def displaying() -> Iterator[None]:
    """A domain without pictures (a plugin need not draw) is a user error, not a traceback."""
    try:
        yield
    except NotImplementedError as exc:
        raise CycleGenError(f"{exc}; `cyclegen sample` can write raw tensors (--out x.npy or x.safetensors)") from None


def _read(exp: Experiment, mapper: str, inputs: list[Path], limit: int | None = None) -> torch.Tensor:
    """Inputs read and preprocessed by the source domain of `mapper`."""
    domain = exp.graph.domains[exp.graph.mapper_ends[mapper][0]]
    if not inputs:
        raise CycleGenError("give at least one input file, folder or .zip")
    try:
        return domain.read(inputs, limit)
    except (ValueError, NotImplementedError) as exc:
        raise CycleGenError(str(exc)) from None


def _trained(run_dir: Path, checkpoint: Optional[Path]) -> Experiment:
    exp = open_run(run_dir)
    found = latest_checkpoint(run_dir / "checkpoints", checkpoint)
    if found is None:
        raise CycleGenError(f"{run_dir} has no readable checkpoint yet; train it with cyclegen run")
    load_weights(exp.graph.networks, found)
    exp.graph.to(exp.device)
    return exp


def _print_graph(exp: Experiment) -> None:
    graph, recipe = exp.graph, exp.recipe
    table = Table("", "name", "type", "maps / judges", "shape / params", title=f"recipe {recipe.name!r}")
    for name, domain in graph.domains.items():
        table.add_row("domain", name, recipe.domains[name].type, domain.kind, str(domain.shape))
    for name, mapper in graph.mappers.items():
        source, target = graph.mapper_ends[name]
        table.add_row("mapper", name, recipe.mappers[name].type, f"{source} -> {target}", f"{_count(mapper):,}")
    for name, critic in graph.critics.items():
        table.add_row("critic", name, recipe.critics[name].type, graph.critic_domains[name], f"{_count(critic):,}")
    console.print(table)
    penalty = recipe.adversarial.penalty
    losses = recipe.adversarial.loss + (f", penalty: {penalty.type}" if penalty else "")
    terms = Table("term", "weight", title=f"terms (adversarial loss: {losses})")
    for term in graph.terms:
        terms.add_row(term.label, f"{term.weight:g}")
    console.print(terms)
    s, train = recipe.schedule, recipe.train
    console.print(
        f"schedule: {s.critic_steps or graph.adversarial.preferred_critic_steps} critic round(s) "
        f"({s.critic_batches} batches, fakes in {s.fakes} mode), {s.mapper_steps} mapper update(s) per step; "
        f"{train.steps} steps at batch {train.batch_size}, precision {train.precision}, "
        f"channels_last {'on' if train.channels_last else 'off'}, compile {'on' if train.compile else 'off'}",
        highlight=False,
    )
    histories = [f"{name} keeps {spec.history}" for name, spec in recipe.critics.items() if spec.history]
    if histories:
        console.print(f"sample histories: {', '.join(histories)} past fakes per path", highlight=False)
    for name, spec in recipe.optim.items():
        schedule = spec.lr_schedule
        if schedule.type != "constant":
            end = schedule.decay_end or recipe.train.steps
            console.print(
                f"optim.{name}: lr {spec.lr:g} until step {schedule.decay_start}, then linear decay to 0 at step {end}",
                highlight=False,
            )


def _count(module: object) -> int:
    return sum(p.numel() for p in module.parameters())  # type: ignore[attr-defined]


def _print_metrics(metrics: dict[str, dict[str, float]]) -> None:
    table = Table("evaluated", "metric", "value")
    for section, values in metrics.items():
        for i, (key, value) in enumerate(values.items()):
            table.add_row(section if i == 0 else "", key, f"{value:.4g}")
    console.print(table)


def main() -> None:
    app()
