"""Faults as they happen to a training process: stop signals, a second process on the same
run directory, a file size limit, a full and a read-only disk while saving, an update that makes
the weights NaN, and allocations that cannot fit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from cyclegen.checkpoint import checkpoint_files, read_checkpoint
from cyclegen.cli import app
from cyclegen.errors import NonFiniteLossError
from cyclegen.experiment import open_recipe
from cyclegen.run import Run
from tests.conftest import aegan_data, write_recipe
from tests.test_run import QUIET, train

ENV = {**os.environ, "COLUMNS": "200"}


def cyclegen(*args: object, **popen: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "cyclegen", *map(str, args)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV, **popen,  # type: ignore[call-overload]
    )


def wait_for_training(run_dir: Path, timeout: float = 60) -> None:
    """Until the run has logged a few steps (so it holds the lock and is inside the loop)."""
    log = run_dir / "metrics.jsonl"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.is_file() and len(log.read_text().splitlines()) >= 3:
            return
        time.sleep(0.05)
    raise AssertionError(f"{run_dir} did not start training within {timeout} s")


@pytest.fixture
def endless(tmp_path: Path) -> Path:
    return write_recipe(tmp_path, aegan_data(steps=1_000_000, log_every=1, checkpoint_every=0, sample_every=0))


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGUSR1], ids=["SIGTERM", "SIGUSR1"])
def test_a_stop_signal_finishes_the_step_saves_and_exits_with_the_conventional_code(
    tmp_path: Path, endless: Path, stop: signal.Signals
) -> None:
    """What Slurm, Kubernetes and systemd send: nothing since the last checkpoint is lost."""
    run_dir = tmp_path / "run"
    process = cyclegen("run", endless, "--out", run_dir)
    wait_for_training(run_dir)
    process.send_signal(stop)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 128 + stop, output
    assert f"{stop.name}: finishing this step and saving a checkpoint" in output
    assert f"stopped by {stop.name} at step" in output and "Traceback" not in output
    saved = checkpoint_files(run_dir / "checkpoints")
    last_logged = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])["step"]
    assert len(saved) == 1 and read_checkpoint(saved[0]).step == last_logged >= 3


def test_a_second_process_on_the_same_run_directory_is_refused(tmp_path: Path, endless: Path) -> None:
    run_dir = tmp_path / "run"
    first = cyclegen("run", endless, "--out", run_dir)
    try:
        wait_for_training(run_dir)
        second = cyclegen("run", endless, "--out", run_dir)
        output, _ = second.communicate(timeout=60)
        assert second.returncode == 1, output
        assert f"is in use by process {first.pid} on" in output and "another --out" in output
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
    assert first.returncode == 128 + signal.SIGTERM
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, len(steps) + 1))  # one writer: every step once, in order


def test_a_file_size_limit_while_saving_is_a_clear_error_and_the_run_resumes_after(tmp_path: Path) -> None:
    """`ulimit -f` below a checkpoint's size: no traceback, no temporary file, step 10 intact."""
    recipe = write_recipe(tmp_path, aegan_data(sample_every=0))
    run_dir = tmp_path / "run"
    train(recipe, run_dir, ["train.steps=10"])
    first = checkpoint_files(run_dir / "checkpoints")
    size_kb = first[0].stat().st_size // 1024
    command = f"ulimit -f {size_kb // 2}; exec {sys.executable} -m cyclegen run {recipe} --out {run_dir}"
    limited = subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=ENV, timeout=120)
    assert limited.returncode == 1, limited.stdout + limited.stderr
    assert "Traceback" not in limited.stderr
    message = " ".join(limited.stderr.split())
    assert "cannot write the checkpoint of step 20" in message and "step-000000020.safetensors" in message
    assert "(`ulimit -f`)" in message and "the newest checkpoint is step 10" in message
    assert [p.name for p in (run_dir / "checkpoints").iterdir() if p.name.endswith(".tmp")] == []
    assert read_checkpoint(first[0]).step == 10
    resumed = CliRunner().invoke(app, ["run", str(recipe), "--out", str(run_dir)])
    assert resumed.exit_code == 0, resumed.output
    assert read_checkpoint(checkpoint_files(run_dir / "checkpoints")[-1]).step == 20


NAN_GRADIENT_PLUGIN = '''
import torch
from cyclegen import ReconstructionLoss, hookimpl


class NanGradient(ReconstructionLoss):
    """L1 plus a term that is zero in value and NaN in gradient (sqrt'(0) * 0)."""

    def __call__(self, target, reconstruction):
        zero = torch.sqrt(((reconstruction - reconstruction.detach()) ** 2).mean())
        return zero + (target - reconstruction).abs().mean()


@hookimpl
def cyclegen_register(registry):
    registry.reconstruction_loss("nan-gradient", NanGradient)
'''


def test_weights_an_update_made_nan_are_never_checkpointed(tmp_path: Path) -> None:
    """Finite losses, NaN weights after the first update: stopped before step 1 is saved."""
    (tmp_path / "nan_gradient.py").write_text(NAN_GRADIENT_PLUGIN)
    data = aegan_data(steps=20, log_every=5, checkpoint_every=1)
    data["plugins"] = ["nan_gradient.py"]
    data["terms"][4]["loss"] = "nan-gradient"
    run = Run(open_recipe(write_recipe(tmp_path, data)), tmp_path / "run", QUIET)
    run.prepare()
    with pytest.raises(NonFiniteLossError, match=r"the weights of G, E are no longer finite at step 1") as info:
        run.train()
    assert "optim.mappers" in str(info.value)
    assert checkpoint_files(tmp_path / "run" / "checkpoints") == []
    assert all(torch.isfinite(p).all() for p in run.exp.graph.critics["Dx"].parameters())


@pytest.mark.parametrize(
    "command, settings",
    [("validate", ["mappers.G.hidden=200000", "mappers.G.depth=2"]), ("run", ["train.batch_size=1099511627776"])],
    ids=["a network that cannot fit", "a batch that cannot fit"],
)
def test_an_allocation_that_cannot_fit_is_a_clear_error(tmp_path: Path, command: str, settings: list[str]) -> None:
    recipe = write_recipe(tmp_path, aegan_data(sample_every=0))
    overrides = [arg for setting in settings for arg in ("--set", setting)]
    extra = ["--out", str(tmp_path / "run")] if command == "run" else []
    done = subprocess.run([sys.executable, "-m", "cyclegen", command, str(recipe), *extra, *overrides],
                          capture_output=True, text=True, env=ENV, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "out of memory: could not allocate" in done.stderr and "Lower train.batch_size" in done.stderr


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs: a disk that really fills up (needs root, as on CI; skipped elsewhere)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({mounted.stderr.decode().strip()})")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def test_a_full_disk_and_a_read_only_one_are_clear_errors_and_lose_nothing(tmp_path: Path, small_disk: Path) -> None:
    recipe = write_recipe(tmp_path, aegan_data(sample_every=0))
    run_dir = small_disk / "run"
    train(recipe, run_dir, ["train.steps=10"])
    first = checkpoint_files(run_dir / "checkpoints")[0]
    free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * (free - first.stat().st_size // 2))
    full = subprocess.run([sys.executable, "-m", "cyclegen", "run", str(recipe), "--out", str(run_dir)],
                          capture_output=True, text=True, env=ENV, timeout=120)
    message = " ".join(full.stderr.split())
    assert full.returncode == 1 and "Traceback" not in full.stderr, full.stderr
    assert "cannot write the checkpoint of step 20" in message and "the disk is full; free some space" in message
    assert [p.name for p in (run_dir / "checkpoints").iterdir() if p.name.endswith(".tmp")] == []
    assert read_checkpoint(first).step == 10
    filler.unlink()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    read_only = subprocess.run([sys.executable, "-m", "cyclegen", "run", str(recipe), "--out", str(run_dir)],
                               capture_output=True, text=True, env=ENV, timeout=120)
    assert read_only.returncode == 1 and "Traceback" not in read_only.stderr, read_only.stderr
    assert "the file system is read-only" in " ".join(read_only.stderr.split())
    subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    resumed = CliRunner().invoke(app, ["run", str(recipe), "--out", str(run_dir)])
    assert resumed.exit_code == 0, resumed.output
    assert read_checkpoint(checkpoint_files(run_dir / "checkpoints")[-1]).step == 20


SLOW_METRIC_PLUGIN = '''
import time
from cyclegen import Metric, hookimpl


class Sleepy(Metric):
    """A metric that takes a minute: the final evaluation is still running when a signal comes."""

    name = "sleepy"

    def evaluate(self, samples, domain, generator):
        time.sleep(60)
        return {"slept": 1.0}


@hookimpl
def cyclegen_register(registry):
    registry.metric("sleepy", Sleepy)
'''


def test_a_stop_signal_during_the_final_evaluation_exits_at_once_with_training_saved(tmp_path: Path) -> None:
    (tmp_path / "sleepy.py").write_text(SLOW_METRIC_PLUGIN)
    data = aegan_data(steps=20, checkpoint_every=0, sample_every=0)
    data["plugins"] = ["sleepy.py"]
    data["eval"]["metrics"] = ["sleepy"]
    run_dir = tmp_path / "run"
    process = cyclegen("run", write_recipe(tmp_path, data), "--out", run_dir)
    final = run_dir / "checkpoints" / "step-000000020.safetensors"
    deadline = time.monotonic() + 60
    while not final.is_file() and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)  # well before the metric would finish
    assert process.returncode == 128 + signal.SIGTERM, output
    assert "aborted by SIGTERM; training had finished and is saved" in output and "Traceback" not in output
    assert read_checkpoint(final).step == 20 and not (run_dir / "eval.json").exists()
