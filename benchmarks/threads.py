"""Steps per second at 1 thread against PyTorch's default thread count, on an idle and on a
busy machine: the measurement behind `train.threads = "auto"`.

Small networks spend a step in many tiny kernels, where intra-op threads add a wake-up and a
join to each kernel and win nothing; when another process holds a core, a thread that waits
for it stalls every kernel. Each measurement is a child process that sets its thread count
once, as a run does (switching counts inside one process makes oneDNN rebuild its kernels and
biases the timing), warms up, then times steps; the children of the two counts alternate, so
machine noise hits them alike. `--load N` keeps N busy-looping processes running beside the
measurement, as another job would.

    python benchmarks/threads.py --load 0 --load 1
    python benchmarks/threads.py --recipe aegan_anime_small --data ../shared/data/anime-faces-64.zip
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from cyclegen.experiment import open_recipe
from cyclegen.threads import DEFAULT_THREADS, auto_threads, forward_flops
from cyclegen.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "anime-faces-64.zip"
IMAGE_RECIPES = {"aegan_anime_small", "gan_anime_small", "aae_anime_small", "cyclegan_anime_sketch_small"}


def trainer_for(recipe: str, data: Path) -> Trainer:
    overrides = ["train.device='cpu'"]
    if recipe in IMAGE_RECIPES:
        domains = ("sketch", "colour") if recipe.startswith("cyclegan") else ("x",)
        overrides += [f"domains.{name}.source={str(data)!r}" for name in domains]
    exp = open_recipe(ROOT / "recipes" / f"{recipe}.toml", overrides)
    return Trainer(exp.graph, exp.recipe, exp.device)


def steps_per_second(trainer: Trainer, steps: int, warm_up: int = 5) -> float:
    for _ in range(warm_up):  # oneDNN builds its kernels for this thread count on first use
        trainer.step()
    start = time.perf_counter()
    for _ in range(steps):
        trainer.step()
    return steps / (time.perf_counter() - start)


def child(recipe: str, threads: int, seconds: float, data: Path) -> None:
    """One measurement: print the steps/s of `recipe` at `threads` over about `seconds`."""
    torch.set_num_threads(threads)
    trainer = trainer_for(recipe, data)
    probe = steps_per_second(trainer, 2, warm_up=3)
    print(json.dumps({"steps_per_s": steps_per_second(trainer, max(3, int(probe * seconds)), warm_up=0),
                      "flops": forward_flops(trainer.graph, trainer.recipe.train.batch_size),
                      "auto": auto_threads(trainer.graph, trainer.recipe.train.batch_size, torch.device("cpu"))}))


def measure(recipe: str, threads: int, seconds: float, data: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", recipe, str(threads), "--seconds", str(seconds), "--data", str(data)],
        capture_output=True, text=True, check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def busy_processes(count: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", action="append", help="recipe names (default: aegan_grid, gan_grid)")
    parser.add_argument("--load", type=int, action="append", help="busy processes beside the run (default: 0 and 1)")
    parser.add_argument("--repeats", type=int, default=3, help="children per thread count and condition")
    parser.add_argument("--seconds", type=float, default=4.0, help="rough length of one timing")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--child", nargs=2, metavar=("RECIPE", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.seconds, args.data)
        return
    counts = sorted({1, DEFAULT_THREADS})
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, default {DEFAULT_THREADS} threads\n")
    print("| recipe | load | " + " | ".join(f"{n} thread(s), steps/s" for n in counts)
          + " | ratio 1 / default | forward GFLOP per step | auto picks |")
    print("|---|---|" + "---|" * len(counts) + "---|---|---|")
    for recipe in args.recipe or ["aegan_grid", "gan_grid"]:
        for load in args.load or [0, 1]:
            busy = busy_processes(load)
            try:
                runs: dict[int, list[dict[str, float]]] = {n: [] for n in counts}
                for _ in range(args.repeats):
                    for n in counts:
                        runs[n].append(measure(recipe, n, args.seconds, args.data))
            finally:
                for process in busy:
                    process.kill()
                    process.wait()
            rates = {n: [r["steps_per_s"] for r in found] for n, found in runs.items()}
            medians = {n: statistics.median(r) for n, r in rates.items()}
            spread = {n: f"{medians[n]:.1f} ({min(r):.1f}-{max(r):.1f})" for n, r in rates.items()}
            ratio = medians[1] / medians[DEFAULT_THREADS]
            first = runs[counts[0]][0]
            print(f"| {recipe} | {load} | " + " | ".join(spread[n] for n in counts)
                  + f" | {ratio:.2f} | {first['flops'] / 1e9:.3g} | {int(first['auto'])} |", flush=True)


if __name__ == "__main__":
    main()
