"""CycleGAN sketch <-> colour on the anime faces: translations scored against the truth.

Trains recipes/cyclegan_anime_sketch_small.toml through the CLI (or reuses a trained run
directory), then scores both directions on every held-out face, whose sketch and colour
image are both known, against two baselines computed in the same script: the identity
mapping (the input itself as the answer) and the mean training image of the target domain
(the best constant answer under L2). Beside L1 and PSNR against the truth it prints, for
sketch -> colour, each answer sketched again against the input sketch ("redrawn PSNR"), and
for every answer its pairwise L1 over the truth's (0 for one answer to every input). Prints
a markdown table; with --figures DIR writes (input, translation, truth) grids there. A run
that keeps `[ema]` averages is scored by them, as every command scores it; `--raw-weights`
scores its trained mappers instead, so that one run compares the two.

    python benchmarks/cyclegan_sketch.py --workdir /tmp/cyclegan --figures docs/images
    python benchmarks/cyclegan_sketch.py --workdir /tmp/cyclegan --no-train --raw-weights
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from cyclegen.evaluate import map_in_chunks, redrawn_metrics, translators, true_pairs
from cyclegen.experiment import Experiment, open_trained
from cyclegen.streams import domain_generator

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "anime-faces-64.zip"
RECIPE = ROOT / "recipes" / "cyclegan_anime_sketch_small.toml"
MEAN_SAMPLES = 5000
FIGURE_ROWS = 12
FIGURE_ZOOM = 3  # 32-pixel faces are too small to judge at their own size


def train(args: argparse.Namespace) -> float:
    overrides = [f"domains.{d}.source={str(args.data)!r}" for d in ("sketch", "colour")] + args.overrides
    if args.steps:
        overrides.append(f"train.steps={args.steps}")
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "cyclegen", "run", RECIPE, "--out", args.workdir,
         *[part for item in overrides for part in ("--set", item)]],
        check=True, stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def score(exp: Experiment, mapper: str) -> dict[str, dict[str, float]]:
    """For the mapper and both baselines, on every held-out pair: the target's pair metrics
    against the truth; where the source is a view of the target (a sketch of a colour face),
    each answer drawn back into that view against the input ("redrawn"); and the answers'
    pairwise L1 over the truth's (1 for answers as varied as the data, 0 for one answer)."""
    graph = exp.inference_graph()  # the [ema] averages, unless --raw-weights
    pairs = true_pairs(graph, mapper, n=10**9)
    assert pairs is not None, "the two domains share no held-out images"
    inputs, truth = pairs
    source_name, target_name = graph.mapper_ends[mapper]
    source, target = graph.domains[source_name], graph.domains[target_name]
    mean = target.batch(MEAN_SAMPLES, domain_generator(0, target_name, "mean"), "train").mean(0)
    answers = {
        "CycleGAN": map_in_chunks(graph.mappers[mapper], inputs, exp.device),
        "identity": inputs,
        f"mean {target_name} image": mean.expand_as(truth),
    }
    truth_spread = pairwise_l1(truth)
    rows = {}
    for label, output in answers.items():
        rows[label] = {"pairs": float(len(inputs)), "diversity": pairwise_l1(output) / truth_spread}
        for metric in target.pair_metrics():
            rows[label].update(metric.evaluate(truth, output, target))
        rows[label].update(redrawn_metrics(source, target, inputs, output.expand_as(truth)))
    return rows


def pairwise_l1(images: torch.Tensor) -> float:
    """Mean L1 between each image and the next in a fixed shuffled order (never itself)."""
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    return float((images[order].double() - images[order.roll(1)].double()).abs().mean())


def figure(exp: Experiment, mapper: str, path: Path) -> None:
    """Rows of (input, translation, truth) for the first held-out faces, enlarged."""
    graph = exp.inference_graph()
    inputs, truth = true_pairs(graph, mapper, n=FIGURE_ROWS)
    outputs = map_in_chunks(graph.mappers[mapper], inputs, exp.device)
    target = graph.domains[graph.mapper_ends[mapper][1]]
    triples = torch.stack([inputs.expand_as(truth), outputs, truth], 1).flatten(0, 1)
    target.show(F.interpolate(triples, scale_factor=FIGURE_ZOOM, mode="nearest"), path, columns=6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, required=True, help="the run directory (trained here unless --no-train)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--steps", type=int, help="override train.steps (default: the preset's)")
    parser.add_argument("--no-train", action="store_true", help="score an already trained run directory")
    parser.add_argument("--figures", type=Path, help="write (input, translation, truth) grids here")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="extra recipe override")
    parser.add_argument("--raw-weights", action="store_true", help="score the trained mappers, not their [ema] averages")
    args = parser.parse_args()
    if not args.no_train:
        print(f"trained in {train(args):.0f} s", file=sys.stderr)
    exp = open_trained(args.workdir, raw_weights=args.raw_weights)
    print("| direction | answer | held-out pairs | L1 | PSNR dB | redrawn PSNR dB | pairwise L1 / truth's |")
    print("|---|---|---|---|---|---|---|")
    for mapper in translators(exp.graph):
        source, target = exp.graph.mapper_ends[mapper]
        for label, row in score(exp, mapper).items():
            redrawn = f"{row['redrawn psnr']:.2f}" if "redrawn psnr" in row else "-"
            print(f"| {mapper}: {source} -> {target} | {label} | {row['pairs']:.0f} | {row['l1']:.4f} | "
                  f"{row['psnr']:.2f} | {redrawn} | {row['diversity']:.2f} |")
        if args.figures:
            args.figures.mkdir(parents=True, exist_ok=True)
            figure(exp, mapper, args.figures / f"cyclegan_{source}_to_{target}.png")


if __name__ == "__main__":
    main()
