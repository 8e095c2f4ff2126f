"""Seconds per forward+backward of the full-size AEGAN generator with each exact rewrite.

Variants: the plain reference arithmetic, the fused upsample-convolution alone
(fused_upsample), and with the latent code folded out of the convs too (fold_code; the
default). All hold the same weights and run in the same process, alternating repeat by repeat
so machine noise hits them alike; the table gives medians and plain / variant ratios.
G is 96% of a reference training step, so its ratio is close to the step's.

    python benchmarks/generator_rewrites.py --batch 16 --batch 32 --repeats 9
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


#: Variant name -> AEGANGenerator rewrite options.
VARIANTS = {
    "plain": {"fused_upsample": False, "fold_code": False},
    "fused upsample": {"fused_upsample": True, "fold_code": False},
    "fused upsample + folded code": {"fused_upsample": True, "fold_code": True},
}


def generators(size: int, latent: int) -> dict[str, AEGANGenerator]:
    """The reference G with each set of rewrites, all with one set of weights."""
    z, x = Gaussian("z", dim=latent), ImageShape("x", (3, size, size))
    nets = {name: AEGANGenerator(z, x, **options) for name, options in VARIANTS.items()}
    for net in nets.values():
        net.load_state_dict(nets["plain"].state_dict())
    return nets


def step(g: AEGANGenerator, z: Tensor) -> float:
    """Seconds for one forward and backward pass of `g` on `z`."""
    start = time.perf_counter()
    g(z).square().mean().backward()
    return time.perf_counter() - start


def measure(batch: int, size: int, latent: int, repeats: int) -> dict[str, float]:
    """Median seconds per forward+backward of each variant, after a warm-up."""
    nets = generators(size, latent)
    z = torch.randn(batch, latent)
    times: dict[str, list[float]] = {name: [] for name in nets}
    for g in nets.values():
        step(g, z)
    for _ in range(repeats):
        for name, g in nets.items():
            g.zero_grad(set_to_none=True)
            times[name].append(step(g, z))
    return {name: statistics.median(t) for name, t in times.items()}


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
    print("| batch | variant | forward+backward (s) | plain / variant |")
    print("|---|---|---|---|")
    for batch in args.batch or [16, 32]:
        r = measure(batch, args.size, args.latent, args.repeats)
        for name, seconds in r.items():
            print(f"| {batch} | {name} | {seconds:.3f} | {r['plain'] / seconds:.2f} |", flush=True)


if __name__ == "__main__":
    main()
