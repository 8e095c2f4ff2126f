"""A training run: the run directory, the step loop, samples, checkpoints, logs and resume.

`train_recipe` is the one way a run starts, from `cyclegen run`, under torchrun or from
Python: it joins the process group, opens the recipe on this process's device, resumes from
the run directory, trains, and leaves the group again however the run ends.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from cyclegen import __version__, distributed
from cyclegen.allocator import keep_freed_memory
from cyclegen.checkpoint import latest_checkpoint, save_checkpoint
from cyclegen.distributed import SINGLE, Ranks, any_rank, barrier, mean_over_ranks
from cyclegen.errors import CycleGenError, NonFiniteLossError
from cyclegen.evaluate import evaluate_experiment, metrics_json
from cyclegen.experiment import CHECKPOINTS, RUN_RECIPE, Experiment, open_recipe
from cyclegen.graph import Graph
from cyclegen.progress import Reporter
from cyclegen.recipe import load_recipe
from cyclegen.samples import SampleWriter
from cyclegen.trainer import Trainer

#: Recipe sections that define what is trained; a run directory cannot switch them.
MODEL_SECTIONS = ("seed", "domains", "mappers", "critics", "adversarial", "terms", "optim", "schedule")


@dataclass
class RunResult:
    """How a run ended; `samples` and `metrics` are rank 0's final ones (empty if interrupted)."""

    run_dir: Path
    step: int
    interrupted: bool
    is_main: bool
    graph: Graph
    samples: list[Path] = field(default_factory=list)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)


def train_recipe(
    recipe: Path,
    overrides: Sequence[str] = (),
    out: Path | None = None,
    resume: bool = False,
    console: Console | None = None,
) -> RunResult:
    """Train `recipe` (with `--set` style `overrides`) into `out`, default runs/<name>.

    Under torchrun (the environment says so) every process trains its share of each global
    batch on its own device, and rank 0 writes the run directory. `resume` requires a
    checkpoint to resume from; without it an existing run directory is resumed anyway.
    """
    ranks = distributed.from_environment()
    exp = open_recipe(recipe, list(overrides))
    exp.device = distributed.local_device(exp.device, ranks)
    run_dir = out or Path("runs") / exp.recipe.name
    with distributed.process_group(ranks, exp.device):
        run = Run(exp, run_dir, console, ranks)
        run.prepare(require_checkpoint=resume)
        return run.train()


class Run:
    """Trains an experiment into `run_dir`, resuming from its latest checkpoint if any.

    Under torchrun every rank trains and reads the run directory; only rank 0 writes to it.
    """

    def __init__(
        self, experiment: Experiment, run_dir: Path, console: Console | None = None, ranks: Ranks = SINGLE
    ) -> None:
        self.exp = experiment
        self.recipe = experiment.recipe
        self.dir = Path(run_dir)
        self.ranks = ranks
        self.console = (console or Console()) if ranks.is_main else Console(quiet=True)
        self.trainer = Trainer(experiment.graph, experiment.recipe, experiment.device, ranks)
        self.pending: list[tuple[int, torch.Tensor]] = []
        self.stop_requested = False
        self.saved_step: int | None = None

    @property
    def checkpoint_dir(self) -> Path:
        return self.dir / CHECKPOINTS

    def prepare(self, require_checkpoint: bool = False) -> None:
        """Create the run directory, or check it holds this recipe and resume from it."""
        previous = self.dir / RUN_RECIPE
        if previous.is_file():
            self._check_same_model(previous)
        checkpoint = latest_checkpoint(self.checkpoint_dir)
        if checkpoint is None and require_checkpoint:
            raise CycleGenError(f"--resume: no readable checkpoint in {self.checkpoint_dir}")
        if checkpoint is not None:
            checkpoint.load_into(self.trainer)
            self.saved_step = checkpoint.step
            self.console.print(f"resuming from {checkpoint.path} (step {checkpoint.step})", highlight=False)
        barrier()  # every rank has read the directory before rank 0 changes it
        if not self.ranks.is_main:
            return
        if checkpoint is not None:
            self._drop_log_after(checkpoint.step)
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "samples").mkdir(exist_ok=True)
        (self.dir / RUN_RECIPE).write_text(self.exp.resolved_toml())

    def _drop_log_after(self, step: int) -> None:
        """Forget log lines of steps that the resumed run will train again."""
        log = self.dir / "metrics.jsonl"
        if log.is_file():
            kept = [line for line in log.read_text().splitlines() if line and json.loads(line)["step"] <= step]
            log.write_text("".join(line + "\n" for line in kept))

    def _check_same_model(self, previous: Path) -> None:
        try:
            old, _ = load_recipe(previous)
        except Exception as exc:  # noqa: BLE001 - any unreadable old recipe is reported
            raise CycleGenError(f"{previous} cannot be read ({exc}); use --out for a new run directory") from None
        differ = [
            key for key in MODEL_SECTIONS
            if old.model_dump(include={key}) != self.recipe.model_dump(include={key})
        ]
        if differ:
            raise CycleGenError(
                f"{self.dir} holds a run of a different recipe (it differs in: {', '.join(differ)}). "
                "Resuming would mix two experiments: pass --out with a new directory."
            )

    def train(self) -> RunResult:
        """Train up to `train.steps`; Ctrl-C saves a checkpoint and returns cleanly."""
        train = self.recipe.train
        trainer = self.trainer
        if train.threads:
            torch.set_num_threads(train.threads)
        if self.exp.device.type == "cpu":
            keep_freed_memory()
        sampler = SampleWriter(
            self.exp.graph, self.recipe.seed, train.sample_count, self.exp.device, self.dir / "samples"
        ) if self.ranks.is_main else None
        if trainer.step_count == 0 and train.sample_every:
            self.write_samples(sampler, 0)
        reporter = Reporter(train.steps, trainer.step_count, self.console)
        self.window_start = time.perf_counter()
        self.window_step = trainer.step_count
        try:
            with self._graceful_interrupt():
                while trainer.step_count < train.steps and not self.stopping():
                    losses = trainer.step()
                    step = trainer.step_count
                    self.pending.append((step, losses))
                    shown = None
                    if step % train.log_every == 0 or step == train.steps:
                        shown = self.flush_log()
                    if train.checkpoint_every and step % train.checkpoint_every == 0:
                        self.checkpoint()
                    if train.sample_every and step % train.sample_every == 0:
                        self.write_samples(sampler, step)
                    reporter.update(step, shown)
        finally:
            reporter.close()
        self.flush_log()
        self.checkpoint()
        ended = RunResult(self.dir, trainer.step_count, self.stop_requested, self.ranks.is_main, self.exp.graph)
        if self.stop_requested or not self.ranks.is_main:  # rank 0 alone draws and evaluates the final model
            return ended
        ended.samples = self.write_samples(sampler, trainer.step_count)
        ended.metrics = self.evaluate()
        return ended

    def stopping(self) -> bool:
        """Ctrl-C seen by any rank stops all of them at the same step (one tiny all-reduce a
        step under torchrun, none otherwise)."""
        self.stop_requested = any_rank(self.stop_requested, self.exp.device)
        return self.stop_requested

    def write_samples(self, sampler: SampleWriter | None, step: int) -> list[Path]:
        """Sample pictures (rank 0), from eager networks: compiling for a rare call costs more than it saves."""
        if sampler is None:
            return []
        with self.trainer.runtime.eager():
            return sampler.write(step)

    # -- logging and non-finite detection -------------------------------------------------

    def flush_log(self) -> dict[str, float] | None:
        """Append the mean losses since the last log line; stop on any non-finite loss.

        Losses stay on the device between log steps so a step never waits on a sync.
        """
        if not self.pending:
            return None
        steps = [step for step, _ in self.pending]
        stacked = mean_over_ranks(torch.stack([losses for _, losses in self.pending])).cpu()
        self.pending.clear()
        bad = ~torch.isfinite(stacked)
        if bad.any():
            row, col = (int(i) for i in bad.nonzero()[0])
            raise NonFiniteLossError(
                f"non-finite loss ({stacked[row, col].item()}) in term {self.trainer.loss_names[col]!r} "
                f"at step {steps[row]}. The last good checkpoint in {self.checkpoint_dir} is kept; "
                "lower the learning rates, add gradient clipping or check the data."
            )
        means = stacked.mean(0).tolist()
        now = time.perf_counter()
        rate = (steps[-1] - self.window_step) / (now - self.window_start)
        self.window_start, self.window_step = now, steps[-1]
        losses = dict(zip(self.trainer.loss_names, means))
        if not self.ranks.is_main:
            return losses
        lrs = {group.name: group.lr for group in self.trainer.groups}
        record = {"step": steps[-1], "time": time.time(), "steps_per_s": rate, "losses": losses, "lr": lrs}
        with open(self.dir / "metrics.jsonl", "a") as handle:
            handle.write(json.dumps(record) + "\n")
        return losses

    def checkpoint(self) -> None:
        self.flush_log()  # never save weights that a non-finite loss has already spoiled
        step = self.trainer.step_count
        if self.saved_step == step:
            return
        state = self.trainer.state_dict()  # on every rank: it gathers each rank's noise stream
        self.saved_step = step
        if not self.ranks.is_main:
            return
        info: dict[str, Any] = {
            "cyclegen_version": __version__,
            "plugins": self.exp.plugins.versions(),
            "recipe": self.exp.resolved,
        }
        save_checkpoint(self.checkpoint_dir, step, state, info, self.recipe.train.keep_checkpoints)

    # -- evaluation -----------------------------------------------------------------------

    def evaluate(self) -> dict[str, dict[str, float]]:
        """The final evaluation, in float32 and with eager networks (as `cyclegen eval` runs it)."""
        with self.trainer.runtime.eager():
            metrics = evaluate_experiment(self.exp)
        (self.dir / "eval.json").write_text(metrics_json(metrics) + "\n")
        return metrics

    @contextmanager
    def _graceful_interrupt(self) -> Iterator[None]:
        """First Ctrl-C: finish the current step, checkpoint, stop. Second: abort."""

        def handler(signum: int, frame: object) -> None:
            if self.stop_requested:
                raise KeyboardInterrupt
            self.stop_requested = True
            self.console.print("\ninterrupt: finishing this step and saving a checkpoint (Ctrl-C again to abort)")

        try:
            previous = signal.signal(signal.SIGINT, handler)
        except ValueError:  # not the main thread: leave the default behaviour
            yield
            return
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)
