"""How many CPU threads a run trains with when the recipe leaves it to cyclegen.

A step of a small model is many tiny kernels. Intra-op threads add a wake-up and a join to each
kernel and save nothing, and on a busy machine a thread that waits for a core stalls every
kernel: `benchmarks/threads.py` measured the 2-D toy recipes 4-5x faster at one thread than at
PyTorch's default beside a busy process, and about as fast on an idle machine (docs/benchmarks.md,
"Threads"). The image presets' convolutions gain 1.45x from a second core when it is free, so
the choice rests on the work of one step, counted in FLOPs.
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from cyclegen.graph import Graph
from cyclegen.recipe import TrainSpec
from cyclegen.runtime import eval_mode

#: PyTorch's own choice (one thread per core), taken before any run sets another.
DEFAULT_THREADS = torch.get_num_threads()
#: Below this many forward FLOPs per step (every mapper and critic on one batch), one thread is
#: as fast or faster than several on an idle machine and far faster on a busy one.
SMALL_STEP_FLOPS = 2e8


def forward_flops(graph: Graph, batch_size: int) -> int:
    """FLOPs of one forward pass of every mapper and critic on a batch of `batch_size`, counted
    on two zero samples (torch's FLOP counter) and scaled: the size of a step's kernels."""
    inputs = {name: graph.mapper_ends[name][0] for name in graph.mappers}
    inputs.update(graph.critic_domains)
    with torch.no_grad(), FlopCounterMode(display=False) as counter, eval_mode(graph.networks.values()):
        for name, domain in inputs.items():
            network = graph.networks[name]
            device = next(network.parameters()).device
            network(torch.zeros(2, *graph.domains[domain].shape, device=device))
    return counter.get_total_flops() * batch_size // 2


def auto_threads(graph: Graph, batch_size: int, device: torch.device) -> int:
    """What `train.threads = "auto"` picks for `graph` at `batch_size` on `device`."""
    return threads_for(forward_flops(graph, batch_size), device)


def threads_for(flops: int, device: torch.device) -> int:
    """One thread for a CPU run whose steps are small; otherwise PyTorch's default (one per core)."""
    return 1 if device.type == "cpu" and flops < SMALL_STEP_FLOPS else DEFAULT_THREADS


def apply_threads(train: TrainSpec, graph: Graph, device: torch.device) -> str:
    """Set the CPU threads `train.threads` asks for; returns the start-up line saying how many and why."""
    if train.threads == "auto":
        flops = forward_flops(graph, train.batch_size)
        threads = threads_for(flops, device)
        why = f"auto: a step's forward passes take {flops / 1e9:.2g} GFLOP; set train.threads to choose"
    else:
        threads, why = train.threads, "train.threads"
    torch.set_num_threads(threads)
    return f"device {device}, {threads} CPU thread(s) ({why})"
