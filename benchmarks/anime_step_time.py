"""Seconds per E+G update of the full-size AEGAN reference recipe, against the Keras reference.

Times whole reference iterations (4 Dx + 4 Dz + 4 E+G updates) of recipes/aegan_anime.toml
through the engine and reports iteration time / 4, the figure the issue tracker quotes for
the published Keras code on this kind of machine (2.9 s at batch 16, 4.9 s at batch 32).
Variants run in the same process, alternating iteration by iteration so machine noise hits
them alike: the plain generator (upsample, tile the code, then 4x4 conv), the fused
upsample-convolution alone, the default G (fused, with the code folded out of the convs),
and the default with channels-last tensors or bf16 autocast (and, with --variants, compiled
with torch.compile: add "default G, compile"). The same architecture and
parameter count throughout. It also counts the FLOPs of one iteration (torch's FLOP counter)
and measures fp32 and bf16 matmul throughput in the same process, for achieved FLOP/s.

    python benchmarks/anime_step_time.py --batch 16 --batch 32
    python benchmarks/anime_step_time.py --device cuda --variants "default G" "default G, bf16" \
        "default G, channels_last" "default G, compile"   # on a GPU: also steps/s and hours per run

On a GPU the table adds iterations per second and the hours the recipe's 75,000 iterations
(the paper's 300,000 E+G updates, 4 per iteration) would take at that rate.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from cyclegen.allocator import keep_freed_memory
from cyclegen.experiment import open_recipe
from cyclegen.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "anime-faces-64.zip"
REFERENCE_S = {16: 2.9, 32: 4.9}  # Keras, 2-core CPU, per E+G update (issue 6)
PAPER_ITERATIONS = 75_000  # the recipe's train.steps: the paper's 300,000 E+G updates, 4 per iteration
VARIANTS = {
    "plain G": ["mappers.G.fused_upsample=false", "mappers.G.fold_code=false"],
    "fused upsample": ["mappers.G.fold_code=false"],
    "default G": [],  # fused upsample + folded code
    "default G, channels_last": ["train.channels_last=true"],
    "default G, bf16": ["train.precision='bf16'"],
    "default G, compile": ["train.compile=true"],  # not by default: inductor compiles for ~2 minutes
}
DEFAULT_VARIANTS = ["plain G", "fused upsample", "default G", "default G, channels_last", "default G, bf16"]


def trainer_for(batch: int, data: Path, overrides: list[str], device: str = "cpu") -> Trainer:
    exp = open_recipe(
        ROOT / "recipes" / "aegan_anime.toml",
        [f"domains.x.source={str(data)!r}", f"train.device={device!r}", f"train.batch_size={batch}", *overrides],
    )
    return Trainer(exp.graph, exp.recipe, torch.device(device))


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so a timer sees it finished (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def iteration_seconds(trainer: Trainer) -> float:
    synchronize(trainer.runtime.device)
    start = time.perf_counter()
    trainer.step()
    synchronize(trainer.runtime.device)
    return time.perf_counter() - start


def iteration_flops(trainer: Trainer) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        trainer.step()
    return counter.get_total_flops()


def matmul_flops_per_s(dtype: torch.dtype, device: torch.device, n: int = 2048, repeats: int = 9) -> float:
    a, b = (torch.randn(n, n, dtype=dtype, device=device) for _ in range(2))
    a @ b
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        a @ b
        synchronize(device)
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, action="append", help="batch size (repeatable; default 16)")
    parser.add_argument("--repeats", type=int, help="timed iterations per variant (default: 5 on CPU, 50 on GPU)")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=DEFAULT_VARIANTS)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--default-malloc", action="store_true", help="leave glibc's allocator untuned")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    args = parser.parse_args()
    device = torch.device(args.device)
    tuned = device.type == "cpu" and not args.default_malloc and keep_freed_memory()  # as `cyclegen run` does
    peak = {"fp32": matmul_flops_per_s(torch.float32, device), "bf16": matmul_flops_per_s(torch.bfloat16, device)}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, allocator tuned: {tuned}; 2048^2 matmul: "
          f"fp32 {peak['fp32'] / 1e9:.0f} GFLOP/s, bf16 {peak['bf16'] / 1e9:.0f} GFLOP/s\n")
    gpu = device.type != "cpu"
    repeats = args.repeats or (50 if gpu else 5)
    # The Keras figures are CPU figures; on a GPU the question is the hours per paper-length run.
    print("| batch | variant | iteration (s) | per E+G update (s) | "
          + ("iterations/s | hours per 75,000 iterations " if gpu else "Keras reference (s) | speed-up vs Keras ")
          + "| vs plain G | GFLOP / iteration | achieved GFLOP/s | % of matmul |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for batch in args.batch or [16]:
        trainers = {name: trainer_for(batch, args.data, VARIANTS[name], args.device) for name in args.variants}
        # The first step is the warm-up (and the compilation); it also counts FLOPs where the
        # counter can see them (compiled kernels bypass it).
        flops = {name: 0 if t.runtime.compiled else iteration_flops(t) for name, t in trainers.items()}
        for trainer in trainers.values():
            for _ in range(3 if gpu else int(trainer.runtime.compiled)):  # GPU: autotuning and allocator warm-up
                trainer.step()
        times: dict[str, list[float]] = {name: [] for name in trainers}
        for _ in range(repeats):
            for name, trainer in trainers.items():
                times[name].append(iteration_seconds(trainer))
        medians = {name: statistics.median(values) for name, values in times.items()}
        for name, seconds in medians.items():
            update = seconds / 4
            reference = REFERENCE_S.get(batch)
            versus = f"{reference or '-'} | " + (f"{reference / update:.2f}x" if reference else "-")
            if gpu:
                versus = f"{1 / seconds:.1f} | {PAPER_ITERATIONS * seconds / 3600:.2f}"
            plain = f"{medians['plain G'] / seconds:.2f}x" if "plain G" in medians else "-"
            dtype = "bf16" if "bf16" in name else "fp32"
            counted = flops[name] or flops.get("default G", 0)  # compiled: the same arithmetic as eager
            rate = f"{counted / seconds / 1e9:.0f} | {100 * counted / seconds / peak[dtype]:.0f}%" if counted else "- | -"
            print(f"| {batch} | {name} | {seconds:.4f} | {update:.4f} | {versus} | {plain} "
                  f"| {counted / 1e9:.0f} | {rate} |")


if __name__ == "__main__":
    main()
