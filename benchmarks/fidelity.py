"""The fidelity metrics measured: do they see what they should, what small sample counts do to
them, and how fast the FID Inception-v3 runs here.

1. Known degradations of the 25-mode 2-D grid, scored on its raw coordinates against held-out
   grid samples, over `--seeds` seeds: the same distribution, 13 of 25 modes, one mode, modes
   3x wider, and points spread uniformly over the grid's square. Median and worst seed.
2. Sample-count bias: FD and KID between two samples of one 64-D Gaussian (the true distance
   is 0) at growing counts, over the seeds: FD's bias shrinks like 1/N, KID is unbiased.
3. Inception throughput on 64x64 images (random weights in the published layout: the speed
   does not depend on them), images per second at batches of 1 to 50, against batch 1.

    python benchmarks/fidelity.py                       # all three, 10 seeds
    python benchmarks/fidelity.py --parts degradations --seeds 3
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from cyclegen.plugins import load_plugins
from cyclegen_fidelity.distances import frechet_distance, kernel_distance
from cyclegen_fidelity.features import InceptionFeatures
from cyclegen_fidelity.inception import FIDInceptionV3
from cyclegen_fidelity.manifold import density_coverage, precision_recall

PARTS = ("degradations", "bias", "speed")


def grid_domain():
    return load_plugins().registry.build("domain", "grid", "benchmark", {}, name="x")


def degraded(kind: str, grid, n: int, generator: torch.Generator) -> torch.Tensor:
    """`n` points of the grid as `kind` distorts it."""
    centres, std = grid.centres, grid.std
    if kind == "same distribution":
        return grid.batch(n, generator, "test")
    if kind == "13 of 25 modes":
        chosen = centres[torch.randint(13, (n,), generator=generator)]
    elif kind == "one mode":
        chosen = centres[torch.zeros(n, dtype=torch.long)]
    elif kind == "modes 3x wider":
        return centres[torch.randint(len(centres), (n,), generator=generator)] + 3 * std * torch.randn(
            n, 2, generator=generator
        )
    elif kind == "uniform over the square":
        low, high = centres.min(0).values - 1, centres.max(0).values + 1
        return low + (high - low) * torch.rand(n, 2, generator=generator)
    else:
        raise ValueError(kind)
    return chosen + std * torch.randn(n, 2, generator=generator)


def spread(values: list[float], worst: str) -> str:
    pick = max if worst == "max" else min
    return f"{statistics.median(values):.3f} (worst {pick(values):.3f})"


def degradations(seeds: int, n: int) -> None:
    grid = grid_domain()
    kinds = ("same distribution", "13 of 25 modes", "one mode", "modes 3x wider", "uniform over the square")
    print(
        f"\n### Known degradations of the 2-D grid, raw coordinates, {n} samples each, {seeds} seeds: median (worst)\n"
    )
    print("| samples | precision | recall | density | coverage | FD |")
    print("|---|---|---|---|---|---|")
    for kind in kinds:
        rows: dict[str, list[float]] = {key: [] for key in ("precision", "recall", "density", "coverage", "fd")}
        for seed in range(seeds):
            real = grid.batch(n, torch.Generator().manual_seed(10_000 + seed), "test")
            fake = degraded(kind, grid, n, torch.Generator().manual_seed(seed))
            precision, recall = precision_recall(real, fake)
            density, coverage = density_coverage(real, fake)
            for key, value in zip(rows, (precision, recall, density, coverage, frechet_distance(real, fake))):
                rows[key].append(value)
        worst = {"fd": "max", "density": "min"}
        cells = [spread(rows[key], worst.get(key, "min")) for key in rows]
        print(f"| {kind} | " + " | ".join(cells) + " |")


def bias(seeds: int, dims: int) -> None:
    counts = (250, 500, 1000, 2000, 5000, 10_000)
    print(f"\n### FD and KID between two samples of one {dims}-D standard Gaussian (true value 0), {seeds} seeds\n")
    print("| samples per set | FD median (worst) | FD x N / d | KID x 1e3 median (worst) |")
    print("|---|---|---|---|")
    for n in counts:
        fds, kids = [], []
        for seed in range(seeds):
            generator = torch.Generator().manual_seed(seed)
            a, b = torch.randn(n, dims, generator=generator), torch.randn(n, dims, generator=generator)
            fds.append(frechet_distance(a, b))
            kids.append(1e3 * kernel_distance(a, b, subsets=20, subset_size=min(n, 1000), generator=generator)[0])
        fd = statistics.median(fds)
        worst_kid = max(kids, key=abs)
        print(
            f"| {n:,} | {fd:.4f} ({max(fds):.4f}) | {fd * n / dims:.2f} | {statistics.median(kids):+.4f} ({worst_kid:+.4f}) |"
        )


def speed(repeats: int) -> None:
    import tempfile
    from pathlib import Path

    batches = (1, 10, 25, 50)
    with tempfile.TemporaryDirectory() as folder:
        weights = Path(folder) / "random.pth"
        torch.save({k: v for k, v in FIDInceptionV3().state_dict().items() if "num_batches" not in k}, weights)
        images = torch.rand(50, 3, 64, 64) * 2 - 1
        domain = type("Images", (), {"name": "x", "shape": (3, 64, 64)})()
        rates = {}
        for batch in batches:
            extractor = InceptionFeatures(weights=str(weights), batch=batch, device="cpu")
            rates[batch] = len(images) / median_seconds(lambda: extractor(images, domain), repeats)
    print(
        f"\n### FID Inception-v3 on 64x64 images, {torch.get_num_threads()} threads, 50 images, median of {repeats}\n"
    )
    print("| batch | images/s | vs batch 1 | 10,000 images | 50,000 images |")
    print("|---|---|---|---|---|")
    for batch, rate in rates.items():
        print(
            f"| {batch} | {rate:.1f} | {rate / rates[1]:.2f}x | {10_000 / rate / 60:.1f} min | {50_000 / rate / 60:.1f} min |"
        )
    layouts = {}
    x = torch.randn(10, 3, 299, 299)
    for layout in (torch.contiguous_format, torch.channels_last):
        network = FIDInceptionV3().eval().to(memory_format=layout)
        layouts[layout] = 10 / median_seconds(lambda: network(x.contiguous(memory_format=layout)), repeats)
    ratio = layouts[torch.channels_last] / layouts[torch.contiguous_format]
    print(
        f"\nthe bare network at batch 10: {layouts[torch.contiguous_format]:.1f} images/s contiguous, "
        f"{layouts[torch.channels_last]:.1f} channels-last ({ratio:.2f}x; the extractor runs channels-last)"
    )


def median_seconds(work, repeats: int) -> float:
    with torch.inference_mode():
        work()
        timings = []
        for _ in range(repeats):
            start = time.perf_counter()
            work()
            timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--samples", type=int, default=2500, help="points per set in the degradations")
    parser.add_argument("--dims", type=int, default=64, help="dimensions of the Gaussian in the bias part")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats in the speed part")
    args = parser.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    if "degradations" in args.parts:
        degradations(args.seeds, args.samples)
    if "bias" in args.parts:
        bias(args.seeds, args.dims)
    if "speed" in args.parts:
        speed(args.repeats)


if __name__ == "__main__":
    main()
