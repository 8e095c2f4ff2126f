"""A training run: the run directory, the step loop, samples, checkpoints, logs and resume.

`train_recipe` is the one way a run starts, from `cyclegen run`, under torchrun or from
Python: it joins the process group, opens the recipe on this process's device, locks the run
directory, resumes from it, trains, and leaves the group again however the run ends.

What a run promises (docs/reliability.md): a kill at any moment loses at most the steps since
the last checkpoint; SIGINT, SIGTERM and SIGUSR1 lose none (the step finishes and is saved);
no checkpoint with non-finite weights is written; a damaged checkpoint is skipped for the
previous one; a checkpoint of another run, and a second process, are refused.
"""

from __future__ import annotations

import json
import math
import signal
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from cyclegen import __version__, distributed, progress
from cyclegen.allocator import keep_freed_memory
from cyclegen.best import BestTracker
from cyclegen.checkpoint import (
    BEST,
    Checkpoint,
    latest_checkpoint,
    point_latest,
    prune,
    read_checkpoint,
    save_checkpoint,
    state_bytes,
    write_checkpoint,
)
from cyclegen.critic_watch import CriticWatch
from cyclegen.distributed import (
    SINGLE,
    Ranks,
    any_rank,
    barrier,
    max_over_ranks,
    mean_over_ranks,
)
from cyclegen.errors import (
    CheckpointError,
    CycleGenError,
    Interrupted,
    NonFiniteLossError,
)
from cyclegen.evaluate import evaluate_experiment, finite_or_none, metrics_json
from cyclegen.experiment import CHECKPOINTS, RUN_RECIPE, Experiment, open_recipe
from cyclegen.files import append_line, atomic_write, reported_write_failures
from cyclegen.graph import Graph
from cyclegen.plugins import local_plugins
from cyclegen.progress import Reporter, duration
from cyclegen.recipe import load_recipe
from cyclegen.rundir import (
    IDENTITY,
    LOG,
    RunLock,
    new_identity,
    read_identity,
    set_aside,
    training_target,
    truncate_log,
    write_identity,
)
from cyclegen.samples import SampleWriter
from cyclegen.summary import start_up_lines
from cyclegen.tensorboard import TensorBoardLog, check_available
from cyclegen.threads import apply_threads
from cyclegen.trainer import Trainer

#: Recipe sections that define what is trained; a run directory cannot switch them.
MODEL_SECTIONS = ("seed", "domains", "mappers", "critics", "adversarial", "terms", "optim", "schedule", "ema")
#: Signals that stop a run gracefully: Ctrl-C, what Slurm, Kubernetes and systemd send to
#: stop a job, and what Slurm's `--signal` sends ahead of a time limit.
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGUSR1") if hasattr(signal, name))


@dataclass
class RunResult:
    """How a run ended; `samples` and `metrics` are rank 0's final ones (empty if stopped).

    `stopped_by` is the signal that stopped it early (under torchrun, the highest-numbered
    one any rank received), None if it trained to the end.
    """

    run_dir: Path
    step: int
    stopped_by: int | None
    is_main: bool
    graph: Graph
    samples: list[Path] = field(default_factory=list)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    #: The command that continues this run: `cyclegen run RUN_DIR`, with --trust-plugins where
    #: its recipe names local plugin files.
    resume_command: str = ""

    @property
    def interrupted(self) -> bool:
        return self.stopped_by is not None

    @property
    def exit_code(self) -> int:
        """The shell's convention: 128 + the signal for a run a signal stopped, else 0."""
        return 0 if self.stopped_by is None else 128 + self.stopped_by


def train_recipe(
    recipe: Path,
    overrides: Sequence[str] = (),
    out: Path | None = None,
    resume: bool = False,
    console: Console | None = None,
    *,
    fresh: bool = False,
    trust_plugins: bool = False,
) -> RunResult:
    """Train `recipe` (with `--set` style `overrides`) into `out`, default runs/<name>.

    `recipe` may also be a run directory: its own recipe.toml (which records every override it
    was trained with) is trained on into that directory, so `cyclegen run RUN_DIR` resumes.
    Re-running a recipe into a used directory resumes it as well; `resume` requires a checkpoint
    to resume from, and `fresh` moves the directory's previous run aside and starts anew.

    Under torchrun (the environment says so) every process trains its share of each global
    batch on its own device, and rank 0 writes the run directory.
    """
    ranks = distributed.from_environment()
    console = (console or Console()) if ranks.is_main else Console(quiet=True)
    if fresh and resume:
        raise CycleGenError("--fresh starts over and --resume continues: choose one")
    recipe_path, run_dir = training_target(Path(recipe), out)
    with progress.printing_to(console):
        exp = open_recipe(recipe_path, list(overrides), untrusted_run=None if trust_plugins else run_dir)
    exp.device = distributed.local_device(exp.device, ranks)
    run_dir = run_dir or out or Path("runs") / exp.recipe.name
    if exp.recipe.train.tensorboard:
        check_available()  # on every rank, before any work: a missing package stops them all
    for line in [apply_threads(exp.recipe.train, exp.graph, exp.device), *start_up_lines(exp)]:
        console.print(line, highlight=False, soft_wrap=True)
    if fresh:
        if ranks.world_size > 1:
            raise CycleGenError(
                "--fresh is not available under torchrun (every rank reads the directory); move "
                f"{run_dir} aside first, or train into another --out"
            )
        if (aside := set_aside(run_dir)) is not None:
            console.print(f"--fresh: moved the previous run to {aside} (delete it when you no longer need it)",
                          highlight=False)
    with distributed.process_group(ranks, exp.device):
        run = Run(exp, run_dir, console, ranks)
        with run.locked():
            run.prepare(require_checkpoint=resume)
            result = run.train()
    untrusted = local_plugins(exp.recipe.plugins, [Path.cwd(), run_dir])
    result.resume_command = f"cyclegen run {run_dir}" + (" --trust-plugins" if untrusted else "")
    return result


def _every(steps: int) -> str:
    return f"every {steps:,} steps" if steps else "at the end"


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
        self.critic_watch = CriticWatch(experiment.recipe.adversarial.loss, experiment.graph.adversarial.constant_below)
        self.pending: list[tuple[int, torch.Tensor]] = []
        #: The stop signal this process received (set by the handler only) and the one all
        #: ranks agreed to stop for: kept apart, so that a signal landing while the ranks
        #: agree is never overwritten by that agreement.
        self.signal_received: int | None = None
        self.stop_signal: int | None = None
        self.saved_step: int | None = None
        #: Training has ended and its last checkpoint is written: a signal now loses nothing.
        self.saved_all = False
        self.identity: str | None = None
        #: TensorBoard's copy of the logs (rank 0, with train.tensorboard), open while training.
        self.board: TensorBoardLog | None = None
        #: The step of the last sample pictures drawn, and their files.
        self.samples_at: tuple[int, list[Path]] | None = None
        #: The best evaluation during training so far (`train.best`), set up by `prepare`.
        self.best: BestTracker | None = None

    @property
    def checkpoint_dir(self) -> Path:
        return self.dir / CHECKPOINTS

    def notice(self, message: str) -> None:
        self.console.print(f"notice: {message}", highlight=False)

    # -- the run directory ----------------------------------------------------------------

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the run directory's lock (on rank 0, which writes it) for the whole run;
        every rank stops if it cannot be had."""
        lock = RunLock(self.dir)
        refused: CycleGenError | None = None
        if self.ranks.is_main:
            try:
                with reported_write_failures("the run directory's lock file"):
                    lock.acquire()
            except CycleGenError as exc:
                refused = exc
        if any_rank(refused is not None, self.exp.device):
            raise refused or CycleGenError(f"rank 0 could not lock {self.dir}; see its message")
        try:
            yield
        finally:
            lock.release()

    def prepare(self, require_checkpoint: bool = False) -> None:
        """Create the run directory, or check it holds this recipe and run, and resume from it."""
        previous = self.dir / RUN_RECIPE
        if previous.is_file():
            self._check_same_model(previous)
        checkpoint = latest_checkpoint(self.checkpoint_dir, notify=self.notice)
        if checkpoint is None and require_checkpoint:
            raise CycleGenError(f"--resume: no readable checkpoint in {self.checkpoint_dir}")
        self.identity = read_identity(self.dir)
        if checkpoint is not None:
            self._check_same_run(checkpoint)
            checkpoint.load_into(self.trainer)
            self.saved_step = checkpoint.step
            self.console.print(f"resuming from {checkpoint.path} (step {checkpoint.step})", highlight=False)
            if checkpoint.step >= self.recipe.train.steps:
                self.notice(
                    f"step {checkpoint.step} has already reached train.steps = {self.recipe.train.steps}; "
                    "nothing to train (raise train.steps to train longer)"
                )
        else:
            self.console.print(f"new run in {self.dir}", highlight=False)
        train = self.recipe.train
        if train.best is not None:
            self.best = BestTracker(train.best, self._previous_best())
        evaluations = ""
        if train.eval_every:
            evaluations = f"; evaluations every {train.eval_every:,} steps on {train.eval_samples:,} samples"
            if self.best is not None:
                evaluations += f", the best by {self.best.describe()} kept in {self.checkpoint_dir / BEST}"
        self.console.print(
            f"logging to {self.dir / LOG} every {train.log_every:,} steps; samples {_every(train.sample_every)}, "
            f"checkpoints {_every(train.checkpoint_every)}{evaluations}",
            highlight=False,
        )
        barrier()  # every rank has read the directory before rank 0 changes it
        if self.ranks.is_main:
            with reported_write_failures("the run directory", "Nothing was trained or lost."):
                self._write_start(checkpoint)

    def _previous_best(self) -> Checkpoint | None:
        """The best checkpoint an earlier part of this run kept, if it can be read."""
        path = self.checkpoint_dir / BEST
        if not path.is_file():
            return None
        try:
            return read_checkpoint(path)
        except CheckpointError as exc:
            self.notice(f"{exc}; the next evaluation's checkpoint replaces it")
            return None

    def _write_start(self, checkpoint: Checkpoint | None) -> None:
        """Make the directory agree with the checkpoint resumed from, or with a fresh start."""
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "samples").mkdir(exist_ok=True)
        truncate_log(self.dir, checkpoint.step if checkpoint is not None else -1)  # nothing kept: all is retrained
        if checkpoint is not None:  # a kill can leave `latest` behind, or one file too many
            point_latest(self.checkpoint_dir, checkpoint.path)
            prune(self.checkpoint_dir, self.recipe.train.keep_checkpoints)
        if self.identity is None:
            self.identity = checkpoint.run if checkpoint is not None else new_identity()
            write_identity(self.dir, self.identity)
        atomic_write(self.dir / RUN_RECIPE, self.exp.resolved_toml().encode())

    def _check_same_run(self, checkpoint: Checkpoint) -> None:
        """Refuse a checkpoint that another run wrote (copied or renamed into this directory)."""
        if checkpoint.run is None:
            raise CheckpointError(
                f"{checkpoint.path} names no run: `cyclegen run` did not write it. Move it out of "
                f"{self.checkpoint_dir}, or train into another --out."
            )
        if self.identity is not None and checkpoint.run != self.identity:
            raise CheckpointError(
                f"{checkpoint.path} was written by another run (id {checkpoint.run}), not by the run in "
                f"{self.dir} (id {self.identity}, see {IDENTITY}). Resuming would mix two experiments: "
                "move the file out, or train into another --out."
            )

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
                "Resuming would mix two experiments: pass --fresh to move the old run aside and start "
                "over, or --out with a new directory."
            )

    # -- the loop -------------------------------------------------------------------------

    def train(self) -> RunResult:
        """Train up to `train.steps`; a stop signal saves a checkpoint and returns cleanly."""
        with reported_write_failures(
            "the run directory", f"Checkpoints already in {self.checkpoint_dir} are intact: fix this and "
            "run the same command again to resume."
        ):
            return self._train()

    def _train(self) -> RunResult:
        if self.recipe.train.tensorboard and self.ranks.is_main:
            self.board = TensorBoardLog.for_run(self.dir, self.saved_step)
        try:
            return self._train_steps()
        finally:  # also when a signal, a non-finite loss or a write failure ends the run
            if self.board is not None:
                self.board.close()
                self.board = None

    def _train_steps(self) -> RunResult:
        train = self.recipe.train
        trainer = self.trainer
        if self.exp.device.type == "cpu":
            keep_freed_memory()
        sampler = SampleWriter(
            self.exp.graph, self.recipe.seed, train.sample_count, self.exp.device, self.dir / "samples"
        ) if self.ranks.is_main else None
        if trainer.step_count == 0 and train.sample_every:
            self.write_samples(sampler, 0)
        if trainer.step_count == 0 and train.eval_every:
            self.evaluate_during_training(0)
        reporter = Reporter(train.steps, trainer.step_count, self.console, self._warn_if_slow)
        self.window_start = time.perf_counter()
        self.window_step = trainer.step_count
        with self._graceful_stop():
            try:
                while trainer.step_count < train.steps and not self.stopping():
                    losses = trainer.step()
                    step = trainer.step_count
                    self.pending.append((step, losses))
                    shown = None
                    if step % train.log_every == 0 or step == train.steps:
                        shown = self.flush_log()
                    if train.eval_every and (step % train.eval_every == 0 or step == train.steps):
                        self.evaluate_during_training(step)
                    if train.checkpoint_every and step % train.checkpoint_every == 0:
                        self.checkpoint()
                    if train.sample_every and step % train.sample_every == 0:
                        self.write_samples(sampler, step)
                    reporter.update(step, shown)
                self.flush_log()
                self.checkpoint()
            finally:
                reporter.close()
            self.saved_all = True
            stopped_by = self.stop_signal or self.signal_received  # or one that came after the last step
            ended = RunResult(self.dir, trainer.step_count, stopped_by, self.ranks.is_main, self.exp.graph)
            if ended.interrupted or not self.ranks.is_main:  # rank 0 alone draws and evaluates the final model
                return ended
            ended.samples = self.write_samples(sampler, trainer.step_count)
            ended.metrics = self.evaluate()
        return ended

    def _warn_if_slow(self, remaining_s: float) -> None:
        """A GPU recipe on a CPU: say how long it would take, with the estimate just made."""
        if self.recipe.train.expects_gpu and self.exp.device.type == "cpu":
            self.console.print(
                f"warning: on this CPU the run would take about {duration(remaining_s)} more; a GPU "
                "(train.device = \"cuda\") or a smaller preset of this recipe trains far sooner",
                highlight=False,
            )

    def stopping(self) -> bool:
        """A stop signal seen by any rank stops all of them at the same step (one tiny
        all-reduce a step under torchrun, none otherwise)."""
        agreed = max_over_ranks(self.signal_received or 0, self.exp.device)
        if agreed:
            self.stop_signal = agreed
        return self.stop_signal is not None

    def write_samples(self, sampler: SampleWriter | None, step: int) -> list[Path]:
        """Sample pictures (rank 0), from eager networks: compiling for a rare call costs more than it saves.

        The final pictures are the loop's when it just drew that step's: the same networks and noise.
        """
        if sampler is None:
            return []
        if self.samples_at is not None and self.samples_at[0] == step:
            return self.samples_at[1]
        with self.trainer.runtime.eager():
            written = sampler.write(step)
        if self.board is not None:
            self.board.images(step, written)
        self.samples_at = (step, written)
        return written

    # -- logging and non-finite detection -------------------------------------------------

    def flush_log(self) -> dict[str, float] | None:
        """Append the mean losses since the last log line; stop on any non-finite loss or weight.

        Losses stay on the device between log steps so a step never waits on a sync.
        """
        if not self.pending:
            return None
        steps = [step for step, _ in self.pending]
        columns = mean_over_ranks(torch.stack([losses for _, losses in self.pending])).cpu()
        self.pending.clear()
        stacked, spread_columns = columns.split([len(self.trainer.loss_names), len(self.trainer.spread_names)], 1)
        bad = ~torch.isfinite(stacked)
        if bad.any():
            row, col = (int(i) for i in bad.nonzero()[0])
            raise NonFiniteLossError(
                f"non-finite loss ({stacked[row, col].item()}) in term {self.trainer.loss_names[col]!r} "
                f"at step {steps[row]}. The last good checkpoint in {self.checkpoint_dir} is kept; "
                "lower the learning rates, add gradient clipping or check the data."
            )
        self.check_weights(steps[-1])
        means = stacked.mean(0).tolist()
        now = time.perf_counter()
        rate = (steps[-1] - self.window_step) / (now - self.window_start)
        self.window_start, self.window_step = now, steps[-1]
        losses = dict(zip(self.trainer.loss_names, means))
        spreads = dict(zip(self.trainer.spread_names, spread_columns.mean(0).tolist()))
        warnings = self.critic_watch.check(steps[0], steps[-1], spreads)
        if not self.ranks.is_main:
            return losses
        lrs = {group.name: group.lr for group in self.trainer.groups}
        record = {"step": steps[-1], "time": time.time(), "steps_per_s": rate, "losses": losses, "lr": lrs}
        if spreads:
            record["critic spread"] = spreads
        if warnings:
            record["warnings"] = warnings
        for message in warnings:
            self.console.print(f"warning: {message}", highlight=False)
        append_line(self.dir / LOG, json.dumps(record))
        if self.board is not None:
            self.board.record(record)
        return losses

    def check_weights(self, step: int) -> None:
        """Stop before finite losses hide weights that an update has made NaN or infinite
        (an infinite learning rate does that in one step): they must never be checkpointed."""
        broken = self.exp.graph.non_finite()
        if not broken:
            return
        groups = [f"optim.{g.name}" for g in self.trainer.groups if set(g.networks) & set(broken)]
        raise NonFiniteLossError(
            f"the weights of {', '.join(broken)} are no longer finite at step {step}, although every "
            f"logged loss was: an update diverged. The last good checkpoint in {self.checkpoint_dir} is "
            f"kept; lower the learning rate of {', '.join(groups)} or add gradient clipping."
        )

    def checkpoint_info(self) -> dict[str, Any]:
        """What every checkpoint's metadata records besides the state."""
        return {
            "run": self.identity,
            "cyclegen_version": __version__,
            "plugins": self.exp.plugins.versions(),
            "recipe": self.exp.resolved,
        }

    def checkpoint(self) -> None:
        # Never save a non-finite loss's or update's result: flush_log checks the losses and
        # weights of every step since the last flush, and every trained step is flushed.
        self.flush_log()
        step = self.trainer.step_count
        if self.saved_step == step:
            return
        state = self.trainer.state_dict()  # on every rank: it gathers each rank's noise stream
        if not self.ranks.is_main:
            self.saved_step = step
            return
        info = self.checkpoint_info()
        saved = f"the newest checkpoint is step {self.saved_step}" if self.saved_step else "no checkpoint was saved yet"
        with reported_write_failures(
            f"the checkpoint of step {step}",
            f"The temporary file was removed and {saved}: make room (each checkpoint takes "
            f"{state_bytes(state) / 2**20:.1f} MB, and up to train.keep_checkpoints + 1 exist at once), "
            "then run the same command again to resume.",
        ):
            save_checkpoint(self.checkpoint_dir, step, state, info, self.recipe.train.keep_checkpoints)
        self.saved_step = step

    # -- evaluation -----------------------------------------------------------------------

    def evaluate_during_training(self, step: int) -> None:
        """Evaluate on `train.eval_samples` (rank 0) into an `eval` line of the log; a new best
        value of `train.best` is checkpointed (by every rank, as every checkpoint is)."""
        self.flush_log()  # the losses and weights since the last line are checked before anything is kept
        value, improved = math.nan, False
        if self.ranks.is_main:
            with self.trainer.runtime.eager():
                metrics = evaluate_experiment(self.exp, self.recipe.train.eval_samples)
            record = {"step": step, "time": time.time(), "weights": self.exp.weights_label(),
                      "eval": finite_or_none(metrics)}
            append_line(self.dir / LOG, json.dumps(record))
            if self.board is not None:
                self.board.eval(step, metrics)
            if self.best is not None:
                value = self.best.pick(metrics)
                improved = self.best.improves(value)
            self.console.print(self._eval_line(step, metrics, value, improved), highlight=False)
        if self.best is not None and any_rank(improved, self.exp.device):
            self.save_best(step, value)

    def _eval_line(self, step: int, metrics: dict[str, dict[str, float]], value: float, improved: bool) -> str:
        if self.best is None:
            section, values = next(iter(metrics.items()), ("", {}))
            shown = ", ".join(f"{key} {number:.4g}" for key, number in list(values.items())[:4])
            return f"eval at step {step:,} ({section}): {shown}"
        best = self.best
        if improved:
            return f"eval at step {step:,}: {best.describe()} = {value:.4g}, the best so far: saved as {BEST}"
        kept = f"{best.value:.4g} at step {best.step:,}" if best.value is not None else "none yet"
        return f"eval at step {step:,}: {best.describe()} = {value:.4g} (best {kept})"

    def save_best(self, step: int, value: float) -> None:
        """Write the state of `step` as the best checkpoint (rank 0), replacing the previous best."""
        state = self.trainer.state_dict()  # on every rank: it gathers each rank's noise stream
        if not self.ranks.is_main:
            return
        assert self.best is not None
        info = {**self.checkpoint_info(), "best": self.best.record(step, value)}
        with reported_write_failures(
            f"the best checkpoint of step {step}",
            f"The previous {BEST}, if any, and the regular checkpoints are intact: make room, then run the "
            "same command again to resume.",
        ):
            write_checkpoint(self.checkpoint_dir / BEST, step, state, info)

    def evaluate(self) -> dict[str, dict[str, float]]:
        """The final evaluation, in float32 and with eager networks (as `cyclegen eval` runs it)."""
        with self.trainer.runtime.eager():
            metrics = evaluate_experiment(self.exp)
        atomic_write(self.dir / "eval.json", (metrics_json(metrics) + "\n").encode())
        if self.board is not None:
            self.board.eval(self.trainer.step_count, metrics)
        return metrics

    @contextmanager
    def _graceful_stop(self) -> Iterator[None]:
        """A first stop signal finishes the current step, checkpoints and stops; a second
        aborts, and so does one during the final samples and evaluation, when all is saved."""

        def handler(signum: int, frame: object) -> None:
            if self.saved_all:
                raise Interrupted(signum, "training had finished and is saved; `cyclegen eval` evaluates it")
            if self.signal_received is not None:
                raise Interrupted(signum, "the checkpoints already saved are intact")
            self.signal_received = signum
            again = "Ctrl-C" if signum == signal.SIGINT else "send it"
            self.console.print(
                f"\n{signal.Signals(signum).name}: finishing this step and saving a checkpoint ({again} again to abort)"
            )

        try:
            previous = {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
        except ValueError:  # not the main thread: leave the default behaviour
            yield
            return
        try:
            yield
        finally:
            for signum, old in previous.items():
                signal.signal(signum, old)
