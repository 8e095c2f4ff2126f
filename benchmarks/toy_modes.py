"""Mode coverage of GAN, AAE and AEGAN (the recipes' loss, or wgan-gp from the Wasserstein plugin) on the 2-D ring and grid.

Trains `recipes/{family}_{dataset}.toml` (family `wgan`: `recipes/wgan_grid.toml`, WGAN as its paper trains it;
family `aegan-wgan`: `recipes/aegan_{dataset}_wgan.toml`,
which differs from the AEGAN recipe only in its adversarial loss) once per seed through the `cyclegen` command
line, reads each run's `eval.json` (the "G: z -> x" section), times each run, and prints
a markdown table of mean ± std (and the worst seed) over seeds, then per-seed rows for AEGAN.

A recipe with an `[ema]` section is scored twice from the same run: by its averaged G (what
`eval.json` holds, the default of every command) and by its trained G (`cyclegen eval
--raw-weights`), the row "<family> raw": the moving average does not change training, so
this is the run with EMA off. The goal line counts the seeds that cover every mode with at
least 90% high-quality samples and KL at most 0.05.

    python benchmarks/toy_modes.py                 # 3 families x 2 datasets x 5 seeds
    python benchmarks/toy_modes.py --families aegan --datasets grid --seeds 2 --steps 500
    python benchmarks/toy_modes.py --families aegan aegan-wgan --datasets grid   # recipe loss vs wgan-gp
    python benchmarks/toy_modes.py --families aegan --seeds 10 --threads 2       # another thread count
    python benchmarks/toy_modes.py --first-seed 5 --seeds 5                      # seeds 5-9

Each run uses `--threads` threads (default 1); `--jobs` runs that many at once.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from seed_runs import cyclegen_command, numbers, summary_cell, train_fresh

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
FAMILIES = ("gan", "aae", "aegan", "aegan-wgan", "wgan")
DATASETS = ("ring", "grid")
SECTION = "G: z -> x"
#: (eval.json key, table header, decimals)
#: The worst seed is the lowest, except for these (and its label in the cells).
WORST = {"kl": (max, "worst"), "wall s": (max, "max")}
COLUMNS = (
    ("modes covered", "modes", 1),
    ("modes (strict)", "strict modes", 1),
    ("high quality %", "high quality %", 1),
    ("kl", "KL", 3),
    ("wall s", "wall s", 0),
)


@dataclass(frozen=True)
class Job:
    family: str
    dataset: str
    seed: int


def recipe_of(job: Job) -> Path:
    family, _, variant = job.family.partition("-")
    return RECIPES / f"{family}_{job.dataset}{'_' + variant if variant else ''}.toml"


def run_one(
    job: Job, workdir: Path, steps: int | None, overrides: list[str] = (), threads: int = 1
) -> dict[str, dict[str, float]]:
    """Train one recipe for one seed; return its G metrics plus the wall time in seconds, under
    "ema" (eval.json) and, for a recipe with `[ema]`, "raw" (the trained G of the same run)."""
    out = workdir / f"{job.family}_{job.dataset}_seed{job.seed}"
    settings = [f"seed={job.seed}", f"train.threads={threads}", *([f"train.steps={steps}"] if steps else []),
                *overrides]
    evaluation, wall = train_fresh(recipe_of(job), out, settings)
    results = {"ema": numbers(evaluation[SECTION], wall)}
    if "[ema]" in (out / "recipe.toml").read_text():
        raw = subprocess.run([*cyclegen_command(), "eval", str(out), "--raw-weights", "--json"],
                             capture_output=True, text=True, check=True)
        results["raw"] = numbers(json.loads(raw.stdout)[SECTION], wall)
    return results


def meets_goal(result: dict[str, float]) -> bool:
    """Every mode covered, at least 90% high-quality samples, KL at most 0.05."""
    return (result["modes covered"] == result["modes total"] and result["high quality %"] >= 90
            and result["kl"] <= 0.05)


def markdown_table(results: dict[tuple[str, str, int], dict[str, float]], rows: list[str], datasets: list[str]) -> str:
    """Summary rows (mean ± std (worst seed), seeds meeting the goal) per dataset and row label, then
    per-seed rows of every AEGAN row label."""
    lines = [
        "| dataset | run | seeds | goal met | " + " | ".join(header for _, header, _ in COLUMNS) + " |",
        "|---|---|---|---|" + "---|" * len(COLUMNS),
    ]
    for dataset in datasets:
        for row in rows:
            runs = [r for (label, d, _), r in results.items() if label == row and d == dataset]
            if not runs:
                continue
            cells = [summary_cell([r[key] for r in runs], decimals, *WORST.get(key, (min, "worst")))
                     for key, _, decimals in COLUMNS]
            met = sum(meets_goal(r) for r in runs)
            lines.append(f"| {dataset} | {row} | {len(runs)} | {met}/{len(runs)} | " + " | ".join(cells) + " |")
    aegan = sorted((key, r) for key, r in results.items() if key[0].startswith("aegan"))
    if aegan:
        lines += ["", "| dataset | run | seed | " + " | ".join(h for _, h, _ in COLUMNS) + " |",
                  "|---|---|---|" + "---|" * len(COLUMNS)]
        for (label, dataset, seed), r in sorted(aegan, key=lambda item: (item[0][1], item[0][0], item[0][2])):
            cells = [f"{r[key]:.{decimals}f}" for key, _, decimals in COLUMNS]
            lines.append(f"| {dataset} | {label} | {seed} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="how many seeds per family and dataset (default 5)")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="the first seed (default 0): --first-seed 5 --seeds 5 extends a 5-seed table to 10")
    parser.add_argument("--families", nargs="+", choices=FAMILIES, default=list(FAMILIES))
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    parser.add_argument("--jobs", type=int, default=2, help="runs at once (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="train.threads of every run (default 1)")
    parser.add_argument("--steps", type=int, help="override train.steps of every recipe")
    parser.add_argument("--workdir", type=Path, help="where run directories go (default: a temporary folder)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="recipe override for every run")
    args = parser.parse_args()

    seeds = range(args.first_seed, args.first_seed + args.seeds)
    jobs = [Job(f, d, s) for d in args.datasets for f in args.families for s in seeds]
    jobs = [job for job in jobs if recipe_of(job).is_file()]  # wgan and aegan-wgan have grid recipes only
    with tempfile.TemporaryDirectory(prefix="toy_modes_") as scratch:
        workdir = args.workdir or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)

        def run(job: Job) -> dict[str, dict[str, float]]:
            result = run_one(job, workdir, args.steps, args.overrides, args.threads)
            for weights, r in result.items():
                print(f"{job.family} {job.dataset} seed {job.seed} ({weights}): "
                      + ", ".join(f"{k} {r[k]:.3g}" for k, _, _ in COLUMNS), file=sys.stderr, flush=True)
            return result

        with ThreadPoolExecutor(args.jobs) as pool:
            outcomes = dict(zip(jobs, pool.map(run, jobs)))
    results = {
        (job.family if weights == "ema" else f"{job.family} raw", job.dataset, job.seed): r
        for job, outcome in outcomes.items() for weights, r in outcome.items()
    }
    rows = list(dict.fromkeys(label for label, _, _ in results))
    print(markdown_table(results, rows, args.datasets))


if __name__ == "__main__":
    main()
