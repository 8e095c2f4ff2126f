"""GAN vs AAE vs AEGAN on the anime faces with the small CPU presets, over seeds.

Trains recipes/{gan,aae,aegan}_anime_small.toml through the CLI for the same number of
generator updates (`--updates`; each family's steps follow from its `mapper_steps`, since the
reference's GAN and AAE make 2 generator updates a step and its AEGAN 4), for every seed, and
reads each run's eval.json: SWD and NDB of samples against held-out faces, held-out
reconstruction L1 / PSNR and the sharpness ratio of reconstructions (AAE, AEGAN). It also
measures sample diversity directly: the per-pixel standard deviation across 256 samples over
that across 256 held-out faces (1 = as varied as the data; a collapsed generator is near 0).
With --figures DIR it copies seed 0's final sample and reconstruction grids there and draws
interpolations between held-out faces, the last row between a face and its mirror image (the
paper's Figure 1). A run directory that already holds a finished run is read, not retrained,
so more seeds can be added to a finished comparison.

    python benchmarks/anime_compare.py --workdir /tmp/anime --updates 3000 --seeds 0 1 2 \\
        --parallel 2 --set train.threads=1 --figures docs/images
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from cyclegen.experiment import open_trained
from cyclegen.inference import decoder_of, encoder_of, interpolate_images
from cyclegen.recipe import load_recipe
from cyclegen.streams import domain_generator

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "anime-faces-64.zip"
FAMILIES = ("gan", "aae", "aegan")
COLUMNS = ["wall s", "swd avg", "ndb/k", "diversity", "l1", "psnr", "sharpness"]
#: Diversity below this share of the data's is called a collapse.
COLLAPSED = 0.5
DIVERSITY_SAMPLES = 256


def recipe_path(family: str) -> Path:
    return ROOT / "recipes" / f"{family}_anime_small.toml"


def cyclegen(*args: object) -> None:
    subprocess.run([sys.executable, "-m", "cyclegen", *map(str, args)], check=True, stdout=subprocess.DEVNULL)


def train(family: str, seed: int, args: argparse.Namespace) -> dict[str, float | None]:
    """Train one run (unless its directory already holds a finished one) and read its numbers."""
    run_dir = args.workdir / f"{family}-seed{seed}"
    overrides = [f"domains.x.source={str(args.data)!r}", f"seed={seed}", *args.overrides]
    if args.updates:
        recipe, _ = load_recipe(recipe_path(family))
        overrides.append(f"train.steps={args.updates // recipe.schedule.mapper_steps}")
    if not (run_dir / "eval.json").is_file():
        cyclegen("run", recipe_path(family), "--out", run_dir, *[part for item in overrides for part in ("--set", item)])
    evaluation = json.loads((run_dir / "eval.json").read_text())
    samples = evaluation["G: z -> x"]
    cycle = evaluation.get("cycle: x -> E -> G", {})
    return {
        # From the run's start (its recipe.toml) to its evaluation: the same for reused runs.
        "wall s": (run_dir / "eval.json").stat().st_mtime - (run_dir / "recipe.toml").stat().st_mtime,
        "swd avg": samples["swd avg"],
        "ndb/k": samples["ndb/k"],
        "diversity": diversity(run_dir, seed),
        "l1": cycle.get("l1"),
        "psnr": cycle.get("psnr"),
        "sharpness": cycle.get("sharpness ratio"),
    }


def diversity(run_dir: Path, seed: int) -> float:
    """Mean per-pixel std across generated samples over the same across held-out faces."""
    out = run_dir / "diversity.npy"
    cyclegen("sample", run_dir, "-n", DIVERSITY_SAMPLES, "--seed", seed, "--out", out)
    samples = torch.from_numpy(np.load(out))
    domain = open_trained(run_dir).graph.domains["x"]
    real = domain.batch(DIVERSITY_SAMPLES, domain_generator(seed, "x", "diversity"), "test")
    return float(samples.std(0).mean() / real.std(0).mean())


def save_figures(family: str, run_dir: Path, figures: Path) -> None:
    figures.mkdir(parents=True, exist_ok=True)
    for kind in ("G-fixed", "cycle-x-E-G"):
        found = sorted((run_dir / "samples").glob(f"{kind}-step*.png"))
        if found:
            shutil.copy(found[-1], figures / f"anime_{family}_{kind.split('-')[0].lower()}.png")
    if family == "gan":
        return
    exp = open_trained(run_dir)
    domain = exp.graph.domains["x"]
    held = domain.held_out()
    assert held is not None, "the image domain keys its held-out faces"
    faces = held[1][:17]
    starts = torch.cat([faces[0:16:2], faces[16:17]])
    ends = torch.cat([faces[1:16:2], faces[16:17].flip(-1)])  # the last row: a face and its mirror image
    grid = interpolate_images(exp, encoder_of(exp.graph, None), decoder_of(exp.graph, None), starts, ends, 7)
    domain.show(grid, figures / f"anime_{family}_interpolation.png", columns=9)


def spread(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3g}"
    return f"{statistics.mean(values):.3g} ({min(values):.3g}-{max(values):.3g})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, required=True, help="run directories go here")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    parser.add_argument("--updates", type=int, help="generator updates per run (default: the presets' steps)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--parallel", type=int, default=1, help="runs at a time")
    parser.add_argument("--figures", type=Path, help="copy seed 0's final grids and draw interpolations here")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="extra recipe override")
    args = parser.parse_args()
    jobs = [(family, seed) for seed in args.seeds for family in reversed(args.families)]  # the longest first
    with ThreadPoolExecutor(args.parallel) as pool:
        results = dict(zip(jobs, pool.map(lambda job: train(*job, args), jobs)))
    if args.figures:
        for family in args.families:
            save_figures(family, args.workdir / f"{family}-seed{args.seeds[0]}", args.figures)
    print("| family | seed | " + " | ".join(COLUMNS) + " |")
    print("|---|---|" + "---|" * len(COLUMNS))
    for (family, seed), values in sorted(results.items(), key=lambda kv: (FAMILIES.index(kv[0][0]), kv[0][1])):
        cells = ["-" if values[c] is None else f"{values[c]:.3g}" for c in COLUMNS]
        print(f"| {family} | {seed} | " + " | ".join(cells) + " |")
    print(f"\nMean (min-max) over seeds {args.seeds}:\n")
    print("| family | " + " | ".join(COLUMNS) + " |")
    print("|---|" + "---|" * len(COLUMNS))
    for family in args.families:
        rows = [results[(family, seed)] for seed in args.seeds]
        cells = [spread([r[c] for r in rows]) if rows[0][c] is not None else "-" for c in COLUMNS]
        print(f"| {family} | " + " | ".join(cells) + " |")
    if {"gan", "aegan"} <= set(args.families):
        collapsed = {f: sum(results[(f, s)]["diversity"] < COLLAPSED for s in args.seeds) for f in ("gan", "aegan")}
        print(f"\nCollapsed (diversity < {COLLAPSED}): GAN in {collapsed['gan']} of {len(args.seeds)} seeds, "
              f"AEGAN in {collapsed['aegan']}.")
    if {"aae", "aegan"} <= set(args.families):
        sharper = sum(results[("aegan", s)]["sharpness"] > results[("aae", s)]["sharpness"] for s in args.seeds)
        print(f"AEGAN reconstructions sharper than the AAE's in {sharper} of {len(args.seeds)} seeds.")


if __name__ == "__main__":
    main()
