"""Data-parallel training across processes started by torchrun (one per GPU, or CPU with gloo).

Every rank builds the same graph from the same seed and draws the same global batch from
the same domain streams, keeping only its own slice, so the ranks together see exactly the
batch a single process would; gradients are averaged across ranks before every optimiser
step (as DistributedDataParallel does), which keeps the weights identical on every rank.
The `DistributedDataParallel` wrapper itself does not fit the engine: one network appears in
several paths of one backward pass, and critics take part in mapper updates without
receiving gradients (`backward(inputs=...)`), which its reducer cannot follow.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn

from cyclegen.errors import CycleGenError

#: Gradients are all-reduced in flat buckets of about this many bytes (DDP's default size).
BUCKET_BYTES = 25 * 2**20


@dataclass(frozen=True)
class Ranks:
    """This process's place among the torchrun processes."""

    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SINGLE = Ranks(0, 1, 0)


def from_environment() -> Ranks:
    """The ranks torchrun describes in the environment (a single process without it)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return SINGLE
    return Ranks(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))


def start(ranks: Ranks, device: torch.device) -> None:
    """Join the process group: NCCL between GPUs, gloo on CPU."""
    if ranks.world_size == 1 or dist.is_initialized():
        return
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def stop() -> None:
    """Leave the process group together: a rank that tears down its connections while another
    still works (rank 0 writing samples and evaluating) can abort in the backend's threads."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


@contextmanager
def process_group(ranks: Ranks, device: torch.device) -> Iterator[None]:
    """The process group of a torchrun launch, joined for the block and left together after it."""
    start(ranks, device)
    try:
        yield
    finally:
        stop()


def local_device(device: torch.device, ranks: Ranks) -> torch.device:
    """Each rank's own GPU (torchrun's LOCAL_RANK); CPU stays CPU."""
    if device.type == "cuda" and ranks.world_size > 1:
        torch.cuda.set_device(ranks.local_rank)
        return torch.device("cuda", ranks.local_rank)
    return device


def shard_size(batch_size: int, ranks: Ranks) -> int:
    if batch_size % ranks.world_size:
        raise CycleGenError(
            f"train.batch_size {batch_size} is the global batch and must split evenly over "
            f"{ranks.world_size} processes; use a multiple of {ranks.world_size}"
        )
    return batch_size // ranks.world_size


def own_shard(batch: Tensor, ranks: Ranks) -> Tensor:
    """This rank's slice of a global batch."""
    size = len(batch) // ranks.world_size
    return batch[ranks.rank * size : (ranks.rank + 1) * size]


def average_gradients(params: list[nn.Parameter], world_size: int) -> None:
    """Replace each gradient by its mean over ranks, in flat buckets (few, large messages)."""
    grads = [p.grad for p in params if p.grad is not None]
    bucket: list[Tensor] = []
    size = 0
    for grad in grads:
        bucket.append(grad)
        size += grad.numel() * grad.element_size()
        if size >= BUCKET_BYTES:
            _reduce_bucket(bucket, world_size)
            bucket, size = [], 0
    if bucket:
        _reduce_bucket(bucket, world_size)


def _reduce_bucket(grads: list[Tensor], world_size: int) -> None:
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat.div_(world_size)
    offset = 0
    for grad in grads:
        grad.copy_(flat[offset : offset + grad.numel()].view_as(grad))
        offset += grad.numel()


def mean_over_ranks(values: Tensor) -> Tensor:
    """The element-wise mean of `values` over ranks (a no-op for a single process)."""
    if not dist.is_initialized():
        return values
    values = values.clone()
    dist.all_reduce(values)
    return values / dist.get_world_size()


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when `flag` is true on any (a collective stop decision)."""
    return bool(max_over_ranks(int(flag), device))


def max_over_ranks(value: int, device: torch.device) -> int:
    """The largest of every rank's `value`, on every rank (a collective decision)."""
    if not dist.is_initialized():
        return value
    tensor = torch.tensor([value], device=device, dtype=torch.int64)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return int(tensor.item())


def gather_objects(value: object) -> list[object]:
    """Every rank's `value`, in rank order, on every rank (pickled; for small state only)."""
    if not dist.is_initialized():
        return [value]
    gathered: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered
