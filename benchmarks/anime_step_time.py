"""Seconds per E+G update of the full-size AEGAN reference recipe on this machine.

Times whole reference iterations (4 Dx + 4 Dz + 4 E+G updates) of recipes/aegan_anime.toml
through the engine, and reports the iteration time / 4 (the figure the issue tracker quotes
for the Keras reference) beside the time of the E+G updates alone. Medians over --repeats.

    python benchmarks/anime_step_time.py --batch 16 --batch 32
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from cyclegen.experiment import open_recipe
from cyclegen.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "anime-faces-64.zip"


def measure(batch: int, repeats: int, data: Path, overrides: list[str]) -> dict[str, float]:
    exp = open_recipe(
        ROOT / "recipes" / "aegan_anime.toml",
        [f"domains.x.source={str(data)!r}", "train.device='cpu'", f"train.batch_size={batch}", *overrides],
    )
    trainer = Trainer(exp.graph, exp.recipe, torch.device("cpu"))
    trainer.step()  # warm-up: allocator and kernel selection
    iterations, mapper_updates = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        trainer.critic_phase()
        middle = time.perf_counter()
        trainer.mapper_phase()
        end = time.perf_counter()
        iterations.append(end - start)
        mapper_updates.append((end - middle) / exp.recipe.schedule.mapper_steps)
    return {
        "iteration_s": statistics.median(iterations),
        "per_update_s": statistics.median(iterations) / exp.recipe.schedule.mapper_steps,
        "eg_update_only_s": statistics.median(mapper_updates),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, action="append", help="batch size (repeatable; default 16)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="recipe override")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| batch | iteration (s) | iteration / 4 (s) | E+G update alone (s) |")
    print("|---|---|---|---|")
    for batch in args.batch or [16]:
        r = measure(batch, args.repeats, args.data, args.overrides)
        print(f"| {batch} | {r['iteration_s']:.2f} | {r['per_update_s']:.2f} | {r['eg_update_only_s']:.2f} |")


if __name__ == "__main__":
    main()
