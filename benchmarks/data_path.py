"""The image domain's data path: time to assemble a training batch, its share of a training
step, and the peak memory of a run on the 30k-face set.

Batches come from the decoded uint8 array (the cache), so assembling one is an index, a
flip and a float conversion; this measures that claim against the step time of the small
and full AEGAN presets measured in the same process, and the peak resident memory of a short
`cyclegen run` of the small preset (a child process, read with getrusage).

    python benchmarks/data_path.py
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from cyclegen.experiment import open_recipe
from cyclegen.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "anime-faces-64.zip"
PRESETS = {"aegan_anime_small": 16, "aegan_anime": 16}


def median_seconds(action, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(recipe: str, data: Path, steps: int) -> dict[str, float]:
    start = time.perf_counter()
    exp = open_recipe(ROOT / "recipes" / f"{recipe}.toml", [f"domains.x.source={str(data)!r}", "train.device='cpu'"])
    open_s = time.perf_counter() - start
    trainer = Trainer(exp.graph, exp.recipe, torch.device("cpu"))
    domain = exp.graph.domains["x"]
    batch_s = median_seconds(lambda: trainer.draw("x"), 200)
    trainer.step()
    step_s = median_seconds(trainer.step, steps)
    draws_per_step = count_draws(trainer)
    return {
        "images": float(len(domain)), "open_s": open_s, "batch_ms": 1e3 * batch_s, "step_s": step_s,
        "draws": float(draws_per_step), "share": draws_per_step * batch_s / step_s,
    }


def count_draws(trainer: Trainer) -> int:
    """How many image batches one step draws (real batches for critics, inputs of paths)."""
    calls = 0
    original = trainer.draw

    def counting(domain: str) -> torch.Tensor:
        nonlocal calls
        calls += domain == "x"
        return original(domain)

    trainer.draw = counting  # type: ignore[method-assign]
    trainer.step()
    trainer.draw = original  # type: ignore[method-assign]
    return calls


def peak_memory_mb(data: Path, steps: int) -> float:
    with tempfile.TemporaryDirectory() as run_dir:
        subprocess.run(
            [sys.executable, "-m", "cyclegen", "run", ROOT / "recipes" / "aegan_anime_small.toml", "--out", run_dir,
             "--set", f"domains.x.source={str(data)!r}", "--set", f"train.steps={steps}",
             "--set", "train.sample_every=0", "--set", "eval.samples=200"],
            check=True, stdout=subprocess.DEVNULL,
        )
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per preset")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print("| recipe | images | open (s) | batch of 16 (ms) | image batches / step | step (s) | data share of step |")
    print("|---|---|---|---|---|---|---|")
    for recipe in PRESETS:
        r = measure(recipe, args.data, args.steps)
        print(f"| {recipe} | {r['images']:.0f} | {r['open_s']:.1f} | {r['batch_ms']:.2f} | {r['draws']:.0f} "
              f"| {r['step_s']:.2f} | {100 * r['share']:.2f}% |")
    print(f"\npeak resident memory of `cyclegen run aegan_anime_small.toml` (20 steps, 30k faces): "
          f"{peak_memory_mb(args.data, 20):.0f} MB")


if __name__ == "__main__":
    main()
