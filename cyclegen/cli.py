"""The `cyclegen` command line.

Commands import the engine (and so torch) only when they run, so that `--help`, `--version`
and the first line of `run` answer at once, even on a busy machine.
"""

from __future__ import annotations

import functools
import signal
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional, TypeVar

import typer
from rich.console import Console

from cyclegen import __version__
from cyclegen.errors import CycleGenError, Interrupted, out_of_memory_message

if TYPE_CHECKING:
    from cyclegen.experiment import Experiment

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Train cycle-consistent generative models from recipes, and use the trained runs.",
)
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])


def _print_version(value: bool) -> None:
    if value:
        console.print(f"cyclegen {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Train cycle-consistent generative models from recipes, and use the trained runs."""


def friendly(command: F) -> F:
    """Print a user error as one clear message (no traceback) and exit with status 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except CycleGenError as exc:
            err.print(f"[red]error:[/red] {exc}", highlight=False)
            raise typer.Exit(1) from None
        except (RuntimeError, MemoryError) as exc:
            if (message := out_of_memory_message(exc)) is None:
                raise
            err.print(f"[red]error:[/red] {message}", highlight=False)
            raise typer.Exit(1) from None
        except Interrupted as exc:
            err.print(f"aborted by {signal.Signals(exc.signum).name}; {exc.saved}", highlight=False)
            raise typer.Exit(128 + exc.signum) from None
        except KeyboardInterrupt:
            err.print("aborted; the checkpoints already saved are intact", highlight=False)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


SetOption = Annotated[
    Optional[list[str]],
    typer.Option("--set", help="Override a recipe field, e.g. --set train.steps=500 (repeatable)."),
]
CheckpointOption = Annotated[
    Optional[Path], typer.Option("--checkpoint", help="A checkpoint file instead of the run's latest; 'best': the best (train.best).")
]
DeviceOption = Annotated[
    Optional[str],
    typer.Option(help="Run on this device (cpu, cuda, mps, auto) instead of the recipe's train.device."),
]
RawOption = Annotated[
    bool,
    typer.Option(
        "--raw-weights",
        help="Run the trained mappers, not the moving averages that the recipe's ema section keeps, used by default.",
    ),
]
TrustOption = Annotated[
    bool,
    typer.Option(
        "--trust-plugins", help="Run the local plugin files the run's recipe names: they are code, run as you."
    ),
]


def trained(
    run_dir: Path, checkpoint: Path | None, trust_plugins: bool, device: str | None, raw_weights: bool
) -> Experiment:
    """The trained run a command works on, saying (on stderr) which checkpoint and weights it uses."""
    from cyclegen.experiment import open_trained, usable_device

    target = None if device is None else usable_device(device)
    exp = open_trained(run_dir, checkpoint, trust_plugins=trust_plugins, device=target, raw_weights=raw_weights)
    assert exp.checkpoint is not None
    path, step = exp.checkpoint
    err.print(f"using {path} (step {step}), {exp.weights_label()} weights", highlight=False)
    return exp


@app.command()
@friendly
def run(
    target: Annotated[
        Path, typer.Argument(metavar="RECIPE_OR_RUN_DIR", help="A recipe TOML file, or a run directory to resume.")
    ],
    out: Annotated[Optional[Path], typer.Option(help="Run directory (default runs/<recipe name>).")] = None,
    set_: SetOption = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Require a checkpoint in the run directory to resume from.")
    ] = False,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Start over: move a used run directory aside (to NAME.replaced-TIME) first.")
    ] = False,
    trust_plugins: TrustOption = False,
) -> None:
    """Train a recipe, or resume a run: cyclegen run runs/NAME continues from its own recipe.

    Re-running a recipe into its used run directory resumes it too; --fresh starts over.
    Under torchrun (torchrun --nproc-per-node N -m cyclegen run RECIPE) every process trains
    its share of each global batch and rank 0 writes the run directory.
    """
    console.print(f"cyclegen {__version__}: opening {target}", highlight=False)
    from cyclegen.run import train_recipe  # imports torch: after the first line, which should come at once
    from cyclegen.summary import metrics_table

    result = train_recipe(target, set_ or [], out, resume, console, fresh=fresh, trust_plugins=trust_plugins)
    if not result.is_main:
        raise typer.Exit(result.exit_code)
    if result.stopped_by is not None:
        console.print(
            f"stopped by {signal.Signals(result.stopped_by).name} at step {result.step}; checkpoint saved in "
            f"{result.run_dir / 'checkpoints'}. Resume with: {result.resume_command}",
            highlight=False,
        )
        raise typer.Exit(result.exit_code)
    run_dir = result.run_dir
    console.print(f"trained {result.step} steps into {run_dir}", highlight=False)
    for path in result.samples:
        console.print(f"  samples: {path}", highlight=False)
    console.print(f"  metrics: {run_dir / 'metrics.jsonl'} (training), {run_dir / 'eval.json'} (evaluation)", highlight=False)
    console.print(f"  report:  cyclegen report {run_dir}; train longer: {result.resume_command} --set train.steps=N",
                  highlight=False)
    console.print(metrics_table(result.metrics))


@app.command()
@friendly
def validate(recipe: Annotated[Path, typer.Argument(help="Recipe TOML file.")], set_: SetOption = None) -> None:
    """Check a recipe without training; print its graph and parameter counts."""
    from cyclegen.experiment import open_recipe
    from cyclegen.summary import describe

    for part in describe(open_recipe(recipe, set_ or [])):
        console.print(part)
    console.print(f"[green]recipe {recipe} is valid[/green]")


@app.command()
@friendly
def plugins() -> None:
    """List installed plugins, their versions and what each provides."""
    from cyclegen.plugins import load_plugins
    from cyclegen.summary import plugins_table

    console.print(plugins_table(load_plugins()))


@app.command()
@friendly
def sample(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    n: Annotated[int, typer.Option("-n", help="Number of samples.")] = 64,
    out: Annotated[Path, typer.Option(help="PNG (through the domain's display), .npy or .safetensors.")] = Path("samples.png"),
    mapper: Annotated[Optional[str], typer.Option(help="Generating mapper (when there are several).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the prior samples.")] = 0,
    checkpoint: CheckpointOption = None,
    device: DeviceOption = None,
    trust_plugins: TrustOption = False,
    raw_weights: RawOption = False,
) -> None:
    """Draw samples from a trained run."""
    from cyclegen import inference

    exp = trained(run_dir, checkpoint, trust_plugins, device, raw_weights)
    name = inference.sample(exp, n, out, mapper, seed)
    source, target = exp.graph.mapper_ends[name]
    console.print(f"wrote {n} samples of {name} ({source} -> {target}) to {out}", highlight=False)


@app.command("eval")
@friendly
def eval_(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    samples: Annotated[Optional[int], typer.Option(help="Samples per metric (default: the recipe's eval.samples).")] = None,
    metric: Annotated[
        Optional[list[str]],
        typer.Option(help="Also run this registered metric with its default options (repeatable), e.g. --metric kid."),
    ] = None,
    checkpoint: CheckpointOption = None,
    device: DeviceOption = None,
    trust_plugins: TrustOption = False,
    raw_weights: RawOption = False,
) -> None:
    """Run the metrics that the recipe's domains offer (and its eval.metrics) on a trained run."""
    from cyclegen.evaluate import evaluate_experiment, metrics_json
    from cyclegen.summary import metrics_table

    metrics = evaluate_experiment(trained(run_dir, checkpoint, trust_plugins, device, raw_weights), samples, metric or [])
    if as_json:
        print(metrics_json(metrics))
    else:
        console.print(metrics_table(metrics))


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
    device: DeviceOption = None,
    trust_plugins: TrustOption = False,
    raw_weights: RawOption = False,
) -> None:
    """Encode inputs to latent codes, saved as a safetensors file (tensor "latents")."""
    from cyclegen import inference

    codes = inference.encode(trained(run_dir, checkpoint, trust_plugins, device, raw_weights), inputs, out, encoder)
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
    device: DeviceOption = None,
    trust_plugins: TrustOption = False,
    raw_weights: RawOption = False,
) -> None:
    """Encode and decode inputs; write (input, reconstruction) pairs side by side."""
    from cyclegen import inference

    exp = trained(run_dir, checkpoint, trust_plugins, device, raw_weights)
    count = inference.reconstruct(exp, inputs, out, encoder, decoder)
    console.print(f"wrote {count} reconstructions to {out}", highlight=False)


@app.command()
@friendly
def translate(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    inputs: ImagesArgument,
    mapper: Annotated[Optional[str], typer.Option(help="Translating mapper (default: the only data -> data mapper).")] = None,
    out: Annotated[Path, typer.Option(help="Output PNG: (input, translation) pairs.")] = Path("translations.png"),
    limit: Annotated[Optional[int], typer.Option(help="Translate at most this many inputs.")] = None,
    checkpoint: CheckpointOption = None,
    device: DeviceOption = None,
    trust_plugins: TrustOption = False,
    raw_weights: RawOption = False,
) -> None:
    """Translate inputs from one data domain to another (CycleGAN); write (input, output) pairs."""
    from cyclegen import inference

    exp = trained(run_dir, checkpoint, trust_plugins, device, raw_weights)
    name, count = inference.translate(exp, inputs, out, mapper, limit)
    source, target = exp.graph.mapper_ends[name]
    console.print(f"wrote {count} translations by {name} ({source} -> {target}) to {out}", highlight=False)


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
    device: DeviceOption = None,
    trust_plugins: TrustOption = False,
    raw_weights: RawOption = False,
) -> None:
    """Decode points on the line between two latent codes (the paper's Figure 1).

    With images, each row holds image i, the points decoded between E(image i) and
    E(image i+1), then image i+1; with --random, rows between pairs of random prior samples.
    """
    from cyclegen import inference

    exp = trained(run_dir, checkpoint, trust_plugins, device, raw_weights)
    count = inference.interpolate(exp, inputs or [], out, steps, rows, random, seed, encoder, decoder)
    console.print(f"wrote {count} interpolation row(s) to {out}", highlight=False)


@app.command()
@friendly
def report(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    out: Annotated[Optional[Path], typer.Option(help="Output HTML file (default RUN_DIR/report.html).")] = None,
) -> None:
    """Write one self-contained HTML page of a run: curves, samples, metrics, warnings, recipe.

    It only reads files (no plugin, no checkpoint): safe on a run still training or from someone else.
    """
    from cyclegen.report import write_report

    path = write_report(run_dir, out if out is not None else run_dir / "report.html")
    console.print(f"wrote report to {path}", highlight=False)


def main() -> None:
    app()
