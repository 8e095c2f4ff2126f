"""Mode coverage of the GAN and the AEGAN on Stacked MNIST (1,000 modes; VEEGAN, PacGAN, PresGAN).

Trains `recipes/{family}_stacked_mnist.toml` once per seed through the `cyclegen` command line
(as benchmarks/toy_modes.py does for the 2-D recipes), reads each run's `eval.json` (the
"G: z -> x" section: the `stacked-modes` metric over the recipes' 26,000 samples), times each
run, and prints a markdown table of mean ± std and the worst seed per family, then one row per
run.

    python benchmarks/stacked_mnist.py --data ../shared/data/mnist.npz          # 2 families x 3 seeds
    python benchmarks/stacked_mnist.py --data ~/mnist.npz --seeds 1 --steps 20  # a quick check

Each run uses `--threads` threads (default 2, the recipes' timing); `--jobs` runs that many at
once (`--jobs 2 --threads 1` trains two runs side by side on a 2-core machine).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from seed_runs import numbers, summary_cell, train_fresh

ROOT = Path(__file__).resolve().parent.parent
RECIPES = ROOT / "recipes"
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "mnist.npz"
FAMILIES = ("aegan", "gan")
SECTION = "G: z -> x"
#: (eval.json key, table header, decimals, whether larger is better)
COLUMNS = (
    ("modes covered", "modes (of 1000)", 1, True),
    ("kl", "KL", 3, False),
    ("confident %", "confident %", 1, True),
    ("wall s", "wall s", 0, False),
)


@dataclass(frozen=True)
class Job:
    family: str
    seed: int


def run_one(
    job: Job, workdir: Path, data: Path, steps: int | None, threads: int, overrides: list[str]
) -> dict[str, float]:
    """Train one recipe for one seed; return its G metrics plus the wall time in seconds."""
    settings = [f"domains.x.source={str(data)!r}", f"seed={job.seed}", f"train.threads={threads}",
                *([f"train.steps={steps}"] if steps is not None else []), *overrides]
    evaluation, wall = train_fresh(RECIPES / f"{job.family}_stacked_mnist.toml", workdir / f"{job.family}_seed{job.seed}",
                                   settings)
    return numbers(evaluation[SECTION], wall)


def markdown_table(results: dict[Job, dict[str, float]], families: list[str]) -> str:
    headers = " | ".join(header for _, header, _, _ in COLUMNS)
    lines = [f"| family | seeds | {headers} |", "|---|---|" + "---|" * len(COLUMNS)]
    for family in families:
        runs = [r for job, r in results.items() if job.family == family]
        cells = [summary_cell([r[key] for r in runs], decimals, max if not better else min, "worst")
                 for key, _, decimals, better in COLUMNS]
        lines.append(f"| {family} | {len(runs)} | " + " | ".join(cells) + " |")
    lines += ["", f"| family | seed | {headers} |", "|---|---|" + "---|" * len(COLUMNS)]
    for job, r in sorted(results.items(), key=lambda item: (families.index(item[0].family), item[0].seed)):
        cells = [f"{r[key]:.{decimals}f}" for key, _, decimals, _ in COLUMNS]
        lines.append(f"| {job.family} | {job.seed} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"mnist.npz (default {DEFAULT_DATA})")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per family (default 3)")
    parser.add_argument("--families", nargs="+", choices=FAMILIES, default=list(FAMILIES))
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (default 1)")
    parser.add_argument("--threads", type=int, default=2, help="train.threads of every run (default 2)")
    parser.add_argument("--steps", type=int, help="override train.steps of every recipe (a quick check)")
    parser.add_argument("--workdir", type=Path, help="where run directories go (default: a temporary folder)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="recipe override for every run")
    args = parser.parse_args()
    data = args.data.expanduser().resolve()
    if not data.is_file():
        parser.error(f"--data {args.data}: no such file; get MNIST as mnist.npz (README, section Data)")

    jobs = [Job(family, seed) for family in args.families for seed in range(args.seeds)]
    with tempfile.TemporaryDirectory(prefix="stacked_mnist_") as scratch:
        workdir = args.workdir or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)

        def run(job: Job) -> dict[str, float]:
            result = run_one(job, workdir, data, args.steps, args.threads, args.overrides)
            print(f"{job.family} seed {job.seed}: " + ", ".join(f"{k} {result[k]:.3g}" for k, *_ in COLUMNS),
                  file=sys.stderr, flush=True)
            return result

        with ThreadPoolExecutor(args.jobs) as pool:
            results = dict(zip(jobs, pool.map(run, jobs)))
    print(markdown_table(results, args.families))


if __name__ == "__main__":
    main()
