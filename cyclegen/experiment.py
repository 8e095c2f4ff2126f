"""From a recipe file (or a run directory) to a built, checked graph on a device."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cyclegen.checkpoint import BEST, latest_checkpoint
from cyclegen.errors import CycleGenError, PluginError, RecipeError
from cyclegen.graph import Graph, build_graph
from cyclegen.interfaces import Metric
from cyclegen.plugins import Plugins, load_plugins, local_plugins
from cyclegen.recipe import Recipe, TrainSpec, parse_recipe, read_recipe
from cyclegen.rundir import CHECKPOINTS, RUN_RECIPE
from cyclegen.runtime import AUTOCAST_DTYPES
from cyclegen.toml_writer import dumps


@dataclass
class Experiment:
    """A validated recipe, the plugins it was built with, its graph and the device to run on."""

    recipe: Recipe
    #: The recipe as data after `--set` overrides, local plugin paths made absolute: what the
    #: run directory's recipe.toml and every checkpoint record.
    resolved: dict[str, Any]
    plugins: Plugins
    graph: Graph
    device: torch.device
    #: The checkpoint file whose weights `open_trained` loaded, and its step.
    checkpoint: tuple[Path, int] | None = None
    #: Run the trained mappers even where `[ema]` keeps averages of them (`--raw-weights`).
    raw_weights: bool = False

    def inference_graph(self) -> Graph:
        """The graph that samples, evaluation and commands run: the `[ema]` averages in place
        of their mappers, unless `raw_weights`."""
        return self.graph if self.raw_weights else self.graph.averaged()

    def weights_label(self) -> str:
        """Which weights `inference_graph` runs, for messages: "EMA of G, E" or "trained"."""
        averages = self.graph.averages
        if averages is None or self.raw_weights:
            return "trained"
        return f"EMA of {', '.join(averages.names())}"

    def resolved_toml(self) -> str:
        return dumps(self.resolved)

    def eval_metrics(self, extra: Sequence[str] = ()) -> list[Metric]:
        """The recipe's `eval.metrics`, then the registered metrics named in `extra`, built with
        their options. Each must apply to some mapper's target domain."""
        named = enumerate(self.recipe.eval.named_metrics())
        requested = [(name, options, f"eval.metrics[{i}]") for i, (name, options) in named]
        requested += [(name, {}, f"metric {name!r}") for name in extra]
        registry = self.plugins.registry
        produced = {self.graph.domains[target] for _, target in self.graph.mapper_ends.values()}
        targets = sorted(produced, key=lambda domain: domain.name)
        metrics = []
        for name, options, where in requested:
            metric = registry.build("metric", name, where, options)
            if not any(metric.applies_to(domain) for domain in targets):
                shapes = ", ".join(f"{domain.name} {tuple(domain.shape)}" for domain in targets)
                raise RecipeError(
                    f"{where}: metric {name!r} applies to none of the domains the mappers produce ({shapes}); "
                    "remove it, or give it features it can take (docs/fidelity.md)"
                )
            metrics.append(metric)
        return metrics


def open_recipe(path: Path, overrides: list[str] = (), *, untrusted_run: Path | None = None) -> Experiment:
    """Load plugins (including the recipe's local ones), validate and build the recipe, and
    check that the device can train it as `[train]` asks.

    The user named this recipe, so its local plugins run without --trust-plugins, unless it is
    the recipe of the run directory `untrusted_run` (which may come from anyone: see `open_run`).
    """
    path = Path(path)
    raw = _with_absolute_plugins(read_recipe(path, overrides), path)
    recipe, data = parse_recipe(raw, str(path))
    if untrusted_run is not None:
        _refuse_local_plugins(recipe.plugins, untrusted_run)
    experiment = _build(recipe, data)
    check_training(experiment.recipe.train, experiment.device)
    experiment.eval_metrics()  # their options (and any weights they need) are checked now, not after training
    return experiment


def open_run(run_dir: Path, *, trust_plugins: bool = False, device: torch.device | None = None) -> Experiment:
    """Rebuild the experiment a run directory was trained from, on `device` (default: the
    recipe's `train.device`, which a run trained on a GPU may name where there is none).

    A run directory may come from anyone, so the local plugins its recipe names (code that
    would run) are refused unless `trust_plugins`.
    """
    recipe_path = Path(run_dir) / RUN_RECIPE
    if not recipe_path.is_file():
        raise CycleGenError(f"{run_dir} is not a run directory: it has no {RUN_RECIPE}")
    raw = _with_absolute_plugins(read_recipe(recipe_path), recipe_path)
    recipe, data = parse_recipe(raw, str(recipe_path))
    if not trust_plugins:
        _refuse_local_plugins(recipe.plugins, Path(run_dir))
    return _build(recipe, data, device)


def open_trained(
    run_dir: Path,
    checkpoint: Path | None = None,
    *,
    trust_plugins: bool = False,
    device: torch.device | None = None,
    raw_weights: bool = False,
) -> Experiment:
    """The experiment of a run directory with the weights of `checkpoint` (default: the run's
    latest readable one), on `device` (see `open_run`): what every command on a trained model
    starts from; "best" names the run's best checkpoint (`train.best`). `trust_plugins` allows the
    local plugins the run's recipe names; `raw_weights` runs the trained mappers instead of their
    `[ema]` averages."""
    exp = open_run(run_dir, trust_plugins=trust_plugins, device=device)
    exp.raw_weights = raw_weights
    found = latest_checkpoint(Path(run_dir) / CHECKPOINTS, named_checkpoint(Path(run_dir), checkpoint))
    if found is None:
        raise CycleGenError(f"{run_dir} has no readable checkpoint yet; train it with cyclegen run")
    found.load_into(exp.graph.weight_parts())
    exp.checkpoint = (found.path, found.step)
    exp.graph.to(exp.device)
    return exp


def named_checkpoint(run_dir: Path, checkpoint: Path | None) -> Path | None:
    """`checkpoint`, where "best" names the run's best checkpoint (`train.best`)."""
    if checkpoint is None or str(checkpoint) != "best" or Path(checkpoint).exists():
        return checkpoint
    best = run_dir / CHECKPOINTS / BEST
    if not best.is_file():
        raise CycleGenError(
            f"{run_dir} has no best checkpoint ({best}): a run keeps one when its recipe sets train.best "
            "and train.eval_every"
        )
    return best


def _with_absolute_plugins(raw: dict[str, Any], recipe_path: Path) -> dict[str, Any]:
    """`raw` with its local plugin files made absolute against the folder of the recipe file
    that names them (never the current one), so the resolved recipe works from any folder."""
    specs = raw.get("plugins", [])
    if isinstance(specs, list):  # anything else is reported by validation
        base = recipe_path.resolve().parent
        raw["plugins"] = [_absolute(spec, base) if isinstance(spec, str) else spec for spec in specs]
    return raw


def _refuse_local_plugins(specs: list[str], run_dir: Path) -> None:
    """Fail, listing them, where a run directory's recipe names plugins that are not installed."""
    local = local_plugins(specs, [Path.cwd(), run_dir])
    if local:
        raise PluginError(
            f"{run_dir / RUN_RECIPE} names local plugins: {', '.join(local)}. A local plugin is code, "
            "and opening this run would run it; pass --trust-plugins if you trust it"
        )


def _build(recipe: Recipe, data: dict[str, Any], device: torch.device | None = None) -> Experiment:
    plugins = load_plugins(recipe.plugins)
    graph = build_graph(recipe, plugins.registry)
    for i, (name, _) in enumerate(recipe.eval.named_metrics()):  # resolve now, not after hours of training
        plugins.registry.get("metric", name, f"eval.metrics[{i}]")
    return Experiment(recipe, data, plugins, graph, device or pick_device(recipe.train.device))


def check_training(train: TrainSpec, device: torch.device) -> None:
    """Refuse precision or compile settings this device or Python cannot train with.

    Only training needs them (commands on a trained run evaluate in float32), so runs are
    checked when opened from a recipe, not from a run directory.
    """
    check_precision(train.precision, device)
    if train.compile:
        check_compile()


def check_precision(precision: str, device: torch.device) -> None:
    """Fail before training where `device` cannot autocast (or loss-scale) in `precision`:
    torch would only warn and silently train in float32."""
    dtype = AUTOCAST_DTYPES[precision]
    if dtype is None:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            torch.autocast(device.type, dtype=dtype)
            torch.amp.GradScaler(device.type, enabled=precision == "fp16")
        except (RuntimeError, UserWarning) as exc:
            other = ' or "fp16"' if precision == "bf16" else ""
            raise RecipeError(
                f"train.precision: {precision!r} is not supported on the {device.type} device ({exc}); "
                f'use "fp32"{other}, or another train.device'
            ) from None


def check_compile() -> None:
    """torch.compile refuses some Python builds when first asked; say so before training."""
    try:
        torch.compile(_identity)
    except RuntimeError as exc:
        raise RecipeError(f"train.compile: {exc}; set train.compile = false") from None


def _identity(x: object) -> object:
    return x


def _absolute(spec: str, base: Path) -> str:
    return str((base / spec).resolve()) if spec.endswith(".py") else spec


def pick_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RecipeError("train.device: 'cuda' was asked for but no CUDA device is available; use \"auto\" or \"cpu\"")
    if name == "mps" and not torch.backends.mps.is_available():
        raise RecipeError("train.device: 'mps' was asked for but MPS is not available; use \"auto\" or \"cpu\"")
    return torch.device(name)


def usable_device(device: str | torch.device) -> torch.device:
    """`device` (a name, "auto", or a torch.device), checked before any loading, for opening a
    trained run elsewhere than it trained (a GPU run on a laptop): an unusable one fails at once."""
    try:
        target = pick_device("auto") if device == "auto" else torch.device(device)
        torch.empty(0, device=target)
    except (RuntimeError, AssertionError) as exc:  # an unknown name; torch asserts when built without CUDA
        raise CycleGenError(f"device {str(device)!r} cannot be used here ({exc}); use 'cpu'") from None
    return target
