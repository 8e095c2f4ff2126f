"""Data-parallel training under torchrun: 2 CPU processes with the gloo backend.

Ranks must hold identical weights, match a single process at the same global batch, write
the run directory once, and resume exactly.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from cyclegen.checkpoint import latest_checkpoint
from tests.conftest import aegan_data, with_ema, write_recipe

WORKER = Path(__file__).with_name("ddp_worker.py")
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def torchrun(*args: object) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *map(str, args)]
    done = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def recipe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = with_ema(aegan_data(steps=8, batch_size=32, checkpoint_every=4, log_every=4, sample_every=4, threads=1), "G")
    return write_recipe(tmp_path_factory.mktemp("ddp"), data)


@pytest.fixture(scope="module")
def two_ranks(recipe: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ranks")
    torchrun(WORKER, recipe, root / "run", root)
    return root


def test_ranks_hold_identical_weights(two_ranks: Path) -> None:
    rank0, rank1 = load_file(str(two_ranks / "rank0.safetensors")), load_file(str(two_ranks / "rank1.safetensors"))
    assert rank0.keys() == rank1.keys()
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)


def test_two_ranks_match_one_process_at_the_same_global_batch(recipe: Path, two_ranks: Path, tmp_path: Path) -> None:
    from tests.test_run import all_weights, train

    single = all_weights(train(recipe, tmp_path / "single"))
    ranks = load_file(str(two_ranks / "rank0.safetensors"))
    assert single.keys() == ranks.keys()
    for key in single:
        torch.testing.assert_close(ranks[key], single[key], rtol=1e-4, atol=1e-5, msg=key)
    moved = sum(float((single[k] - ranks[k]).abs().max()) for k in single)
    assert moved > 0  # float reductions differ a little: the ranks really trained apart


def test_rank_zero_alone_writes_the_run_directory(two_ranks: Path) -> None:
    run = two_ranks / "run"
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [4, 8]  # one line per log step, not one per rank
    assert sorted(p.name for p in (run / "checkpoints").glob("step-*")) == [
        "step-000000004.safetensors", "step-000000008.safetensors"
    ]
    checkpoint = latest_checkpoint(run / "checkpoints")
    assert checkpoint is not None and "rng.rank1.torch" in checkpoint.tensors
    assert (run / "eval.json").is_file() and list((run / "samples").glob("G-fixed-step000000008.png"))


def test_cli_under_torchrun_resumes_exactly(recipe: Path, two_ranks: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    torchrun("-m", "cyclegen", "run", recipe, "--out", run, "--set", "train.steps=4")
    resumed = torchrun("-m", "cyclegen", "run", recipe, "--out", run)
    assert "resuming from" in resumed.stdout and resumed.stdout.count("trained 8 steps") == 1
    checkpoint = latest_checkpoint(run / "checkpoints")
    straight = load_file(str(two_ranks / "rank0.safetensors"))
    assert any(key.startswith("ema.") for key in straight)
    for key, value in straight.items():
        name, rest = key.split(".", 1)
        stored = f"ema.weights.{rest}" if name == "ema" else f"net.{name}.{rest}"
        assert torch.equal(checkpoint.tensors[stored], value), key


def test_global_batch_must_split_evenly(tmp_path: Path) -> None:
    path = write_recipe(tmp_path, aegan_data(steps=2, batch_size=33))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "cyclegen", "run", str(path), "--out", str(tmp_path / "run")]
    done = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=300)
    assert done.returncode != 0
    assert "train.batch_size 33 is the global batch and must split evenly over 2 processes" in done.stdout + done.stderr


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (read from /proc: no extra tools needed)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="finds the workers through /proc (Linux)")
def test_sigterm_to_one_rank_stops_every_rank_at_one_step_and_saves_it(tmp_path: Path) -> None:
    """What a scheduler does to one worker: rank 1 is signalled, rank 0 saves the step reached."""
    data = aegan_data(steps=1_000_000, batch_size=32, log_every=1, checkpoint_every=0, sample_every=0, threads=1)
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "cyclegen", "run", str(write_recipe(tmp_path, data)), "--out", str(run_dir)]
    agent = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV)
    log = run_dir / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (log.is_file() and len(log.read_text().splitlines()) >= 3) and time.monotonic() < deadline:
        time.sleep(0.05)
    workers = sorted(children(agent.pid))
    assert len(workers) == 2, workers
    os.kill(workers[1], signal.SIGTERM)
    output, _ = agent.communicate(timeout=120)
    assert "exitcode  : 143" in output, output[-3000:]  # rank 0 stopped by itself, after saving
    last_logged = json.loads(log.read_text().splitlines()[-1])["step"]
    found = latest_checkpoint(run_dir / "checkpoints")
    assert found is not None and found.step == last_logged >= 3
