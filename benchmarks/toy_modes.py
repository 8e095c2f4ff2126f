"""Mode coverage of GAN, AAE and AEGAN (bce, or wgan-gp from the Wasserstein plugin) on the 2-D ring and grid.

Trains `recipes/{family}_{dataset}.toml` (family `wgan`: `recipes/wgan_grid.toml`, WGAN as its paper trains it;
family `aegan-wgan`: `recipes/aegan_{dataset}_wgan.toml`,
which differs from the AEGAN recipe only in its adversarial loss) once per seed through the `cyclegen` command
line, reads each run's `eval.json` (the "G: z -> x" section), times each run, and prints
a markdown table of mean ± std (and min) over seeds, then per-seed rows for AEGAN.

    python benchmarks/toy_modes.py                 # 3 families x 2 datasets x 5 seeds
    python benchmarks/toy_modes.py --families aegan --datasets grid --seeds 2 --steps 500
    python benchmarks/toy_modes.py --families aegan aegan-wgan --datasets grid   # bce vs wgan-gp

Each run uses one thread (`train.threads=1`); `--jobs` runs that many at once.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
FAMILIES = ("gan", "aae", "aegan", "aegan-wgan", "wgan")
DATASETS = ("ring", "grid")
SECTION = "G: z -> x"
#: (eval.json key, table header, decimals)
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


def cyclegen_command() -> list[str]:
    """The `cyclegen` executable next to this Python, else on PATH, else `python -m cyclegen`."""
    beside = Path(sys.executable).with_name("cyclegen")
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("cyclegen")
    return [found] if found else [sys.executable, "-m", "cyclegen"]


def recipe_of(job: Job) -> Path:
    family, _, variant = job.family.partition("-")
    return RECIPES / f"{family}_{job.dataset}{'_' + variant if variant else ''}.toml"


def run_one(job: Job, workdir: Path, steps: int | None, overrides: list[str] = ()) -> dict[str, float]:
    """Train one recipe for one seed; return its G metrics plus the wall time in seconds."""
    out = workdir / f"{job.family}_{job.dataset}_seed{job.seed}"
    if out.exists():
        shutil.rmtree(out)  # a fresh run, never a resume
    command = [
        *cyclegen_command(), "run", str(recipe_of(job)),
        "--out", str(out), "--set", f"seed={job.seed}", "--set", "train.threads=1",
    ]
    if steps is not None:
        command += ["--set", f"train.steps={steps}"]
    command += [part for item in overrides for part in ("--set", item)]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    metrics = json.loads((out / "eval.json").read_text())[SECTION]
    result = {key: math.nan if value is None else float(value) for key, value in metrics.items()}
    result["wall s"] = wall
    return result


def summary_cell(values: list[float], decimals: int) -> str:
    """'mean ± std (min x)' over seeds; NaN values (KL with no good sample) are counted apart."""
    finite = [v for v in values if math.isfinite(v)]
    missing = f" [{len(values) - len(finite)} NaN]" if len(finite) < len(values) else ""
    if not finite:
        return "n/a" + missing
    mean = statistics.fmean(finite)
    std = statistics.stdev(finite) if len(finite) > 1 else 0.0
    return f"{mean:.{decimals}f} ± {std:.{decimals}f} (min {min(finite):.{decimals}f}){missing}"


def markdown_table(results: dict[Job, dict[str, float]], families: list[str], datasets: list[str]) -> str:
    lines = [
        "| dataset | family | seeds | " + " | ".join(header for _, header, _ in COLUMNS) + " |",
        "|---|---|---|" + "---|" * len(COLUMNS),
    ]
    for dataset in datasets:
        for family in families:
            runs = [r for job, r in results.items() if job.family == family and job.dataset == dataset]
            cells = [summary_cell([r[key] for r in runs], decimals) for key, _, decimals in COLUMNS]
            lines.append(f"| {dataset} | {family} | {len(runs)} | " + " | ".join(cells) + " |")
    if any(family.startswith("aegan") for family in families):
        lines += ["", "| dataset | family | seed | " + " | ".join(h for _, h, _ in COLUMNS) + " |",
                  "|---|---|---|" + "---|" * len(COLUMNS)]
        ordered = sorted(results.items(), key=lambda item: (item[0].dataset, item[0].family, item[0].seed))
        for job, r in ordered:
            if job.family.startswith("aegan"):
                cells = [f"{r[key]:.{decimals}f}" for key, _, decimals in COLUMNS]
                lines.append(f"| {job.dataset} | {job.family} | {job.seed} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 per family and dataset (default 5)")
    parser.add_argument("--families", nargs="+", choices=FAMILIES, default=list(FAMILIES))
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    parser.add_argument("--jobs", type=int, default=2, help="runs at once, one thread each (default 2)")
    parser.add_argument("--steps", type=int, help="override train.steps of every recipe")
    parser.add_argument("--workdir", type=Path, help="where run directories go (default: a temporary folder)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="recipe override for every run")
    args = parser.parse_args()

    jobs = [Job(f, d, s) for d in args.datasets for f in args.families for s in range(args.seeds)]
    jobs = [job for job in jobs if recipe_of(job).is_file()]  # wgan and aegan-wgan have grid recipes only
    with tempfile.TemporaryDirectory(prefix="toy_modes_") as scratch:
        workdir = args.workdir or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)

        def run(job: Job) -> dict[str, float]:
            result = run_one(job, workdir, args.steps, args.overrides)
            print(f"{job.family} {job.dataset} seed {job.seed}: "
                  + ", ".join(f"{k} {result[k]:.3g}" for k, _, _ in COLUMNS), file=sys.stderr, flush=True)
            return result

        with ThreadPoolExecutor(args.jobs) as pool:
            results = dict(zip(jobs, pool.map(run, jobs)))
    print(markdown_table(results, args.families, args.datasets))


if __name__ == "__main__":
    main()
