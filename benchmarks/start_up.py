"""Seconds until a piped `cyclegen run` shows its first line, its whole start-up block and its
first timing: what a user watching a log file waits for.

Each run is a real `cyclegen run ... | cat`-style child with its output on a pipe; every line
is stamped as it arrives. The anime recipes read the faces from the decode cache (a first run
of the same data fills it). `--load N` keeps N busy-looping processes beside the run.

    python benchmarks/start_up.py --data ../shared/data/anime-faces-64.zip --load 0 --load 1
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "anime-faces-64.zip"
#: The line that starts each milestone, in the order they come.
MILESTONES = {"first line": "cyclegen ", "start-up block done": "logging to ", "first timing": "timed the first "}


def stamped_run(recipe: str, data: Path, out: Path) -> dict[str, float]:
    """Seconds from launch to each milestone line of one piped run (stopped after its first timing)."""
    args = [sys.executable, "-m", "cyclegen", "run", str(ROOT / "recipes" / f"{recipe}.toml"), "--out", str(out),
            "--set", "train.steps=100000", "--set", "train.sample_every=0", "--set", "train.checkpoint_every=0"]
    if "anime" in recipe:
        args += ["--set", f"domains.x.source={str(data)!r}"]
    started = time.perf_counter()
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen: dict[str, float] = {}
    assert process.stdout is not None
    for line in process.stdout:
        for name, prefix in MILESTONES.items():
            if name not in seen and line.startswith(prefix):
                seen[name] = time.perf_counter() - started
        if "first timing" in seen:
            break
    process.kill()
    process.wait()
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", action="append", help="default: aegan_grid, aegan_anime_small, aegan_anime")
    parser.add_argument("--load", type=int, action="append", help="busy processes beside the run (default: 0)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    print("| recipe | load | " + " | ".join(f"{name}, s" for name in MILESTONES) + " |")
    print("|---|---|" + "---|" * len(MILESTONES))
    for recipe in args.recipe or ["aegan_grid", "aegan_anime_small", "aegan_anime"]:
        for load in args.load or [0]:
            busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(load)]
            try:
                with tempfile.TemporaryDirectory() as tmp:
                    runs = [stamped_run(recipe, args.data, Path(tmp) / f"run{i}") for i in range(args.repeats)]
            finally:
                for process in busy:
                    process.kill()
                    process.wait()
            cells = []
            for name in MILESTONES:
                times = [run[name] for run in runs if name in run]
                cells.append(f"{statistics.median(times):.1f} ({min(times):.1f}-{max(times):.1f})" if times else "-")
            print(f"| {recipe} | {load} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
