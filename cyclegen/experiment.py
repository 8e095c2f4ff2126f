"""From a recipe file (or a run directory) to a built, checked graph on a device."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cyclegen.errors import CycleGenError, RecipeError
from cyclegen.graph import Graph, build_graph
from cyclegen.plugins import Plugins, load_plugins
from cyclegen.recipe import Recipe, parse_recipe, read_recipe
from cyclegen.toml_writer import dumps

RUN_RECIPE = "recipe.toml"


@dataclass
class Experiment:
    recipe: Recipe
    data: dict[str, Any]
    plugins: Plugins
    graph: Graph
    device: torch.device

    def resolved_toml(self) -> str:
        return dumps(self.data)


def open_recipe(path: Path, overrides: list[str] = ()) -> Experiment:
    """Load plugins (including the recipe's local ones), validate and build the recipe.

    Local plugin files are made absolute, so the resolved recipe works from any folder.
    """
    path = Path(path)
    raw = read_recipe(path, overrides)
    base = path.resolve().parent
    specs = raw.get("plugins", [])
    if isinstance(specs, list):  # anything else is reported by validation
        raw["plugins"] = [_absolute(spec, base) if isinstance(spec, str) else spec for spec in specs]
    return _build(raw, str(path))


def open_run(run_dir: Path) -> Experiment:
    """Rebuild the experiment a run directory was trained from."""
    recipe_path = Path(run_dir) / RUN_RECIPE
    if not recipe_path.is_file():
        raise CycleGenError(f"{run_dir} is not a run directory: it has no {RUN_RECIPE}")
    return _build(read_recipe(recipe_path), str(recipe_path))


def _build(raw: dict[str, Any], source: str) -> Experiment:
    recipe, data = parse_recipe(raw, source)
    plugins = load_plugins(recipe.plugins)
    graph = build_graph(recipe, plugins.registry)
    for i, name in enumerate(recipe.eval.metrics):  # resolve now, not after hours of training
        plugins.registry.get("metric", name, f"eval.metrics[{i}]")
    return Experiment(recipe, data, plugins, graph, pick_device(recipe.train.device))


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
