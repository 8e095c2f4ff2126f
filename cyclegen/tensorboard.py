"""TensorBoard event files beside `metrics.jsonl`, for `train.tensorboard = true`.

`metrics.jsonl` stays the record of a run; this mirrors its records, the sample pictures and
the final evaluation into `<run dir>/tensorboard/`, so `tensorboard --logdir runs` compares
runs. TensorBoard is an optional extra (`pip install "cyclegen[tensorboard]"`): it is imported
here alone, and only when a recipe asks for it.

Resuming: a run resumed from the checkpoint of step S trains the steps after S again, and
truncates `metrics.jsonl` to S. Its event files cannot be truncated (they are append-only,
one new file per writer), so the new writer starts with a `purge_step`: TensorBoard's Python
reader (`EventAccumulator`, `--load_fast=false`) then drops the earlier files' events from that
step on, and the fast data server drops them anyway, series by series, when a step comes again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from cyclegen.errors import RecipeError

#: The run directory's folder of event files.
TENSORBOARD = "tensorboard"
#: metrics.jsonl record sections of {name: value}, and the tag prefix each is shown under.
SECTIONS = (("losses", "loss"), ("lr", "lr"), ("critic spread", "critic spread"))
#: The step suffix of a sample picture's name (`G-fixed-step000000300.png`).
STEP_SUFFIX = re.compile(r"-step\d+$")


def _summary_writer() -> type:
    """`SummaryWriter`, imported on first use so that a run without TensorBoard never needs it."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise RecipeError(
            f"train.tensorboard = true needs the tensorboard package, which cannot be imported ({exc}). "
            'Install it with `pip install "cyclegen[tensorboard]"`, or set train.tensorboard = false.'
        ) from None
    return SummaryWriter


def check_available() -> None:
    """Fail before training starts, not at the first log line after minutes of training."""
    _summary_writer()


def first_rewritten_step(resumed_step: int | None) -> int:
    """The first step whose events a run starting at `resumed_step` (None: a fresh start) writes
    again: after the checkpoint's step, whose log line was written before the checkpoint; but
    from step 0 when starting from step 0, since the step-0 samples are drawn again."""
    return resumed_step + 1 if resumed_step else 0


def series_name(path: Path) -> str:
    """The sample series a picture belongs to: its name without the step (`G-fixed`)."""
    return STEP_SUFFIX.sub("", path.stem)


def read_chw(path: Path) -> torch.Tensor:
    """A PNG as a channels-first uint8 tensor: grey (1 channel), RGB or RGBA as written."""
    with Image.open(path) as image:
        if image.mode not in ("L", "RGB", "RGBA"):  # palette, grey with alpha, 16-bit grey
            has_alpha = "A" in image.getbands() or "transparency" in image.info
            image = image.convert("RGBA" if has_alpha else "RGB")
        pixels = torch.from_numpy(np.array(image, dtype=np.uint8))
    return pixels[None] if pixels.ndim == 2 else pixels.permute(2, 0, 1)


class TensorBoardLog:
    """Writes a run's logs as TensorBoard events into `directory`, flushed at every call (as
    `metrics.jsonl` is appended at once), so a kill loses no more here than there.

    `purge_step` tells readers to forget events of earlier writers from that step on (see the
    module's docstring); None keeps them all.
    """

    def __init__(self, directory: Path, purge_step: int | None = None) -> None:
        self.writer = _summary_writer()(log_dir=str(directory), purge_step=purge_step)

    @classmethod
    def for_run(cls, run_dir: Path, resumed_step: int | None) -> TensorBoardLog:
        """The log of the run in `run_dir`, resumed from the checkpoint of `resumed_step` (None: fresh)."""
        return cls(Path(run_dir) / TENSORBOARD, first_rewritten_step(resumed_step))

    def record(self, record: Mapping[str, Any]) -> None:
        """One `metrics.jsonl` record, as scalars at its step and wall time."""
        scalars = {"speed/steps_per_s": record["steps_per_s"]}
        for section, prefix in SECTIONS:
            scalars.update({f"{prefix}/{name}": value for name, value in record.get(section, {}).items()})
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, value, global_step=record["step"], walltime=record["time"])
        self.writer.flush()

    def eval(self, step: int, metrics: Mapping[str, Mapping[str, float]]) -> None:
        """The evaluation's metrics ({group: {name: value}}) at `step`, tagged `eval/<group>/<name>`."""
        for group, values in metrics.items():
            for name, value in values.items():
                self.writer.add_scalar(f"eval/{group}/{name}", value, global_step=step)
        self.writer.flush()

    def images(self, step: int, paths: Sequence[Path]) -> None:
        """The sample pictures written at `step`, each under its series' name."""
        for path in paths:
            self.writer.add_image(series_name(Path(path)), read_chw(Path(path)), global_step=step, dataformats="CHW")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
