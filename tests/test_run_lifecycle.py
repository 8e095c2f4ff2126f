"""A newcomer's path through `cyclegen run`: resuming from the run directory, starting over
with --fresh, the start-up block, progress lines by time, the thread count, and the CLI's help.

Signals and a second process are real (subprocesses), as they happen to users.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from cyclegen import progress
from cyclegen.checkpoint import checkpoint_files
from cyclegen.cli import app
from cyclegen.experiment import open_recipe
from cyclegen.threads import (
    DEFAULT_THREADS,
    SMALL_STEP_FLOPS,
    auto_threads,
    forward_flops,
)
from tests.conftest import aegan_data, interrupt_at_step, write_recipe
from tests.test_images import half_and_half
from tests.test_plugin_trust import line_data
from tests.test_plugins import LOCAL_PLUGIN

runner = CliRunner()
ENV = {**os.environ, "COLUMNS": "200"}


def invoke(*args: object) -> object:
    return runner.invoke(app, [str(arg) for arg in args])


def logged_steps(run_dir: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def cyclegen(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cyclegen", *map(str, args)], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=300)


# -- resume conventions ----------------------------------------------------------------------


def test_the_run_directory_resumes_with_every_override_it_was_trained_with(tmp_path: Path) -> None:
    """`--set` overrides live in the run's recipe.toml, so `cyclegen run RUN_DIR` needs none of them again."""
    run_dir = tmp_path / "run"
    first = invoke("run", write_recipe(tmp_path, aegan_data()), "--out", run_dir,
                   "--set", "train.steps=10", "--set", "domains.z.dim=2")
    assert first.exit_code == 0, first.output
    assert f"train longer: cyclegen run {run_dir} --set train.steps=N" in first.output
    more = invoke("run", run_dir, "--set", "train.steps=20")
    assert more.exit_code == 0, more.output
    assert f"resuming from {run_dir / 'checkpoints'}" in more.output and "(step 10)" in more.output
    assert logged_steps(run_dir) == [5, 10, 15, 20]
    assert "dim = 2" in (run_dir / "recipe.toml").read_text()  # the override is still the run's


def test_the_printed_resume_command_continues_a_stopped_run(tmp_path: Path) -> None:
    """Ctrl-C prints `Resume with: cyclegen run RUN_DIR`; pasted as printed, it finishes the run."""
    recipe = write_recipe(tmp_path, aegan_data(steps=300, log_every=1, checkpoint_every=0, sample_every=0))
    run_dir = tmp_path / "run"
    args = ["run", str(recipe), "--out", str(run_dir), "--set", "eval.samples=50"]
    code, output = interrupt_at_step(args, 3, tmp_path)
    assert code == 130, output
    command = output.split("Resume with: ")[1].splitlines()[0]
    assert command == f"cyclegen run {run_dir}"
    resumed = subprocess.run([sys.executable, "-m", *shlex.split(command)], cwd=tmp_path, env=ENV,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming from" in resumed.stdout and "trained 300 steps" in resumed.stdout
    assert "samples = 50" in (run_dir / "recipe.toml").read_text()  # the --set the first command had


def test_a_run_directory_with_local_plugins_resumes_only_when_trusted(tmp_path: Path) -> None:
    (tmp_path / "line_plugin.py").write_text(LOCAL_PLUGIN)
    run_dir = tmp_path / "run"
    first = invoke("run", write_recipe(tmp_path, line_data()), "--out", run_dir, "--set", "train.steps=10")
    assert first.exit_code == 0, first.output
    refused = invoke("run", run_dir, "--set", "train.steps=20")
    assert refused.exit_code == 1 and "pass --trust-plugins" in refused.output
    trusted = invoke("run", run_dir, "--set", "train.steps=20", "--trust-plugins")
    assert trusted.exit_code == 0, trusted.output
    assert f"train longer: cyclegen run {run_dir} --trust-plugins --set" in trusted.output


def test_a_folder_that_is_not_a_run_directory_is_explained(tmp_path: Path) -> None:
    result = invoke("run", tmp_path)
    assert result.exit_code == 1
    assert f"{tmp_path} is a folder but not a run directory (it has no recipe.toml)" in result.output


def test_a_run_directory_trains_in_place_not_into_another_out(tmp_path: Path, aegan_recipe: Path) -> None:
    run_dir = tmp_path / "run"
    assert invoke("run", aegan_recipe, "--out", run_dir, "--set", "train.steps=5").exit_code == 0
    result = invoke("run", run_dir, "--out", tmp_path / "other")
    assert result.exit_code == 1
    assert f"run cyclegen run {run_dir / 'recipe.toml'} --out {tmp_path / 'other'}" in result.output


def test_fresh_moves_the_previous_run_aside_and_starts_over(tmp_path: Path, aegan_recipe: Path) -> None:
    run_dir = tmp_path / "run"
    assert invoke("run", aegan_recipe, "--out", run_dir, "--set", "train.steps=10").exit_code == 0
    old_id = json.loads((run_dir / "run.json").read_text())["id"]
    changed = write_recipe(tmp_path, {**aegan_data(), "seed": 4}, "changed.toml")
    refused = invoke("run", changed, "--out", run_dir)
    assert refused.exit_code == 1 and "pass --fresh to move the old run aside" in refused.output
    fresh = invoke("run", changed, "--out", run_dir, "--fresh", "--set", "train.steps=5")
    assert fresh.exit_code == 0, fresh.output
    [aside] = tmp_path.glob("run.replaced-*")
    assert f"--fresh: moved the previous run to {aside}" in fresh.output and "new run in" in fresh.output
    assert [p.name for p in checkpoint_files(aside / "checkpoints")] == ["step-000000010.safetensors"]
    assert json.loads((aside / "run.json").read_text())["id"] == old_id  # the old run, whole
    assert json.loads((run_dir / "run.json").read_text())["id"] != old_id
    assert logged_steps(run_dir) == [5]


def test_fresh_leaves_a_directory_alone_while_another_process_trains_in_it(tmp_path: Path, aegan_recipe: Path) -> None:
    run_dir = tmp_path / "run"
    assert invoke("run", aegan_recipe, "--out", run_dir, "--set", "train.steps=5").exit_code == 0
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from cyclegen.rundir import RunLock; RunLock(sys.argv[1]).acquire(); "
         "print('locked', flush=True); time.sleep(60)", str(run_dir)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        result = invoke("run", aegan_recipe, "--out", run_dir, "--fresh")
    finally:
        holder.kill()
        holder.wait()
    assert result.exit_code == 1 and "is in use by process" in result.output
    assert not list(tmp_path.glob("run.replaced-*")) and checkpoint_files(run_dir / "checkpoints")


def test_fresh_and_resume_exclude_each_other(tmp_path: Path, aegan_recipe: Path) -> None:
    result = invoke("run", aegan_recipe, "--out", tmp_path / "run", "--fresh", "--resume")
    assert result.exit_code == 1 and "choose one" in result.output


# -- what a run says ---------------------------------------------------------------------------


def image_recipe(directory: Path, **train: object) -> Path:
    """A tiny AEGAN on a folder of 12 generated 8x8 pictures, cached in `directory/cache`."""
    faces = directory / "faces"
    faces.mkdir()
    for i in range(12):
        half_and_half(12, 12).rotate(30 * i).save(faces / f"{i:02d}.png")
    data = aegan_data(**train)
    data["domains"]["x"] = {"type": "images", "source": str(faces), "size": 8, "test_fraction": 0.25,
                            "cache": str(directory / "cache")}
    data["mappers"]["G"]["output"] = "tanh"
    return write_recipe(directory, data)


def test_a_piped_run_prints_its_start_up_block_before_training(tmp_path: Path) -> None:
    """In order: version, data (decoded, then from the cache), device and threads, parameters,
    length, the run directory, what is logged where, the first timing, then progress."""
    recipe = image_recipe(tmp_path, steps=60, log_every=60)
    first = cyclegen("run", recipe, "--out", tmp_path / "run", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    expected = [
        "cyclegen ", "domain x: decoding ", "domain x: decoding ", "domain x: cached the decoded set",
        "device cpu, 1 CPU thread(s) (auto: a step's forward passes take", "networks (parameters): G ",
        "length: 60 steps = 60 E+G updates", "new run in ", "logging to ", "timed the first ", "step 60/60",
    ]
    position = -1
    for prefix in expected:  # each after the one before
        position = next((i for i, line in enumerate(lines) if i > position and line.startswith(prefix)), None)
        assert position is not None, f"no {prefix!r} in order in:\n{first.stdout}"
    assert "12 done in" in first.stdout  # the decode's closing line, with its count
    again = cyclegen("run", recipe, "--out", tmp_path / "other", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert f"domain x: 12 8x8 images of {tmp_path / 'faces'} from the cache" in again.stdout


def test_a_gpu_recipe_on_the_cpu_warns_with_its_estimated_duration(tmp_path: Path) -> None:
    result = invoke("run", write_recipe(tmp_path, aegan_data(steps=100, expects_gpu=True)), "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert "warning: this recipe is sized for a GPU (train.expects_gpu) and trains on the CPU" in result.output
    assert "warning: on this CPU the run would take about" in result.output


def test_piped_progress_comes_by_time_as_well_as_by_log_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no log step before the end, lines still come every PLAIN_EVERY_S seconds (0 here)."""
    monkeypatch.setattr(progress, "PLAIN_EVERY_S", 0.0)
    result = invoke("run", write_recipe(tmp_path, aegan_data(steps=8, log_every=100)), "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    shown = [line.split()[1] for line in result.output.splitlines() if line.startswith("step ")]
    assert shown == [f"{step}/8" for step in range(1, 9)]


# -- threads ---------------------------------------------------------------------------------------


def test_small_steps_train_on_one_thread_and_an_explicit_count_wins(tmp_path: Path) -> None:
    before = torch.get_num_threads()
    try:
        auto = invoke("run", write_recipe(tmp_path, aegan_data(steps=2)), "--out", tmp_path / "a")
        assert "device cpu, 1 CPU thread(s) (auto: " in auto.output and torch.get_num_threads() == 1
        fixed = invoke("run", write_recipe(tmp_path, aegan_data(steps=2, threads=2)), "--out", tmp_path / "b")
        assert "device cpu, 2 CPU thread(s) (train.threads)" in fixed.output and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_large_steps_keep_the_default_thread_count(tmp_path: Path) -> None:
    data = aegan_data(batch_size=256)
    for network in [*data["mappers"].values(), *data["critics"].values()]:
        network.update(hidden=1024, depth=3)
    exp = open_recipe(write_recipe(tmp_path, data))
    flops = forward_flops(exp.graph, 256)
    assert flops > SMALL_STEP_FLOPS and forward_flops(exp.graph, 512) == 2 * flops  # per batch, linear in it
    assert auto_threads(exp.graph, 256, torch.device("cpu")) == DEFAULT_THREADS
    assert auto_threads(exp.graph, 1, torch.device("cpu")) == 1


# -- the command line's own polish -----------------------------------------------------------------


def test_version_and_help_answer_without_importing_torch(tmp_path: Path) -> None:
    probe = ("import sys; from typer.testing import CliRunner; from cyclegen.cli import app; "
             "r = CliRunner().invoke(app, sys.argv[1:]); print(r.output); print('torch' in sys.modules)")
    for args in (["--version"], ["--help"], ["run", "--help"]):
        done = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, env=ENV, timeout=60)
        assert done.stdout.rstrip().endswith("False"), (args, done.stdout, done.stderr)
    from cyclegen import __version__

    assert invoke("--version").output.strip() == f"cyclegen {__version__}"


def test_help_shows_plain_metavars_and_whole_sentences() -> None:
    for command in ["run", "sample", "interpolate", "eval", "report"]:
        text = invoke(command, "--help").output
        assert "<bool>" not in text and "<int>" not in text and "{" not in text, text
    assert "RECIPE_OR_RUN_DIR" in invoke("run", "--help").output
    interpolate = " ".join(invoke("interpolate", "--help").output.split())
    assert "each row holds image i, the points decoded between E(image i) and E(image i+1), then image i+1" in (
        interpolate)


def test_plugins_table_keeps_names_whole_in_80_columns() -> None:
    result = CliRunner(env={"COLUMNS": "80"}).invoke(app, ["plugins"])
    assert result.exit_code == 0
    for name in ["aegan-latent-critic", "reconstruction_loss", "adversarial_loss", "density-coverage"]:
        assert name in result.output, result.output


def test_recipe_time_comments_are_not_left_unmeasured() -> None:
    """A step time in a recipe's header says it was measured, and under what conditions."""
    recipes = Path(__file__).resolve().parents[1] / "recipes"
    for path in recipes.glob("*.toml"):
        header = " ".join(line.lstrip("#").strip() for line in path.read_text().splitlines() if line.startswith("#"))
        if re.search(r"\d\s*s(/| a |-a-)step", header):
            assert re.search(r"s/step \(measured: [^)]*threads", header), f"{path.name}: {header}"
