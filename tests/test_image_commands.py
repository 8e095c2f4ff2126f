"""Commands on a trained image run: sample, encode, reconstruct, interpolate, eval.

A tiny AEGAN (MLP networks on 8x8 images) is trained for a few steps in the test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from safetensors import safe_open
from typer.testing import CliRunner

from cyclegen.cli import app
from tests.conftest import AEGAN_TERMS, write_recipe
from tests.test_images import half_and_half

runner = CliRunner()
SIZE = 8


def invoke(*args: object) -> object:
    result = runner.invoke(app, [str(a) for a in args])
    return result


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("image-run")
    faces = root / "faces"
    faces.mkdir()
    for i in range(24):
        half_and_half(12 + i % 3, 12).rotate(15 * i).save(faces / f"{i:02d}.png")
    net = {"type": "mlp", "hidden": 32, "depth": 1}
    data = {
        "name": "tiny-image-aegan",
        "train": {"steps": 6, "batch_size": 8, "device": "cpu", "log_every": 3, "sample_every": 3,
                  "checkpoint_every": 3, "sample_count": 10},
        "domains": {
            "x": {"type": "images", "source": str(faces), "size": SIZE, "test_fraction": 0.25, "cache": "off"},
            "z": {"type": "gaussian", "dim": 4},
        },
        "mappers": {"G": {**net, "from": "z", "to": "x", "output": "tanh"}, "E": {**net, "from": "x", "to": "z"}},
        "critics": {"Dx": {**net, "domain": "x"}, "Dz": {**net, "domain": "z"}},
        "adversarial": {"loss": "bce", "label_smoothing": 0.05},
        "terms": AEGAN_TERMS,
        "schedule": {"critic_batches": "single-class", "mapper_steps": 2, "fakes": "eval"},
        "eval": {"samples": 60},
    }
    run_dir = root / "run"
    result = invoke("run", write_recipe(root, data), "--out", run_dir)
    assert result.exit_code == 0, result.output
    return run_dir, faces


def test_training_writes_image_grids(trained: tuple[Path, Path]) -> None:
    run_dir, _ = trained
    names = {p.name for p in (run_dir / "samples").iterdir()}
    for kind in ["G-fixed", "G-random", "cycle-x-E-G"]:
        assert f"{kind}-step000000000.png" in names and f"{kind}-step000000006.png" in names
    pairs = Image.open(run_dir / "samples" / "cycle-x-E-G-step000000006.png")
    # 10 pairs, 5 per row, under a caption strip (which may widen so small a grid)
    assert pairs.width >= 10 * (SIZE + 2) + 2 and pairs.height > 2 * (SIZE + 2) + 2
    evaluation = json.loads((run_dir / "eval.json").read_text())
    assert {"swd avg", "ndb", "ndb/k"} <= set(evaluation["G: z -> x"])
    cycle = evaluation["cycle: x -> E -> G"]
    assert {"l1", "psnr", "sharpness ratio"} <= set(cycle) and "l1 loss" not in cycle  # the l1 loss is "l1"
    assert "mean abs error" in evaluation["cycle: z -> G -> E"]


def test_sample_grid(trained: tuple[Path, Path], tmp_path: Path) -> None:
    run_dir, _ = trained
    result = invoke("sample", run_dir, "-n", "12", "--out", tmp_path / "s.png")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "s.png").size == (4 * (SIZE + 2) + 2, 3 * (SIZE + 2) + 2)


def test_encode(trained: tuple[Path, Path], tmp_path: Path) -> None:
    run_dir, faces = trained
    out = tmp_path / "codes.safetensors"
    result = invoke("encode", run_dir, faces / "00.png", faces / "01.png", "--out", out)
    assert result.exit_code == 0, result.output
    with safe_open(str(out), "pt") as handle:
        assert handle.get_tensor("latents").shape == (2, 4)
        assert json.loads(handle.metadata()["inputs"])[0].endswith("00.png")


def test_reconstruct_a_folder(trained: tuple[Path, Path], tmp_path: Path) -> None:
    run_dir, faces = trained
    result = invoke("reconstruct", run_dir, faces, "--out", tmp_path / "r.png")
    assert result.exit_code == 0, result.output
    assert "wrote 24 reconstructions" in result.output


def test_interpolate_between_two_images(trained: tuple[Path, Path], tmp_path: Path) -> None:
    run_dir, faces = trained
    out = tmp_path / "strip.png"
    result = invoke("interpolate", run_dir, faces / "00.png", faces / "05.png", "--steps", "7", "--out", out)
    assert result.exit_code == 0, result.output
    assert Image.open(out).size == (9 * (SIZE + 2) + 2, SIZE + 4)  # image, 7 decoded, image


def test_interpolate_rows_from_a_folder_and_random(trained: tuple[Path, Path], tmp_path: Path) -> None:
    run_dir, faces = trained
    result = invoke("interpolate", run_dir, faces, "--out", tmp_path / "rows.png")
    assert result.exit_code == 0, result.output
    assert "wrote 9 interpolation row(s)" in result.output
    assert Image.open(tmp_path / "rows.png").size == (9 * (SIZE + 2) + 2, 9 * (SIZE + 2) + 2)
    result = invoke("interpolate", run_dir, "--random", "--rows", "3", "--steps", "5", "--out", tmp_path / "rand.png")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "rand.png").size == (5 * (SIZE + 2) + 2, 3 * (SIZE + 2) + 2)


def test_command_errors_are_clear(trained: tuple[Path, Path], tmp_path: Path) -> None:
    run_dir, faces = trained
    result = invoke("interpolate", run_dir, faces / "00.png", "--out", tmp_path / "x.png")
    assert result.exit_code == 1 and "needs at least two images" in result.output
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    result = invoke("reconstruct", run_dir, bad, "--out", tmp_path / "x.png")
    assert result.exit_code == 1 and "cannot read image" in result.output
    result = invoke("encode", run_dir, faces / "00.png", "--encoder", "Q")
    assert result.exit_code == 1 and "the run has mappers G, E" in result.output
