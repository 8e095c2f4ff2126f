"""Seconds per forward+backward of the full-size AEGAN generator, fused upsampling on and off.

Both generators hold the same weights and run in the same process, alternating repeat by
repeat so machine noise hits them alike; the table gives medians and plain / fused ratios.
G is 96% of a reference training step, so its ratio is close to the step's.

    python benchmarks/fused_upsample.py --batch 16 --batch 32 --threads 1 --repeats 9
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import Tensor

from cyclegen import Domain
from cyclegen_aegan.networks import AEGANGenerator
from cyclegen_priors import Gaussian


class ImageShape(Domain):
    """G's target domain reduced to what G reads from it: the image shape."""

    def batch(self, n: int, generator: torch.Generator, split: str = "train") -> Tensor:
        raise NotImplementedError("G only needs the shape")


def generators(size: int, latent: int) -> dict[bool, AEGANGenerator]:
    """The reference G fused and plain, with one set of weights."""
    z, x = Gaussian("z", dim=latent), ImageShape("x", (3, size, size))
    fused = AEGANGenerator(z, x, fused_upsample=True)
    plain = AEGANGenerator(z, x, fused_upsample=False)
    plain.load_state_dict(fused.state_dict())
    return {True: fused, False: plain}


def step(g: AEGANGenerator, z: Tensor) -> float:
    """Seconds for one forward and backward pass of `g` on `z`."""
    start = time.perf_counter()
    g(z).square().mean().backward()
    return time.perf_counter() - start


def measure(batch: int, size: int, latent: int, repeats: int) -> dict[bool, float]:
    """Median seconds per forward+backward for fused (True) and plain (False), after a warm-up."""
    nets = generators(size, latent)
    z = torch.randn(batch, latent)
    times: dict[bool, list[float]] = {fused: [] for fused in nets}
    for g in nets.values():
        step(g, z)
    for _ in range(repeats):
        for fused, g in nets.items():
            g.zero_grad(set_to_none=True)
            times[fused].append(step(g, z))
    return {fused: statistics.median(t) for fused, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, action="append", help="batch size (repeatable; default 16 and 32)")
    parser.add_argument("--size", type=int, default=64, choices=(32, 64, 128), help="image size (default 64)")
    parser.add_argument("--latent", type=int, default=32, help="latent dimension (default 32, the reference)")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.size} px, "
        f"latent {args.latent}, medians of {args.repeats}"
    )
    print("| batch | plain (s) | fused (s) | plain / fused |")
    print("|---|---|---|---|")
    for batch in args.batch or [16, 32]:
        r = measure(batch, args.size, args.latent, args.repeats)
        print(f"| {batch} | {r[False]:.3f} | {r[True]:.3f} | {r[False] / r[True]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
