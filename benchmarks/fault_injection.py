"""Fault injection: attack real `cyclegen run` trainings the way faults happen, and count what survives.

docs/reliability.md promises that a run directory survives crashes, signals, torn and corrupt
files, full disks, a second process and read-only folders: re-running the same command picks
the run up again and ends exactly where an uninterrupted run ends. This script checks that
promise on real runs of `recipes/aegan_grid.toml` (small, CPU, one thread each) instead of
trusting unit tests. Each fault class below is attacked `--count` times at random moments and
positions (`--seed`), and one markdown table says, per class, `tried N / survived M / lost K`
with the reason of each loss. The exit status is 1 if anything was lost (2 if the checker's
own self-test failed), so it can gate a release.

    python benchmarks/fault_injection.py                   # every class, 74 trials, ~11 min on 2 cores
    python benchmarks/fault_injection.py --quick           # one or two trials a class, ~2 min
    python benchmarks/fault_injection.py --classes kill9 signals --count kill9=20 --seed 3
    python benchmarks/fault_injection.py --trials 5 --parallel 2 --keep   # keep the run folders

Survived means, after the fault and (where the class says so) re-running the same command to
completion:

* every process exited with the expected status and no "Traceback" on its stderr;
* the final checkpoint's tensors named `net.*` are bit-identical to those of a reference run of
  the same command trained straight through (computed once per step count, reused);
* metrics.jsonl holds every logged step exactly once, in order, each line equal to the
  reference's (the "time" and "steps_per_s" fields aside), ending in a newline;
* nothing the user saved was destroyed: the checkpoints that should remain (those the
  reference keeps) exist, load with safetensors and equal the reference's, `latest` names the
  newest, and no `.*.tmp` file is left in checkpoints/.

Some faults cannot be trained through; the right answer is a refusal: exit status 1, a
one-line `error:` message (naming the path or process where the class asks), no traceback,
and the run directory byte for byte as it was. A clean refusal counts as survived for the
classes marked "or refuse" below. Anything else is lost: a traceback, a crash by signal, a
timeout (`--timeout`), a directory that cannot be resumed, a mismatch, lost or doubled lines.

Fault classes (`--classes`, `--count CLASS=N`):

  control          no fault: a fresh run, and a run trained in two parts, equal the reference
  kill9            SIGKILL at a random moment of training; resume
  signals          SIGTERM / SIGINT / SIGUSR1 at a random moment: exit by itself with 128+signum
                   after checkpointing the step it reached; resume
  torn-checkpoint  newest checkpoint truncated at a random length; resume falls back
  bit-flip         one random bit of the newest checkpoint's tensor data flipped; resume must
                   notice, fall back (not resume from the flipped file) and finish equal
  header-edit      the newest checkpoint's safetensors header edited (state key renamed, step
                   "abc"/-5/1.5e300/999999/deleted, 100000-deep lists, a tensor's dtype); resume
                   falls back or refuses
  torn-metrics     SIGKILL, then half a JSON line without newline appended to metrics.jsonl; resume
  write-failure    `ulimit -f` below the checkpoint size after part of the run: refuse naming the
                   path, no .tmp left, earlier checkpoints intact; then resume without the limit
  disk-full        resume on a disk (a small tmpfs; root only) filled to leave less room than a
                   checkpoint: refuse naming the path, no .tmp left, earlier checkpoints intact;
                   then resume once there is room
  concurrent       a second process on the same --out: exactly one trains, the other refuses
                   naming the first's pid; the run equals the reference
  read-only        the run directory made read-only (`chmod -R a-w`; as root, where chmod does
                   not stop writes, a tmpfs remounted read-only): refuse, change nothing

Runs go to a temporary folder (removed unless `--keep`), with CYCLEGEN_CACHE pointing inside
it. Trials run one at a time unless `--parallel N`; each training process uses one thread.
Do not edit the library while this runs: the reference is trained once, at the start.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "recipes" / "aegan_grid.toml"
CHECKPOINT_EVERY = 5
#: Recipe overrides of every run: one thread, a checkpoint every 5 steps, a log line every step,
#: no sample pictures on the way and a quick final evaluation.
BASE_OVERRIDES = (
    "train.threads=1",
    f"train.checkpoint_every={CHECKPOINT_EVERY}",
    "train.log_every=1",
    "train.sample_every=0",
    "eval.samples=200",
)
#: Checkpoints the reference keeps (the recipe's train.keep_checkpoints default).
KEEP = 3
IGNORED_METRIC_FIELDS = ("time", "steps_per_s")
CHECKPOINT_NAME = re.compile(r"^step-(\d+)\.safetensors$")
RESUMED_FROM = re.compile(r"resuming from (\S+)")
#: Files a run directory may hold that only say which process uses it.
LOCK_FILES = (".lock",)

CLASSES = (
    "control", "kill9", "signals", "torn-checkpoint", "bit-flip", "header-edit",
    "torn-metrics", "write-failure", "disk-full", "concurrent", "read-only",
)
DEFAULT_COUNTS = {
    "control": 1, "kill9": 16, "signals": 12, "torn-checkpoint": 6, "bit-flip": 10, "header-edit": 10,
    "torn-metrics": 6, "write-failure": 4, "disk-full": 4, "concurrent": 4, "read-only": 2,
}
QUICK_COUNTS = {name: 1 for name in CLASSES} | {"signals": 3, "header-edit": 2}
SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)


# -- running cyclegen ---------------------------------------------------------------------


@dataclass
class Done:
    """A finished `cyclegen run` process."""

    returncode: int | None  # None: timed out (and killed)
    stdout: str
    stderr: str
    wall: float
    pid: int = 0
    started_epoch: float = 0.0  # time.time() at the start

    def traceback(self) -> bool:
        return "Traceback" in self.stderr

    def describe(self) -> str:
        """'exit 1' / 'killed by SIGTERM' / 'timed out', for loss reasons."""
        if self.returncode is None:
            return "timed out"
        if self.returncode < 0:
            return f"killed by {signal.Signals(-self.returncode).name}"
        return f"exit {self.returncode}"

    def last_error(self) -> str:
        """The last line of stderr that says error (or the last line at all), shortened."""
        lines = [line.strip() for line in self.stderr.splitlines() if line.strip()]
        chosen = next((line for line in reversed(lines) if "error" in line.lower()), lines[-1] if lines else "")
        return chosen[:160]


class Missed(Exception):
    """The attack came too late (the process had already exited): draw again."""


class Harness:
    """Starts cyclegen runs of one recipe and step count, with timeouts and captured output."""

    def __init__(self, workdir: Path, steps: int, timeout: float) -> None:
        self.workdir = workdir
        self.steps = steps
        self.timeout = timeout
        self.env = os.environ | {"CYCLEGEN_CACHE": str(workdir / "cache"), "PYTHONUNBUFFERED": "1"}
        self.env.pop("COLUMNS", None)
        self._references: dict[int, Reference] = {}
        self._locks: dict[int, threading.Lock] = {}
        self._lock = threading.Lock()

    def command(self, out: Path, steps: int | None = None) -> list[str]:
        """The training command; `steps` other than the full run's trains part of it."""
        sets = [*BASE_OVERRIDES, f"train.steps={steps or self.steps}"]
        return [sys.executable, "-m", "cyclegen", "run", str(RECIPE), "--out", str(out),
                *(part for item in sets for part in ("--set", item))]

    def start(self, out: Path, steps: int | None = None, ulimit_kb: int | None = None, tag: str = "run") -> subprocess.Popen:
        """Start a run; its stdout and stderr go to files beside `out` (read by `finish`)."""
        command = self.command(out, steps)
        if ulimit_kb is not None:
            command = ["bash", "-c", f'ulimit -f {ulimit_kb}; exec "$@"', "bash", *command]
        logs = unique_path(out.parent / f"{out.name}.{tag}")
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(f"{logs}.stdout", "w") as stdout, open(f"{logs}.stderr", "w") as stderr:
            process = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=stdout, stderr=stderr)
        process.logs = logs  # type: ignore[attr-defined]
        process.started = time.perf_counter()  # type: ignore[attr-defined]
        process.started_epoch = time.time()  # type: ignore[attr-defined]
        return process

    def finish(self, process: subprocess.Popen, timeout: float | None = None) -> Done:
        """Wait for `process` (killing it after the timeout) and read what it printed."""
        try:
            process.wait(timeout=timeout or self.timeout)
            code: int | None = process.returncode
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            code = None
        logs: Path = process.logs  # type: ignore[attr-defined]
        return Done(code, Path(f"{logs}.stdout").read_text(errors="replace"),
                    Path(f"{logs}.stderr").read_text(errors="replace"),
                    time.perf_counter() - process.started, process.pid,  # type: ignore[attr-defined]
                    process.started_epoch)  # type: ignore[attr-defined]

    def run(self, out: Path, steps: int | None = None, ulimit_kb: int | None = None, tag: str = "run") -> Done:
        return self.finish(self.start(out, steps, ulimit_kb, tag))

    def reference(self, steps: int | None = None) -> Reference:
        """The run of `steps` (default: the full run) trained straight through, once."""
        steps = steps or self.steps
        with self._lock:
            lock = self._locks.setdefault(steps, threading.Lock())
        with lock:
            if steps not in self._references:
                out = self.workdir / "references" / f"steps-{steps}"
                out.parent.mkdir(parents=True, exist_ok=True)
                done = self.run(out, steps, tag="reference")
                if done.returncode != 0 or done.traceback():
                    raise SystemExit(f"reference run of {steps} steps failed ({done.describe()}):\n{done.stderr[-3000:]}")
                self._references[steps] = Reference.read(out, steps, done)
                log(f"reference {steps} steps: {done.wall:.1f} s")
            return self._references[steps]

    def prefix(self, steps: int, into: Path) -> Path:
        """A copy of a run trained normally to `steps` (part of the full run), at `into`."""
        shutil.copytree(self.reference(steps).dir, into)
        return into


@dataclass
class Reference:
    """An uninterrupted run: its directory, timings and what a survived run must equal."""

    dir: Path
    steps: int
    wall: float
    first_log_s: float  # from process start to the first metrics line
    train_s: float  # from the first metrics line to the last
    checkpoint_bytes: int
    metrics: list[dict]
    kept: dict[int, dict[str, torch.Tensor]]  # net.* tensors of each kept checkpoint, by step

    @classmethod
    def read(cls, out: Path, steps: int, done: Done) -> Reference:
        lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        files = checkpoint_files(out)
        kept = {step: net_tensors(path) for step, path in files.items()}
        train_s = lines[-1]["time"] - lines[0]["time"]
        first_log_s = max(0.0, lines[0]["time"] - done.started_epoch)
        return cls(out, steps, done.wall, first_log_s, train_s, files[max(files)].stat().st_size, lines, kept)


# -- inspecting a run directory -----------------------------------------------------------


def checkpoint_files(run_dir: Path) -> dict[int, Path]:
    """step -> checkpoint file, in step order."""
    folder = run_dir / "checkpoints"
    found = {int(m.group(1)): p for p in folder.iterdir() if (m := CHECKPOINT_NAME.match(p.name))} if folder.is_dir() else {}
    return dict(sorted(found.items()))


def net_tensors(path: Path) -> dict[str, torch.Tensor]:
    return {name: t for name, t in load_file(path).items() if name.startswith("net.")}


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    return torch.equal(a.contiguous().reshape(-1).view(torch.uint8), b.contiguous().reshape(-1).view(torch.uint8))


def snapshot(run_dir: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under `run_dir` but the lock file, which records
    whoever last held the directory and is no user data."""
    return {str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run_dir.rglob("*")) if p.is_file() and p.name not in LOCK_FILES}


def snapshot_change(before: dict[str, str], after: dict[str, str]) -> str | None:
    """Which files were removed or changed between two snapshots, or None. New files harm
    nothing the user saved, so they pass."""
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    parts = [f"{what} {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}"
             for what, names in (("removed", removed), ("changed", changed)) if names]
    return "; ".join(parts) or None


def leftover_tmp(run_dir: Path) -> list[str]:
    folder = run_dir / "checkpoints"
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp")) if folder.is_dir() else []


def check_metrics(run_dir: Path, ref: Reference) -> str | None:
    """None if metrics.jsonl equals the reference's line for line (timing fields aside)."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return "metrics.jsonl is missing"
    text = path.read_text(errors="replace")
    if text and not text.endswith("\n"):
        return "metrics.jsonl does not end with a newline"
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            records.append(json.loads(line))
        except ValueError:
            return f"metrics.jsonl line {number} is not JSON: {line[:40]!r}"
    steps = [record.get("step") for record in records]
    want = [record["step"] for record in ref.metrics]
    if steps != want:
        doubled = sorted(step for step, n in Counter(steps).items() if n > 1)
        missing = sorted(set(want) - set(steps))
        if doubled:
            return f"metrics.jsonl repeats {len(doubled)} step(s) ({compact(doubled)})"
        if missing:
            return f"metrics.jsonl lacks {len(missing)} step(s) ({compact(missing)})"
        return "metrics.jsonl steps out of order"
    for got, expected in zip(records, ref.metrics):
        if strip_timing(got) != strip_timing(expected):
            return f"metrics.jsonl step {got['step']} differs from the reference"
    return None


def strip_timing(record: dict) -> dict:
    return {key: value for key, value in record.items() if key not in IGNORED_METRIC_FIELDS}


def check_checkpoints(run_dir: Path, ref: Reference) -> str | None:
    """None if the kept checkpoints are the reference's, load, and equal its net.* tensors."""
    files = checkpoint_files(run_dir)
    if ref.steps not in files:
        return f"no final checkpoint (step {ref.steps}); has {compact(list(files)) or 'none'}"
    if len(files) != len(ref.kept):
        return f"{len(files)} checkpoints kept (steps {compact(list(files))}), not {len(ref.kept)}"
    # An interrupted run may add a checkpoint of its own (the step a signal stopped it at), which
    # pushes the reference's oldest out; every reference checkpoint newer than the oldest kept must stay.
    missing = [step for step in ref.kept if step >= min(files) and step not in files]
    if missing:
        return f"checkpoint(s) of step {compact(missing)} missing"
    for step, path in files.items():
        try:
            got = net_tensors(path)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is a loss
            return f"checkpoint of step {step} does not load ({type(exc).__name__})"
        expected = ref.kept.get(step)
        if expected is None:
            continue  # a step the reference did not checkpoint: that it loads is all we can say
        if got.keys() != expected.keys():
            return f"checkpoint of step {step} holds other net.* tensors than the reference"
        differ = [name for name in expected if not same_bits(got[name], expected[name])]
        if differ:
            final = "final weights" if step == ref.steps else f"weights of step {step}"
            return f"{final} differ from the reference ({len(differ)} tensors, e.g. {differ[0]})"
    latest = run_dir / "checkpoints" / "latest"
    if latest.is_file() and latest.read_text().strip() != files[max(files)].name:
        return f"checkpoints/latest names {latest.read_text().strip()[:40]!r}, not the newest"
    tmp = leftover_tmp(run_dir)
    if tmp:
        return f"left {', '.join(tmp)} in checkpoints/"
    return None


def check_finished(done: Done, run_dir: Path, ref: Reference) -> str | None:
    """None if `done` trained `run_dir` to completion and it equals the reference; else why not."""
    if done.traceback():
        return f"traceback on resume ({done.last_error()})"
    if done.returncode != 0:
        return f"resume ended with {done.describe()}: {done.last_error()}"
    return check_checkpoints(run_dir, ref) or check_metrics(run_dir, ref)


def check_refusal(done: Done, run_dir: Path, before: dict[str, str] | None, names: str | None = None) -> str | None:
    """None if `done` refused cleanly (exit 1, `error:`, no traceback) and left `run_dir` as it was
    (when `before` is given); `names` must appear in the message if given."""
    if done.traceback():
        return f"traceback ({done.last_error()})"
    if done.returncode != 1:
        return f"{done.describe()} instead of a refusal (exit 1)" + (f": {done.last_error()}" if done.returncode else "")
    if "error:" not in done.stderr:
        return "exit 1 without an `error:` message"
    if names is not None and names not in done.stderr:
        return f"the error does not name {names}: {done.last_error()}"
    if before is not None:
        change = snapshot_change(before, snapshot(run_dir))
        if change:
            return f"refused but changed the run directory: {change}"
    return None


def resumed_from(done: Done) -> str | None:
    """The checkpoint file name a run says it resumed from, if it says."""
    match = RESUMED_FROM.search(done.stdout)
    return Path(match.group(1)).name if match else None


def compact(numbers: Sequence[int]) -> str:
    """'1-3, 7' for [1, 2, 3, 7]."""
    ranges: list[list[int]] = []
    for n in sorted(numbers):
        if ranges and n == ranges[-1][1] + 1:
            ranges[-1][1] = n
        else:
            ranges.append([n, n])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges)


# -- attacking a running process ----------------------------------------------------------


def alive(process: subprocess.Popen) -> bool:
    """Whether `process` still runs, without reaping it (so its pid cannot be reused)."""
    if process.returncode is not None:
        return False
    try:
        return os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None
    except ChildProcessError:
        return False


def wait_for_training(process: subprocess.Popen, run_dir: Path, timeout: float) -> None:
    """Block until the run has written its first metrics line (so training is under way)."""
    log_file = run_dir / "metrics.jsonl"
    deadline = time.perf_counter() + timeout
    while not (log_file.is_file() and log_file.stat().st_size > 0):
        if not alive(process):
            raise Missed
        if time.perf_counter() > deadline:
            raise TimeoutError("training did not start")
        time.sleep(0.01)


def signal_during_training(process: subprocess.Popen, run_dir: Path, ref: Reference, rng: random.Random,
                           signum: int, timeout: float) -> float:
    """Wait for training, sleep a random part of the reference's remaining time, send `signum`.
    Returns the delay after the first log line; raises Missed if the process ended first."""
    wait_for_training(process, run_dir, timeout)
    delay = rng.uniform(0, ref.train_s + 0.3)  # + a little: the final checkpoint and evaluation
    time.sleep(delay)
    if not alive(process):
        raise Missed
    os.kill(process.pid, signum)
    return delay


def logged_steps(run_dir: Path) -> list[int]:
    path = run_dir / "metrics.jsonl"
    steps = []
    for line in path.read_text(errors="replace").splitlines() if path.is_file() else []:
        try:
            steps.append(json.loads(line)["step"])
        except (ValueError, KeyError, TypeError):
            pass
    return steps


# -- the fault classes --------------------------------------------------------------------


@dataclass
class Outcome:
    survived: bool
    reason: str = ""  # why it was lost
    detail: str = ""  # what was done, for the trial list
    skipped: bool = False


@dataclass
class Trial:
    fault: str
    index: int
    seed: int
    outcome: Outcome | None = None
    wall: float = 0.0
    attempts: int = 1


def lost(reason: str, detail: str = "") -> Outcome:
    return Outcome(False, reason, detail)


def survived(detail: str = "") -> Outcome:
    return Outcome(True, "", detail)


def verdict(reason: str | None, detail: str) -> Outcome:
    return survived(detail) if reason is None else lost(reason, detail)


def fault_control(h: Harness, rng: random.Random, trial_dir: Path, ctx: Context) -> Outcome:
    """No fault: a fresh run equals the reference, and so does a run trained in two parts."""
    ref = h.reference()
    fresh = trial_dir / "fresh"
    reason = check_finished(h.run(fresh), fresh, ref)
    if reason:
        return lost(f"fresh run: {reason}", "fresh run")
    k = rng.choice(ctx.palette)  # where part of the run stops
    parts = h.prefix(k, trial_dir / "two-parts")
    reason = check_finished(h.run(parts), parts, ref)
    return verdict(reason and f"trained in two parts (to {k}, then on): {reason}", f"fresh run; two parts at step {k}")


def fault_kill9(h: Harness, rng: random.Random, trial_dir: Path, ctx: Context) -> Outcome:
    """SIGKILL at a random moment of training, then the same command to completion."""
    ref = h.reference()
    out = trial_dir / "run"
    process = h.start(out, tag="killed")
    delay = signal_during_training(process, out, ref, rng, signal.SIGKILL, h.timeout)
    killed = h.finish(process)
    reached = max(logged_steps(out), default=0)
    detail = f"SIGKILL {delay:.2f} s into training (logged step {reached})"
    if killed.traceback():
        return lost(f"traceback before the kill ({killed.last_error()})", detail)
    return verdict(check_finished(h.run(out), out, ref), detail)


def fault_signals(h: Harness, rng: random.Random, trial_dir: Path, ctx: Context) -> Outcome:
    """SIGTERM, SIGINT or SIGUSR1 (in turn): exit by itself with 128+signum after checkpointing
    the step it reached; then the same command to completion."""
    ref = h.reference()
    signum = SIGNALS[ctx.index % len(SIGNALS)]
    name = signal.Signals(signum).name
    out = trial_dir / "run"
    process = h.start(out, tag="signalled")
    delay = signal_during_training(process, out, ref, rng, signum, h.timeout)
    stopped = h.finish(process, timeout=ctx.signal_timeout)
    reached = max(logged_steps(out), default=0)
    detail = f"{name} {delay:.2f} s into training (logged step {reached})"
    if stopped.returncode is None:
        return lost(f"{name}: did not exit within {ctx.signal_timeout:.0f} s", detail)
    if stopped.traceback():
        return lost(f"{name}: traceback ({stopped.last_error()})", detail)
    files = checkpoint_files(out)
    if stopped.returncode == 0:
        finished = f"trained {ref.steps} steps into" in stopped.stdout and reached == ref.steps and reached in files
        if not finished:
            return lost(f"{name}: ignored, trained to the end (exit 0)", detail)
        # It came as the finished process was exiting, after its last Python code: nothing to stop.
        return survived(f"{detail}; after the run had finished: exit 0")
    if stopped.returncode == -signum and reached == ref.steps and reached in files:
        # It came after the loop had saved the final checkpoint (evaluation, or interpreter
        # shutdown, where no handler is left): dying of it loses nothing a resume cannot redo.
        detail += f"; after training ended: {stopped.describe()}"
    elif stopped.returncode != 128 + signum:
        return lost(f"{name}: {stopped.describe()}, not exit {128 + signum}", detail)
    if reached not in files:
        return lost(f"{name}: no checkpoint at the step it reached ({reached}); newest {max(files, default=None)}", detail)
    try:
        load_file(files[reached])
    except Exception as exc:  # noqa: BLE001
        return lost(f"{name}: the checkpoint at step {reached} does not load ({exc})", detail)
    return verdict(check_finished(h.run(out), out, ref), detail)


def fault_torn_checkpoint(h: Harness, rng: random.Random, trial_dir: Path, ctx: Context) -> Outcome:
    """Truncate the newest checkpoint at a random length; resuming falls back to the one before."""
    k = rng.choice(ctx.palette)  # where part of the run stops
    out = h.prefix(k, trial_dir / "run")
    newest = checkpoint_files(out)[k]
    size = newest.stat().st_size
    length = rng.choice([0, rng.randrange(1, 8), rng.randrange(8, 2000), rng.randrange(size)])
    with open(newest, "r+b") as handle:
        handle.truncate(length)
    detail = f"step-{k} cut to {length} of {size} bytes"
    done = h.run(out)
    if resumed_from(done) == newest.name:
        return lost("resumed from the torn checkpoint", detail)
    return verdict(check_finished(done, out, h.reference()), detail)


def fault_bit_flip(h: Harness, rng: random.Random, trial_dir: Path, ctx: Context) -> Outcome:
    """Flip one random bit in the newest checkpoint's tensor data; resume must notice and fall back."""
    k = rng.choice(ctx.palette)  # where part of the run stops
    out = h.prefix(k, trial_dir / "run")
    newest = checkpoint_files(out)[k]
    data = bytearray(newest.read_bytes())
    start = 8 + int.from_bytes(data[:8], "little")
    offset = rng.randrange(start, len(data))
    bit = rng.randrange(8)
    data[offset] ^= 1 << bit
    newest.write_bytes(bytes(data))
    detail = f"step-{k}: bit {bit} of byte {offset} ({tensor_at(data, offset - start)})"
    done = h.run(out)
    if done.returncode == 0 and resumed_from(done) == newest.name:
        return lost("resumed from the flipped checkpoint without noticing", detail)
    return verdict(check_finished(done, out, h.reference()), detail)


def tensor_at(data: bytes, offset: int) -> str:
    """The name of the tensor whose bytes hold data-section `offset`."""
    header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
    for name, info in header.items():
        if name != "__metadata__" and info["data_offsets"][0] <= offset < info["data_offsets"][1]:
            return name
    return "?"


def read_header(path: Path) -> tuple[dict, bytes]:
    data = path.read_bytes()
    length = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + length]), data[8 + length :]


def write_header(path: Path, header: dict, body: bytes) -> None:
    """Write `header` back with its true length, padded with spaces to 8 bytes as safetensors does."""
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + body)


def rename_state_key(header: dict, rng: random.Random) -> str:
    skeleton = json.loads(header["__metadata__"]["state"])
    paths: list[tuple[str, ...]] = []

    def walk(node: object, keys: tuple[str, ...]) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if not key.startswith("__"):
                    paths.append((*keys, key))
                walk(value, (*keys, key))
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, (*keys, str(i)))

    walk(skeleton, ())
    chosen = rng.choice(paths)
    node = skeleton
    for key in chosen[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
    node[chosen[-1] + "_renamed"] = node.pop(chosen[-1])
    header["__metadata__"]["state"] = json.dumps(skeleton)
    return f"state key {'.'.join(chosen)} renamed"


def set_step(value: str) -> Callable[[dict, random.Random], str]:
    def edit(header: dict, rng: random.Random) -> str:
        header["__metadata__"]["step"] = value
        return f"step set to {value}"
    return edit


def delete_step(header: dict, rng: random.Random) -> str:
    del header["__metadata__"]["step"]
    return "step deleted"


def deep_lists(header: dict, rng: random.Random) -> str:
    key = rng.choice(sorted(header["__metadata__"]))
    header["__metadata__"][key] = "[" * 100_000 + "]" * 100_000
    return f"{key} nested 100000 lists deep"


def change_dtype(header: dict, rng: random.Random) -> str:
    """Another dtype of another item size: the offsets no longer fit the shape."""
    name = rng.choice(sorted(k for k in header if k != "__metadata__"))
    old = header[name]["dtype"]
    new = rng.choice([d for d in ("F16", "BF16", "F64", "I64", "U8") if ITEM_SIZE.get(d) != ITEM_SIZE.get(old)])
    header[name]["dtype"] = new
    return f"dtype of {name} {old} -> {new}"


def change_dtype_same_size(header: dict, rng: random.Random) -> str:
    """Another dtype of the same item size (F32 <-> I32): only a checksum can tell."""
    name = rng.choice(sorted(k for k in header if k != "__metadata__" and header[k]["dtype"] in ("F32", "I32")))
    old = header[name]["dtype"]
    header[name]["dtype"] = "I32" if old == "F32" else "F32"
    return f"dtype of {name} {old} -> {header[name]['dtype']}"


ITEM_SIZE = {"BOOL": 1, "U8": 1, "I8": 1, "F16": 2, "BF16": 2, "I16": 2, "F32": 4, "I32": 4, "F64": 8, "I64": 8}


HEADER_EDITS: tuple[Callable[[dict, random.Random], str], ...] = (
    rename_state_key, set_step("abc"), set_step('"abc"'), set_step("-5"), set_step("1.5e300"),
    set_step("999999"), delete_step, deep_lists, change_dtype, change_dtype_same_size,
)


def fault_header_edit(h: Harness, rng: random.Random, trial_dir: Path, ctx: Context) -> Outcome:
    """Edit the newest checkpoint's header (correct length); resume must fall back or refuse cleanly."""
    k = rng.choice(ctx.palette)  # where part of the run stops
    out = h.prefix(k, trial_dir / "run")
    newest = checkpoint_files(out)[k]
    header, body = read_header(newest)
    edit = ctx.header_edits[ctx.index % len(ctx.header_edits)]
    detail = f"step-{k}: " + edit(header, rng)
    write_header(newest, header, body)
    before = snapshot(out)
    done = h.run(out)
    if done.returncode == 1 and not done.traceback():  # a refusal: it must be a clean one
        return verdict(check_refusal(done, out, before), detail + " (refused)")
    return verdict(check_finished(done, out, h.reference()), detail)


def fault_torn_metrics(h: Harness, rng: random.Random, trial_dir: Path, ctx: Context) -> Outcome:
    """SIGKILL during training, append half a JSON line without newline to metrics.jsonl, resume."""
    ref = h.reference()
    out = trial_dir / "run"
    process = h.start(out, tag="killed")
    delay = signal_during_training(process, out, ref, rng, signal.SIGKILL, h.timeout)
    h.finish(process)
    log_file = out / "metrics.jsonl"
    reached = max(logged_steps(out), default=0)
    record = dict(ref.metrics[min(reached, len(ref.metrics) - 1)])  # the line it would have written next
    line = json.dumps(record)
    cut = rng.randrange(1, len(line))
    with open(log_file, "a") as handle:
        handle.write(line[:cut])
    detail = f"SIGKILL {delay:.2f} s in (logged step {reached}), then {cut} of {len(line)} chars of a line"
    return verdict(check_finished(h.run(out), out, ref), detail)


def fault_write_failure(h: Harness, rng: random.Random, trial_dir: Path, ctx: Context) -> Outcome:
    """After part of the run, resume under `ulimit -f` below the checkpoint size: refuse naming
    the path, leave no .tmp and the earlier checkpoints intact; then resume without the limit."""
    ref = h.reference()
    k = rng.choice(ctx.palette)  # where part of the run stops
    out = h.prefix(k, trial_dir / "run")
    limit_kb = max(1, ref.checkpoint_bytes // 1024 // rng.choice([2, 4, 8]))
    before = checkpoint_snapshot(out)
    done = h.run(out, ulimit_kb=limit_kb, tag="limited")
    detail = f"ulimit -f {limit_kb} (checkpoint {ref.checkpoint_bytes // 1024} KiB) after step {k}"
    reason = check_failed_write(done, out, before)
    if reason:
        return lost(f"under the limit: {reason}", detail)
    return verdict(check_finished(h.run(out), out, ref), detail)


def checkpoint_snapshot(run_dir: Path) -> dict[str, str]:
    return {name: digest for name, digest in snapshot(run_dir).items() if name.startswith("checkpoints/")}


def check_failed_write(done: Done, run_dir: Path, before: dict[str, str]) -> str | None:
    """None if a write that could not succeed was refused naming the run directory, left no
    temporary file and harmed none of the checkpoints in `before`; else why not."""
    reason = check_refusal(done, run_dir, None, names=str(run_dir))
    if reason:
        return reason
    tmp = leftover_tmp(run_dir)
    if tmp:
        return f"left {', '.join(tmp)} in checkpoints/"
    change = snapshot_change(before, {name: d for name, d in snapshot(run_dir).items() if name in before})
    return f"earlier checkpoints harmed: {change}" if change else None


def fault_concurrent(h: Harness, rng: random.Random, trial_dir: Path, ctx: Context) -> Outcome:
    """A second process on the same --out, started at a random moment of the first's run."""
    ref = h.reference()
    out = trial_dir / "run"
    first = h.start(out, tag="first")
    # The second reaches the directory about first_log_s after its start: the first must still run then.
    delay = rng.uniform(0, max(0.0, ref.wall - 1.5 * ref.first_log_s))
    time.sleep(delay)
    if not alive(first):
        h.finish(first)
        raise Missed
    second = h.start(out, tag="second")
    done = [h.finish(first), h.finish(second)]
    detail = f"second process {delay:.2f} s after the first"
    winners = [i for i, d in enumerate(done) if d.returncode == 0 and not d.traceback()]
    final = checkpoint_files(out).get(ref.steps)
    if len(winners) == 2 and final is not None and resumed_from(done[1]) == final.name:
        raise Missed  # the second only arrived once the first had finished: not concurrent after all
    if len(winners) != 1:
        ends = " and ".join(f"{d.describe()}" + (f" ({d.last_error()})" if d.returncode else "") for d in done)
        return lost(f"{'both' if winners else 'neither'} trained: {ends}", detail)
    winner, loser = done[winners[0]], done[1 - winners[0]]
    reason = check_refusal(loser, out, None, names=f"process {winner.pid}")
    if reason:
        return lost(f"the other process: {reason}", detail)
    return verdict(check_finished(winner, out, ref), detail)


def fault_read_only(h: Harness, rng: random.Random, trial_dir: Path, ctx: Context) -> Outcome:
    """A partly trained run directory made read-only: resuming must refuse cleanly and change
    nothing. As root (where chmod does not stop writes) the directory is a tmpfs remounted
    read-only; otherwise `chmod -R a-w`."""
    k = rng.choice(ctx.palette)  # where part of the run stops
    out = trial_dir / "run"
    if os.geteuid() != 0:
        h.prefix(k, out)
        before = snapshot(out)
        chmod_tree(out, writable=False)
        try:
            done = h.run(out, tag="read-only")
        finally:
            chmod_tree(out, writable=True)
        return verdict(check_refusal(done, out, before, names=str(out)), f"chmod a-w after step {k}")
    with tmpfs(out) as mounted:
        if not mounted:
            return Outcome(True, "", "skipped (cannot mount a tmpfs)", skipped=True)
        shutil.copytree(h.reference(k).dir, out, dirs_exist_ok=True)
        before = snapshot(out)
        subprocess.run(["mount", "-o", "remount,ro", str(out)], check=True)
        done = h.run(out, tag="read-only")
        return verdict(check_refusal(done, out, before, names=str(out)), f"read-only tmpfs after step {k}")


def fault_disk_full(h: Harness, rng: random.Random, trial_dir: Path, ctx: Context) -> Outcome:
    """After part of the run, resume on a disk (a tmpfs, root only) filled to leave less room
    than a checkpoint: refuse naming the path, leave no .tmp and the earlier checkpoints
    intact; then resume once the room is back."""
    ref = h.reference()
    k = rng.choice(ctx.palette)
    out = trial_dir / "run"  # the mount point itself: the logs beside it stay writable
    with tmpfs(out) as mounted:
        if not mounted:
            return Outcome(True, "", "skipped (cannot mount a tmpfs: needs root)", skipped=True)
        shutil.copytree(h.reference(k).dir, out, dirs_exist_ok=True)
        room = max(1, ref.checkpoint_bytes // rng.choice([2, 4, 8]))
        filler = out / "filler"
        stats = os.statvfs(out)
        filler.write_bytes(bytes(max(0, stats.f_bavail * stats.f_frsize - room)))
        before = checkpoint_snapshot(out)
        done = h.run(out, tag="full")
        detail = f"{room // 1024} KiB free (checkpoint {ref.checkpoint_bytes // 1024} KiB) after step {k}"
        reason = check_failed_write(done, out, before)
        if reason:
            return lost(f"on the full disk: {reason}", detail)
        filler.unlink()
        return verdict(check_finished(h.run(out), out, ref), detail)


@contextlib.contextmanager
def tmpfs(mount_point: Path, megabytes: int = 64) -> Iterator[bool]:
    """A small tmpfs at `mount_point` (True), or False where this process may not mount one."""
    mount_point.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(mount_point)],
                             capture_output=True).returncode == 0
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(mount_point)], check=True)


def chmod_tree(root: Path, writable: bool) -> None:
    for path in [root, *root.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode | 0o200 if writable else mode & ~0o222)


FAULTS: dict[str, Callable[[Harness, random.Random, Path, Context], Outcome]] = {
    "control": fault_control,
    "kill9": fault_kill9,
    "signals": fault_signals,
    "torn-checkpoint": fault_torn_checkpoint,
    "bit-flip": fault_bit_flip,
    "header-edit": fault_header_edit,
    "torn-metrics": fault_torn_metrics,
    "write-failure": fault_write_failure,
    "concurrent": fault_concurrent,
    "disk-full": fault_disk_full,
    "read-only": fault_read_only,
}


@dataclass
class Context:
    """What a trial needs besides its random stream: its index in the class and shared choices."""

    index: int
    palette: Sequence[int]  # steps where partial runs stop: few, so their references are reused
    header_edits: Sequence[Callable[[dict, random.Random], str]]
    signal_timeout: float


# -- the checker's self-test --------------------------------------------------------------


def self_test(h: Harness, scratch: Path) -> list[str]:
    """Deliberate defects the checks must report (and a clean copy they must pass); returns failures."""
    ref = h.reference()
    ok = Done(0, "", "", 0.0)
    failures = []

    def case(name: str, damage: Callable[[Path], Done], expect_lost: bool = True) -> None:
        out = scratch / name
        shutil.copytree(ref.dir, out)
        done = damage(out)
        reason = check_finished(done, out, ref)
        if (reason is not None) != expect_lost:
            failures.append(f"{name}: {'not detected' if expect_lost else f'false alarm ({reason})'}")

    def flip_final_weight(out: Path) -> Done:
        path = checkpoint_files(out)[ref.steps]
        tensors = load_file(path)
        name = next(n for n in sorted(tensors) if n.startswith("net."))
        tensors[name].view(-1)[0] = torch.nextafter(tensors[name].view(-1)[0], torch.tensor(1e9))
        from safetensors.torch import save_file
        header, _ = read_header(path)
        save_file(tensors, path, metadata=header["__metadata__"])
        return ok

    def edit_metrics(change: Callable[[list[str]], list[str]]) -> Callable[[Path], Done]:
        def damage(out: Path) -> Done:
            path = out / "metrics.jsonl"
            path.write_text("".join(line + "\n" for line in change(path.read_text().splitlines())))
            return ok
        return damage

    def other_loss(lines: list[str]) -> list[str]:
        record = json.loads(lines[3])
        first = next(iter(record["losses"]))
        record["losses"][first] += 1e-7
        return [*lines[:3], json.dumps(record), *lines[4:]]

    def other_time(lines: list[str]) -> list[str]:
        record = json.loads(lines[3])
        record["time"] += 1
        record["steps_per_s"] += 1
        return [*lines[:3], json.dumps(record), *lines[4:]]

    def drop_oldest(out: Path) -> Done:
        checkpoint_files(out)[min(ref.kept)].unlink()
        return ok

    def leave_tmp(out: Path) -> Done:
        (out / "checkpoints" / ".step-000000001.safetensors.tmp").write_bytes(b"x")
        return ok

    case("clean copy", lambda out: ok, expect_lost=False)
    case("timing fields differ", edit_metrics(other_time), expect_lost=False)
    case("final weight off by one ulp", flip_final_weight)
    case("a metrics line doubled", edit_metrics(lambda lines: [*lines[:5], lines[4], *lines[5:]]))
    case("a metrics line missing", edit_metrics(lambda lines: [*lines[:5], *lines[6:]]))
    case("a loss differs by 1e-7", edit_metrics(other_loss))
    case("an earlier checkpoint deleted", drop_oldest)
    case("a .tmp left behind", leave_tmp)
    case("a traceback", lambda out: Done(0, "", "Traceback (most recent call last):\n", 0.0))
    case("exit 1", lambda out: Done(1, "", "error: x\n", 0.0))
    refused = scratch / "refusal"
    shutil.copytree(ref.dir, refused)
    before = snapshot(refused)
    (refused / "metrics.jsonl").write_text("")
    if check_refusal(Done(1, "", "error: busy\n", 0.0), refused, before) is None:
        failures.append("refusal that emptied metrics.jsonl: not detected")
    if check_refusal(Done(1, "", "error: in use by process 7\n", 0.0), refused, None, names="process 8") is None:
        failures.append("refusal naming the wrong pid: not detected")
    return failures


# -- running the trials and reporting -----------------------------------------------------


def run_trial(h: Harness, trial: Trial, ctx: Context, root: Path, retries: int = 3) -> Trial:
    start = time.perf_counter()
    for attempt in range(1, retries + 1):
        trial_dir = root / f"{trial.fault}-{trial.index}-try{attempt}"
        trial_dir.mkdir(parents=True)
        rng = random.Random(f"{trial.seed}:{trial.fault}:{trial.index}:{attempt}")
        try:
            trial.outcome = FAULTS[trial.fault](h, rng, trial_dir, ctx)
            break
        except Missed:
            trial.outcome = lost("every attack came after the process had exited")
        except TimeoutError as exc:
            trial.outcome = lost(str(exc))
            break
        finally:
            trial.attempts = attempt
    trial.wall = time.perf_counter() - start
    o = trial.outcome
    status = "skipped" if o.skipped else "survived" if o.survived else f"LOST: {o.reason}"
    log(f"{trial.fault} #{trial.index}: {status} [{o.detail}] ({trial.wall:.1f} s)")
    return trial


def markdown_table(trials: list[Trial], faults: Sequence[str]) -> str:
    lines = ["| fault | tried | survived | lost | why lost |", "|---|---:|---:|---:|---|"]
    for fault in faults:
        mine = [t for t in trials if t.fault == fault and t.outcome]
        ran = [t for t in mine if not t.outcome.skipped]
        if mine and not ran:
            lines.append(f"| {fault} | 0 | - | - | skipped ({mine[0].outcome.detail.removeprefix('skipped ').strip('()')}) |")
            continue
        losses = Counter(t.outcome.reason for t in ran if not t.outcome.survived)
        why = "; ".join(f"{n}× {reason}" if n > 1 else reason for reason, n in losses.most_common())
        survivors = sum(t.outcome.survived for t in ran)
        lines.append(f"| {fault} | {len(ran)} | {survivors} | {len(ran) - survivors} | {escape(why)} |")
    return "\n".join(lines)


def escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        model = platform.processor() or model
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{model}, {os.cpu_count()} cores ({usable} usable)"


def git_revision() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        return head + (" + uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_counts(items: Sequence[str]) -> dict[str, int]:
    counts = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name not in CLASSES or not value.isdigit():
            raise SystemExit(f"--count takes CLASS=N with CLASS one of {', '.join(CLASSES)}; got {item!r}")
        counts[name] = int(value)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog="See the module docstring for what survived means.")
    parser.add_argument("--quick", action="store_true", help="100 steps, 1-3 trials a class (~2 min)")
    parser.add_argument("--classes", nargs="+", choices=CLASSES, default=list(CLASSES), metavar="CLASS",
                        help=f"fault classes to attack (default all: {', '.join(CLASSES)})")
    parser.add_argument("--trials", type=int, help="trials of every class (overrides the defaults)")
    parser.add_argument("--count", action="append", default=[], metavar="CLASS=N", help="trials of one class (repeatable)")
    parser.add_argument("--steps", type=int, help="train.steps of every run (default 200, --quick 100)")
    parser.add_argument("--seed", type=int, default=0, help="seeds every random choice of the attacks (default 0)")
    parser.add_argument("--parallel", type=int, default=1, help="trials at once (default 1: 2 cores, one trial)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds before a cyclegen process counts as hung (default 300)")
    parser.add_argument("--signal-timeout", type=float, default=30, help="seconds a signalled process has to exit (default 30)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder of runs and print its path")
    args = parser.parse_args()

    steps = args.steps or (100 if args.quick else 200)
    if steps < 4 * CHECKPOINT_EVERY:
        parser.error(f"--steps must be at least {4 * CHECKPOINT_EVERY}")
    counts = dict(QUICK_COUNTS if args.quick else DEFAULT_COUNTS)
    if args.trials is not None:
        counts = dict.fromkeys(CLASSES, args.trials)
    counts |= parse_counts(args.count)
    faults = [name for name in CLASSES if name in args.classes]

    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="fault_injection_"))
    h = Harness(workdir, steps, args.timeout)
    try:
        log(f"runs in {workdir}")
        ref = h.reference()
        failures = self_test(h, workdir / "self-test")
        if failures:
            log("checker self-test failed:\n  " + "\n  ".join(failures))
            raise SystemExit(2)
        planner = random.Random(args.seed)
        candidates = list(range(3 * CHECKPOINT_EVERY, steps - 2 * CHECKPOINT_EVERY + 1, CHECKPOINT_EVERY))
        palette = sorted(planner.sample(candidates, min(4, len(candidates))))
        edits = list(HEADER_EDITS)
        planner.shuffle(edits)
        trials = [Trial(fault, i, args.seed) for fault in faults for i in range(counts[fault])]
        contexts = [Context(t.index, palette, edits, args.signal_timeout) for t in trials]
        with ThreadPoolExecutor(max(1, args.parallel)) as pool:
            done = list(pool.map(lambda tc: run_trial(h, tc[0], tc[1], workdir / "trials"), zip(trials, contexts)))
        total = time.perf_counter() - started

        ran = [t for t in done if not t.outcome.skipped]
        lost_trials = [t for t in ran if not t.outcome.survived]
        print("## Fault injection\n")
        print("```")
        print("python " + shlex.join(sys.argv))
        print("```\n")
        print(f"- machine: {machine()}")
        print(f"- python {platform.python_version()}, torch {torch.__version__}, cyclegen at {git_revision()}")
        print(f"- runs: `{RECIPE.relative_to(ROOT)}`, {steps} steps, "
              + ", ".join(f"`{o}`" for o in BASE_OVERRIDES)
              + f"; reference {ref.wall:.1f} s, checkpoint {ref.checkpoint_bytes / 1e6:.2f} MB")
        print(f"- seed {args.seed}; partial runs stop at steps {', '.join(map(str, palette))}")
        print("- checker self-test: every deliberate defect detected")
        print(f"- total time: {total:.0f} s ({len(ran)} trials, {args.parallel} at a time)\n")
        print(markdown_table(done, faults))
        print(f"\n**{len(ran) - len(lost_trials)} of {len(ran)} trials survived.**")
        if lost_trials:
            print("\nLost trials:\n")
            for t in lost_trials:
                print(f"- {t.fault} #{t.index}: {t.outcome.reason} [{t.outcome.detail}]")
        remarks = [t for t in ran if t.outcome.survived and "; after training ended" in t.outcome.detail]
        if remarks:
            print("\nSurvived, with a remark:\n")
            for t in remarks:
                print(f"- {t.fault} #{t.index}: {t.outcome.detail}")
        if args.keep:
            print(f"\nrun directories kept in {workdir}")
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    sys.exit(1 if lost_trials else 0)


def unique_path(path: Path) -> Path:
    """`path`, or `path` with a counter appended if logs of that name exist already."""
    candidate, n = path, 1
    while Path(f"{candidate}.stdout").exists():
        n += 1
        candidate = path.with_name(f"{path.name}{n}")
    return candidate


if __name__ == "__main__":
    main()
