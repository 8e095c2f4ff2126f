"""The command line end to end on a tiny toy recipe."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from safetensors.torch import load_file
from typer.testing import CliRunner

from cyclegen.checkpoint import checkpoint_files
from cyclegen.cli import app
from tests.conftest import aegan_data, interrupt_at_step, write_recipe

runner = CliRunner()


def invoke(*args: str) -> object:
    return runner.invoke(app, [str(a) for a in args])


def test_run_sample_eval_end_to_end(tmp_path: Path, aegan_recipe: Path) -> None:
    run_dir = tmp_path / "run"
    result = invoke("run", aegan_recipe, "--out", run_dir, "--set", "train.steps=30")
    assert result.exit_code == 0, result.output
    assert f"trained 30 steps into {run_dir}" in result.output
    assert "modes covered" in result.output
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["step"] == 30

    png = tmp_path / "s.png"
    result = invoke("sample", run_dir, "-n", "100", "--out", png)
    assert result.exit_code == 0, result.output
    assert Image.open(png).size == (512, 512)

    npy = tmp_path / "s.npy"
    assert invoke("sample", run_dir, "-n", "7", "--out", npy, "--seed", "1").exit_code == 0
    assert np.load(npy).shape == (7, 2)
    st = tmp_path / "s.safetensors"
    assert invoke("sample", run_dir, "-n", "7", "--out", st, "--seed", "1").exit_code == 0
    assert np.allclose(load_file(str(st))["samples"].numpy(), np.load(npy))

    result = invoke("eval", run_dir, "--json", "--samples", "300")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert set(metrics["G: z -> x"]) == {"modes covered", "modes (strict)", "modes total", "high quality %", "kl"}
    assert "l1 loss" in metrics["cycle: x -> E -> G"]
    assert "mean abs error" in metrics["cycle: z -> G -> E"]
    again = json.loads(invoke("eval", run_dir, "--json", "--samples", "300").stdout)
    assert again == metrics  # evaluation is repeatable


def test_validate_prints_graph_and_parameter_counts(aegan_recipe: Path) -> None:
    result = invoke("validate", aegan_recipe)
    assert result.exit_code == 0, result.output
    # mlp 3 -> 16 -> 2: 3*16+16 + 16*2+2 = 98 parameters
    assert "z -> x" in result.output and "98" in result.output
    assert "adv Dz(z -> G -> E)" in result.output
    assert "is valid" in result.output


def test_validate_prints_each_learning_rate_schedule(tmp_path: Path) -> None:
    data = aegan_data()
    data["train"]["steps"] = 40
    data["optim"]["mappers"]["lr_schedule"] = {"type": "linear-decay", "decay_start": 0.5, "end_factor": 0.1}
    result = invoke("validate", write_recipe(tmp_path, data))
    assert result.exit_code == 0, result.output
    lr = data["optim"]["mappers"]["lr"]
    assert f"optim.mappers: lr {lr:g} until step 20, then linear decay to {lr * 0.1:g} at step 40" in result.output


def test_errors_are_one_clear_line_without_traceback(tmp_path: Path) -> None:
    data = aegan_data()
    data["mappers"]["G"]["type"] = "mlpp"
    result = invoke("validate", write_recipe(tmp_path, data))
    assert result.exit_code == 1
    assert "unknown mapper 'mlpp'; did you mean 'mlp'?" in result.output
    assert "Traceback" not in result.output


def test_sample_needs_a_trained_run(tmp_path: Path) -> None:
    result = invoke("sample", tmp_path)
    assert result.exit_code == 1
    assert "is not a run directory" in result.output


def test_plugins_lists_plugins_versions_and_components() -> None:
    result = runner.invoke(app, ["plugins"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for text in ["toy2d", "grid", "ring", "losses", "bce", "hinge", "mlp", "gaussian", "0.1.0"]:
        assert text in result.output


def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path, aegan_data(steps=1_000_000, log_every=1, checkpoint_every=0, sample_every=0))
    run_dir = tmp_path / "run"
    code, output = interrupt_at_step(["run", str(recipe), "--out", str(run_dir)], 3)
    assert code == 130, output
    assert "checkpoint saved" in output
    saved = checkpoint_files(run_dir / "checkpoints")
    assert len(saved) == 1
    step = int(saved[0].stem.split("-")[1])
    assert 3 <= step < 1_000_000


def test_device_option_opens_a_gpu_trained_run_on_the_cpu(tmp_path: Path, aegan_recipe: Path) -> None:
    """A run whose recipe names CUDA (trained on a GPU machine) is sampled and evaluated on a laptop."""
    import torch

    import cyclegen

    run_dir = tmp_path / "run"
    assert invoke("run", aegan_recipe, "--out", run_dir, "--set", "train.steps=5").exit_code == 0
    recipe = run_dir / "recipe.toml"
    recipe.write_text(recipe.read_text().replace('device = "cpu"', 'device = "cuda"'))
    if not torch.cuda.is_available():
        refused = invoke("eval", run_dir)
        assert refused.exit_code == 1 and "no CUDA device is available" in refused.output
    evaluated = invoke("eval", run_dir, "--device", "cpu", "--json")
    assert evaluated.exit_code == 0, evaluated.output
    assert "G: z -> x" in json.loads(evaluated.stdout)
    assert cyclegen.load(run_dir, device="cpu").sample(4).shape == (4, 2)
    wrong = invoke("sample", run_dir, "--device", "tpu9", "--out", tmp_path / "s.npy")
    assert wrong.exit_code == 1 and "device 'tpu9' cannot be used here" in wrong.output
