"""Where and how networks run: device, precision, memory layout, compilation, torchrun.

The trainer asks this object for regions and conversions (an autocast region, a float32 view
of a score, a batch placed on the device, averaged gradients, a gradient scaler) and so reads
as the algorithm alone. Sampling and evaluation use `eval_mode` and `eager` from here too.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import torch
from torch import Tensor, nn

from cyclegen.distributed import SINGLE, Ranks, average_gradients, own_shard, shard_size
from cyclegen.recipe import TrainSpec
from cyclegen.state import State

#: A reusable do-nothing context, for regions that need none in this configuration.
NO_CONTEXT = nullcontext()
#: The autocast dtype of each `train.precision`; None runs in float32 without autocast.
AUTOCAST_DTYPES: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@contextmanager
def eval_mode(modules: Iterable[nn.Module]) -> Iterator[None]:
    """Temporarily switch modules to inference behaviour (no noise, no dropout)."""
    modules = list(modules)
    previous = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        yield
    finally:
        for m, was in zip(modules, previous):
            m.train(was)


class Runtime:
    """How one process runs the networks of a run, and the gradient scalers that go with it.

    Stateful: its state is the enabled (fp16) scalers' scales and growth counters, so resume
    stays exact. A checkpoint of another precision has none for this runtime's scalers; they
    then start afresh, since precision may change between runs of one directory.
    """

    def __init__(
        self,
        device: torch.device,
        ranks: Ranks = SINGLE,
        precision: str = "fp32",
        channels_last: bool = False,
        compiled: bool = False,
    ) -> None:
        self.device = device
        self.ranks = ranks
        self.precision = precision
        self.autocast_dtype = AUTOCAST_DTYPES[precision]
        self.full_precision = self.autocast_dtype is None  # then no cast to float32 is needed
        self.channels_last = channels_last
        self.compiled = compiled
        #: The enabled (fp16) gradient scalers, by checkpoint name.
        self.scalers: dict[str, torch.amp.GradScaler] = {}

    @classmethod
    def for_training(cls, train: TrainSpec, device: torch.device, ranks: Ranks = SINGLE) -> "Runtime":
        shard_size(train.batch_size, ranks)  # refuses a global batch that does not split evenly
        return cls(device, ranks, train.precision, train.channels_last, train.compile)

    def prepare(self, networks: Iterable[nn.Module]) -> None:
        """Convert 4-D weights to channels-last and compile, in place, as `[train]` asks.

        `Module.compile` compiles lazily (on the first call) and, unlike wrapping in
        `torch.compile(module)`, keeps the state_dict keys, so checkpoints stay interchangeable
        between compiled and eager runs.
        """
        for net in networks:
            if self.channels_last:
                net.to(memory_format=torch.channels_last)
            if self.compiled:
                net.compile()

    def autocast(self) -> AbstractContextManager[object]:
        """The region networks run in: autocast to the recipe's precision; for fp32 none at all
        (entering even a disabled autocast costs microseconds per network call)."""
        if self.autocast_dtype is None:
            return NO_CONTEXT
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def as_float(self, tensor: Tensor) -> Tensor:
        """`tensor` in float32 for a loss; in an fp32 run it already is (and .float() costs a call)."""
        return tensor if self.full_precision else tensor.float()

    def eager(self) -> AbstractContextManager[object]:
        """Run compiled networks eagerly: for the penalties' double backward, which compiled
        code does not support, and for samples and evaluation, not worth compiling."""
        return torch.compiler.set_stance("force_eager") if self.compiled else NO_CONTEXT

    def place(self, batch: Tensor) -> Tensor:
        """This process's share of a global batch, on the device.

        Image batches (4-D) are made channels-last when the networks are, so that convolutions
        need no layout conversion.
        """
        if self.ranks.world_size > 1:  # the whole global batch is drawn, so streams stay shared
            batch = own_shard(batch, self.ranks)
        layout = torch.channels_last if self.channels_last and batch.dim() == 4 else torch.preserve_format
        return batch.to(self.device, non_blocking=True, memory_format=layout)

    def average_gradients(self, params: list[nn.Parameter]) -> None:
        """Under torchrun, the mean gradient over ranks (before unscaling and clipping, so
        every rank clips, skips or steps alike and the weights stay identical)."""
        if self.ranks.world_size > 1:
            average_gradients(params, self.ranks.world_size)

    def scaler(self, name: str) -> torch.amp.GradScaler:
        """A new gradient scaler for one backward, checkpointed under `name`; disabled (a
        pass-through) unless training in fp16."""
        scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        if scaler.is_enabled():
            self.scalers[name] = scaler
        return scaler

    def state_dict(self) -> State:
        return {name: scaler.state_dict() for name, scaler in self.scalers.items()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for name, scaler in self.scalers.items():
            if name in state:
                scaler.load_state_dict(state[name])
