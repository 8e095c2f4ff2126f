"""GAN vs AAE vs AEGAN on the anime faces with the small CPU presets (same data, steps, seed).

Trains recipes/{gan,aae,aegan}_anime_small.toml through the CLI, reads each run's eval.json
and prints a markdown table: SWD and NDB of samples against held-out faces, held-out
reconstruction L1 / PSNR and the sharpness ratio of reconstructions (AAE, AEGAN). With
--figures DIR it copies the final sample and reconstruction grids there and draws an
interpolation grid per run.

    python benchmarks/anime_compare.py --workdir /tmp/anime --figures docs/images
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "anime-faces-64.zip"
FAMILIES = ("gan", "aae", "aegan")


def cyclegen(*args: object) -> None:
    subprocess.run([sys.executable, "-m", "cyclegen", *map(str, args)], check=True, stdout=subprocess.DEVNULL)


def train(family: str, args: argparse.Namespace) -> dict[str, float | None]:
    run_dir = args.workdir / family
    overrides = [f"domains.x.source={str(args.data)!r}", f"seed={args.seed}", *args.overrides]
    if args.steps:
        overrides.append(f"train.steps={args.steps}")
    start = time.perf_counter()
    cyclegen("run", ROOT / "recipes" / f"{family}_anime_small.toml", "--out", run_dir,
             *[part for item in overrides for part in ("--set", item)])
    wall = time.perf_counter() - start
    evaluation = json.loads((run_dir / "eval.json").read_text())
    samples = evaluation["G: z -> x"]
    cycle = evaluation.get("cycle: x -> E -> G", {})
    if args.figures:
        save_figures(family, run_dir, args)
    return {
        "wall s": wall,
        "swd avg": samples["swd avg"],
        "ndb/k": samples["ndb/k"],
        "l1": cycle.get("l1"),
        "psnr": cycle.get("psnr"),
        "sharpness": cycle.get("sharpness ratio"),
    }


def save_figures(family: str, run_dir: Path, args: argparse.Namespace) -> None:
    args.figures.mkdir(parents=True, exist_ok=True)
    samples = run_dir / "samples"
    for kind in ("G-fixed", "cycle-x-E-G"):
        found = sorted(samples.glob(f"{kind}-step*.png"))
        if found:
            shutil.copy(found[-1], args.figures / f"anime_{family}_{kind.split('-')[0].lower()}.png")
    if family != "gan":
        cyclegen("interpolate", run_dir, args.data, "--rows", 9, "--out",
                 args.figures / f"anime_{family}_interpolation.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, required=True, help="run directories go here")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    parser.add_argument("--steps", type=int, help="override train.steps (default: the presets')")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--figures", type=Path, help="copy final grids and draw interpolations here")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="extra recipe override")
    args = parser.parse_args()
    rows = {family: train(family, args) for family in args.families}
    columns = ["wall s", "swd avg", "ndb/k", "l1", "psnr", "sharpness"]
    print("| family | " + " | ".join(columns) + " |")
    print("|---|" + "---|" * len(columns))
    for family, values in rows.items():
        cells = ["-" if values[c] is None else f"{values[c]:.3g}" for c in columns]
        print(f"| {family} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
