"""Where a toy run's low-quality samples lie: spread around the modes, or bridges between them.

The toy metric counts a sample as high quality within 3 std of its nearest mode. A G can miss
that in two ways: by drawing each mode wider than the data (blur), or by sending some of the
prior's mass to points between modes (bridges, where a continuous G crosses from one mode to
the next). The remedies differ, so this script tells them apart. For each trained run it draws
prior codes, decodes them with the run's generator (its `[ema]` average unless --raw-weights),
and prints the share of samples within 3 std of a mode, at 3-5 std, and beyond 5 std; the
median distance of the high-quality samples (a 2-D Gaussian's own: 1.17 std); and the miss
rate by the code's norm, in bins holding a half, four tenths, nine hundredths and a hundredth
of the prior, to show whether the misses come from the prior's tails or from all of it.

    python benchmarks/toy_misses.py RUN_DIR [RUN_DIR ...] [-n 200000] [--seed 1] [--raw-weights]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from cyclegen_toy2d import HIGH_QUALITY, MixtureDomain

from cyclegen.experiment import open_trained
from cyclegen.inference import apply, generator_of

#: Beyond this many std a sample is between modes, not at a mode's edge.
BRIDGE = 5.0
#: Quantiles of the code norm that bound the bins.
NORM_QUANTILES = (0.0, 0.5, 0.9, 0.99, 1.0)


def misses(run_dir: Path, n: int, seed: int, raw_weights: bool) -> str:
    """One markdown row: the run, where its samples fall, and the miss rate by code norm."""
    experiment = open_trained(run_dir, raw_weights=raw_weights)
    generator = generator_of(experiment.graph, None)
    source, target = experiment.graph.mapper_ends[generator]
    domain = experiment.graph.domains[target]
    if not isinstance(domain, MixtureDomain):
        raise SystemExit(f"{run_dir}: G draws domain {target!r}, not a toy mixture (ring or grid)")
    codes = experiment.graph.domains[source].batch(n, torch.Generator().manual_seed(seed))
    distance = torch.cdist(apply(experiment, generator, codes).double(), domain.centres.double()).min(1).values / domain.std
    good = distance <= HIGH_QUALITY  # as the toy metric counts it
    norm = codes.flatten(1).norm(dim=1)
    edges = torch.quantile(norm, torch.tensor(NORM_QUANTILES))
    by_norm = []
    for low, high in zip(edges[:-1], edges[1:]):
        inside = (norm >= low) & (norm <= high)
        by_norm.append(f"{100 * float((~good[inside]).double().mean()):.1f}")
    return (
        f"| {run_dir} | {experiment.weights_label()} | {100 * float(good.double().mean()):.1f} "
        f"| {100 * float(((distance > HIGH_QUALITY) & (distance < BRIDGE)).double().mean()):.1f} "
        f"| {100 * float((distance >= BRIDGE).double().mean()):.1f} | {float(distance[good].median()):.2f} "
        f"| {' / '.join(by_norm)} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="trained toy run directories")
    parser.add_argument("-n", type=int, default=200_000, help="prior codes to decode per run (default 200,000)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the prior codes (default 1)")
    parser.add_argument("--raw-weights", action="store_true", help="the trained G, not its [ema] average")
    args = parser.parse_args()
    print(
        "| run | weights | within 3 std % | 3-5 std % | beyond 5 std % | median std of the high-quality "
        "| miss % by code norm (lowest half / next 4 tenths / next 9 hundredths / top hundredth) |"
    )
    print("|---|---|---|---|---|---|---|")
    for run in args.runs:
        print(misses(run, args.n, args.seed, args.raw_weights), flush=True)


if __name__ == "__main__":
    main()
