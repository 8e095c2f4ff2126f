"""The Python API, `cyclegen.load`: the examples of docs/python-api.md run as written, and every
method agrees with the commands and with the other methods.

Runs are tiny: a 2-D AEGAN and GAN trained for a few steps, and the shipped image recipes
with small networks on 24 generated faces.
"""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from rich.console import Console
from safetensors import safe_open
from typer.testing import CliRunner

import cyclegen
from cyclegen import inference
from cyclegen.cli import app
from cyclegen.errors import CycleGenError
from cyclegen.experiment import open_trained
from cyclegen.run import train_recipe
from cyclegen.trained import TrainedModel
from tests.conftest import aegan_data, write_recipe
from tests.test_cyclegan import TINY, face
from tests.test_shipped_recipes import RECIPES

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "python-api.md"
FACES = 24
runner = CliRunner()


def train(recipe: Path, overrides: list[str], out: Path) -> Path:
    train_recipe(recipe, overrides, out, console=Console(quiet=True))
    return out


def cli(*args: object) -> str:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("faces")
    for i in range(FACES):
        face(i).save(root / f"{i:02d}.png")
    return root


@pytest.fixture(scope="module")
def grid_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny AEGAN on the grid, checkpointed at steps 10 and 20."""
    root = tmp_path_factory.mktemp("grid")
    return train(write_recipe(root, aegan_data()), [], root / "run")


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plain GAN: a generator and no encoder."""
    overrides = ["train.steps=2", "train.sample_every=0", "train.checkpoint_every=2", "eval.samples=100"]
    return train(RECIPES / "gan_grid.toml", overrides, tmp_path_factory.mktemp("gan") / "run")


@pytest.fixture(scope="module")
def image_run(faces: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """recipes/aegan_anime_small.toml with narrow networks: 32x32 images, 32-D codes."""
    overrides = [
        f"domains.x.source={str(faces)!r}", "domains.x.cache='off'", "domains.x.test_fraction=0.25",
        "train.steps=2", "train.device='cpu'", "train.sample_every=2", "train.checkpoint_every=2",
        "train.sample_count=6", "eval.samples=50",
        "mappers.G.width=0.0625", "mappers.E.width=0.0625", "critics.Dx.width=0.0625",
    ]
    return train(RECIPES / "aegan_anime_small.toml", overrides, tmp_path_factory.mktemp("image") / "run")


@pytest.fixture(scope="module")
def cyclegan_run(faces: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """recipes/cyclegan_anime_sketch_small.toml with test_cyclegan's tiny settings: 16x16 images."""
    sources = [f"domains.{domain}.source={str(faces)!r}" for domain in ("sketch", "colour")]
    recipe = RECIPES / "cyclegan_anime_sketch_small.toml"
    return train(recipe, sources + TINY, tmp_path_factory.mktemp("cyclegan") / "run")


@pytest.fixture(scope="module")
def grid(grid_run: Path) -> TrainedModel:
    return cyclegen.load(grid_run)


@pytest.fixture(scope="module")
def images(image_run: Path) -> TrainedModel:
    return cyclegen.load(image_run)


# -- the documentation --------------------------------------------------------------------------


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, re.MULTILINE | re.DOTALL)


def assert_printed(block: str, output: str) -> None:
    """Each `print(...)  # text` line of `block` printed `text`, in order."""
    expected = [line.split("  # ", 1)[1] for line in block.splitlines() if line.startswith("print(")]
    lines = iter(line.strip() for line in output.splitlines())
    for text in expected:
        assert any(line == text for line in lines), f"expected {text!r} in the output:\n{output}"


def test_the_docs_examples_run_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, faces: Path, image_run: Path, cyclegan_run: Path
) -> None:
    """In a folder laid out as the page assumes: the repository's recipes, faces/, face1.png and
    face2.png, and image runs of the recipes it names (tiny versions, trained by the fixtures)."""
    (tmp_path / "recipes").mkdir()
    shutil.copy(RECIPES / "aegan_grid.toml", tmp_path / "recipes")
    shutil.copytree(faces, tmp_path / "faces")
    for i, name in enumerate(["face1.png", "face2.png"]):
        shutil.copy(faces / f"{i:02d}.png", tmp_path / name)
    shutil.copytree(image_run, tmp_path / "runs" / "aegan-anime-small")
    shutil.copytree(cyclegan_run, tmp_path / "runs" / "cyclegan-anime-sketch-small")
    monkeypatch.chdir(tmp_path)
    blocks = python_blocks(PAGE.read_text())
    assert len(blocks) >= 7
    namespace: dict[str, object] = {}
    for i, block in enumerate(blocks):
        output = io.StringIO()
        with contextlib.redirect_stdout(output):
            exec(compile(block, f"{PAGE.name}, block {i + 1}", "exec"), namespace)  # noqa: S102 - the docs' own code
        assert_printed(block, output.getvalue())
    coloured = namespace["coloured"]
    assert isinstance(coloured, torch.Tensor) and coloured.shape == (FACES, 3, 16, 16)


def test_the_docs_list_every_public_member() -> None:
    table = {re.match(r"\| `(\w+)", row).group(1) for row in PAGE.read_text().splitlines() if row.startswith("| `")}
    assert table == {name for name in dir(TrainedModel) if not name.startswith("_")}


# -- loading ---------------------------------------------------------------------------------------


def test_import_cyclegen_does_not_load_the_run_machinery() -> None:
    code = (
        "import sys, cyclegen; heavy = [m for m in ('cyclegen.trained', 'cyclegen.experiment') if m in sys.modules]; "
        "assert not heavy, heavy; import cyclegen.trained; assert cyclegen.load is cyclegen.trained.load"
    )
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr


def test_properties_describe_the_loaded_checkpoint(grid: TrainedModel, grid_run: Path) -> None:
    assert grid.step == 20
    assert grid.checkpoint == grid_run / "checkpoints" / "step-000000020.safetensors"
    assert grid.recipe.name == "tiny-aegan"
    assert grid.mappers == {"G": ("z", "x"), "E": ("x", "z")}
    assert grid.device == torch.device("cpu")
    assert repr(grid) == f"TrainedModel({str(grid_run)!r}, step=20, mappers={{G: z -> x, E: x -> z}})"


def test_an_earlier_checkpoint_has_other_weights(grid: TrainedModel, grid_run: Path) -> None:
    earlier = cyclegen.load(str(grid_run), grid_run / "checkpoints" / "step-000000010.safetensors", device="cpu")
    assert earlier.step == 10
    assert not torch.equal(earlier.sample(20), grid.sample(20))


# -- the methods -----------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".npy", ".safetensors"])
def test_sample_draws_what_the_command_saves(grid: TrainedModel, grid_run: Path, tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"s{suffix}"
    cli("sample", grid_run, "-n", 9, "--seed", 4, "--out", out)
    if suffix == ".npy":
        saved = torch.from_numpy(np.load(out))
    else:
        with safe_open(str(out), "pt") as handle:
            saved = handle.get_tensor("samples")
    samples = grid.sample(9, seed=4)
    assert samples.shape == (9, 2) and not samples.requires_grad
    assert torch.equal(samples, saved)


def test_sample_is_deterministic_per_seed(images: TrainedModel) -> None:
    first = images.sample(5, seed=1)
    assert first.shape == (5, 3, 32, 32) and first.device.type == "cpu"
    assert torch.equal(first, images.sample(5, seed=1))
    assert not torch.equal(first, images.sample(5, seed=2))
    assert first.abs().max() <= 1  # the generator's tanh: the images' own [-1, 1]


def test_reconstruct_is_decode_of_encode(grid: TrainedModel) -> None:
    points = grid.sample(50, seed=3)
    codes = grid.encode(points)
    assert codes.shape == (50, 3)
    decoded = grid.decode(codes)
    assert decoded.shape == (50, 2)
    assert torch.equal(grid.reconstruct(points), decoded)
    assert torch.equal(grid.encode(points.double()), codes)  # float64 is taken as float32


def test_one_sample_gives_a_result_without_the_batch_dimension(grid: TrainedModel) -> None:
    points = grid.sample(4)
    assert grid.encode(points[1]).shape == (3,)
    assert torch.allclose(grid.encode(points[1]), grid.encode(points)[1], atol=1e-6)
    assert grid.decode(grid.encode(points)[0]).shape == (2,)
    assert grid.reconstruct(points[0]).shape == (2,)


def test_encode_of_files_equals_the_command(images: TrainedModel, image_run: Path, faces: Path, tmp_path: Path) -> None:
    files = [faces / "00.png", faces / "07.png"]
    out = tmp_path / "codes.safetensors"
    cli("encode", image_run, *files, "--out", out)
    with safe_open(str(out), "pt") as handle:
        saved = handle.get_tensor("latents")
    codes = images.encode([str(files[0]), files[1]])
    assert codes.shape == (2, 32)
    assert torch.equal(codes, saved)
    assert torch.equal(images.encode(files), codes)  # eval mode: the encoder's input noise and dropout are off


def test_folders_and_tensors_read_alike(images: TrainedModel, faces: Path) -> None:
    folder = images.reconstruct(faces)
    assert folder.shape == (FACES, 3, 32, 32)
    one = images.encode(faces / "03.png")
    assert one.shape == (1, 32)  # a path is a batch, of one file
    assert torch.allclose(one[0], images.encode(faces)[3], atol=1e-5)


def test_interpolate_ends_at_the_reconstructions(images: TrainedModel, faces: Path) -> None:
    a, b = faces / "00.png", faces / "05.png"
    strip = images.interpolate(a, b, steps=5)
    assert strip.shape == (1, 5, 3, 32, 32)
    assert torch.allclose(strip[0, 0], images.reconstruct(a)[0], atol=1e-5)
    assert torch.allclose(strip[0, -1], images.reconstruct(b)[0], atol=1e-5)
    middle = (images.encode(a) + images.encode(b)) / 2
    assert torch.allclose(strip[0, 2], images.decode(middle)[0], atol=1e-5)  # linear in the latent space


def test_interpolate_rows_match_the_command(images: TrainedModel, image_run: Path) -> None:
    starts, ends = images.sample(3, seed=1), images.sample(3, seed=2)
    rows = images.interpolate(starts, ends, steps=4)
    assert rows.shape == (3, 4, 3, 32, 32)
    exp = open_trained(image_run)
    framed = inference.interpolate_images(exp, "E", "G", starts, ends, 4).view(3, 6, 3, 32, 32)
    assert torch.equal(framed[:, 1:-1], rows) and torch.equal(framed[:, 0], starts)
    assert images.interpolate(starts[0], ends[0], steps=4).shape == (4, 3, 32, 32)


def test_translate_both_ways(cyclegan_run: Path, faces: Path) -> None:
    model = cyclegen.load(cyclegan_run)
    assert model.mappers == {"F": ("sketch", "colour"), "H": ("colour", "sketch")}
    coloured = model.translate(faces, mapper="F")
    assert coloured.shape == (FACES, 3, 16, 16)
    exp = open_trained(cyclegan_run)
    sketches = exp.graph.domains["sketch"].read([faces])  # the files drawn as sketches, as in training
    assert torch.equal(model.translate(sketches, mapper="F"), coloured)
    assert model.translate(coloured[:2], mapper="H").shape == (2, 3, 16, 16)
    with pytest.raises(CycleGenError, match=r"translate: choose the mapper with mapper=NAME \(candidates: F, H"):
        model.translate(faces)
    with pytest.raises(CycleGenError, match="encode: this run has no mapper from a data to a prior domain"):
        model.encode(faces)


# -- errors ------------------------------------------------------------------------------------------


def test_not_a_run_directory(tmp_path: Path) -> None:
    with pytest.raises(CycleGenError, match="is not a run directory: it has no recipe.toml"):
        cyclegen.load(tmp_path)


def test_a_run_without_checkpoints(grid_run: Path, tmp_path: Path) -> None:
    shutil.copy(grid_run / "recipe.toml", tmp_path / "recipe.toml")
    with pytest.raises(CycleGenError, match="has no readable checkpoint yet"):
        cyclegen.load(tmp_path)
    with pytest.raises(CycleGenError, match=r"checkpoint .*step-9.safetensors is not a file; a run's checkpoints are in"):
        cyclegen.load(grid_run, grid_run / "checkpoints" / "step-9.safetensors")


def test_a_plain_gan_cannot_encode_and_says_what_it_has(gan_run: Path) -> None:
    gan = cyclegen.load(gan_run)
    assert gan.sample(3).shape == (3, 2)
    assert gan.decode(torch.zeros(4, 2)).shape == (4, 2)  # its generator decodes codes
    points = torch.zeros(2, 2)
    for method, call in [
        ("encode", lambda: gan.encode(points)),
        ("reconstruct", lambda: gan.reconstruct(points)),
        ("interpolate", lambda: gan.interpolate(points, points)),
        ("translate", lambda: gan.translate(points)),
    ]:
        with pytest.raises(CycleGenError, match=rf"^{method}: this run has no mapper .*\(its mappers: G: z -> x\)$"):
            call()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: m.encode(torch.zeros(5, 3)), r"encode: domain 'x' expects samples of shape \(N, 2\), got \(5, 3\)"),
        (lambda m: m.decode(torch.zeros(5, 2)), r"decode: domain 'z' expects samples of shape \(N, 3\), got \(5, 2\)"),
        (lambda m: m.reconstruct(torch.zeros(2, 2, 2)), r"reconstruct: domain 'x' expects samples of shape \(N, 2\)"),
        (lambda m: m.encode(torch.zeros(0, 2)), "encode: the batch is empty"),
        (lambda m: m.encode(torch.zeros(4, 2, dtype=torch.long)), "takes floating-point samples .* got torch.int64"),
        (lambda m: m.encode(np.zeros((4, 2))), "give a tensor of 'x' samples, or a path .* not ndarray"),
        (lambda m: m.decode([0.0, 1.0, 2.0]), "decode: give the codes as a tensor, not list"),
        (lambda m: m.encode(["points.npy"]), "encode: domain 'x' cannot read files"),
        (lambda m: m.encode(torch.zeros(4, 2), encoder="Q"), "encode: unknown encoder 'Q': the run has mappers G, E"),
        (lambda m: m.sample(0), "sample: the number of samples must be at least 1, got 0"),
        (lambda m: m.interpolate(torch.zeros(2, 2), torch.zeros(3, 2)), "a has 2 samples and b has 3"),
        (lambda m: m.interpolate(torch.zeros(2), torch.ones(2), steps=1), "steps must be at least 2"),
    ],
)
def test_mistakes_are_named(grid: TrainedModel, call, message: str) -> None:
    with pytest.raises(CycleGenError, match=message):
        call(grid)


@pytest.mark.parametrize("device", ["bogus", *([] if torch.cuda.is_available() else ["cuda"])])
def test_an_unusable_device_is_refused(grid_run: Path, device: str) -> None:
    with pytest.raises(CycleGenError, match=f"device '{device}' cannot be used here .*; use 'cpu'"):
        cyclegen.load(grid_run, device=device)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_gpu_runs_the_networks_and_hands_back_cpu_tensors(grid: TrainedModel, grid_run: Path) -> None:
    model = cyclegen.load(grid_run, device="cuda")
    assert model.device.type == "cuda"
    samples = model.sample(64, seed=2)
    assert samples.device.type == "cpu"
    assert torch.allclose(samples, grid.sample(64, seed=2), atol=1e-4)
    assert torch.allclose(model.reconstruct(samples), grid.reconstruct(samples), atol=1e-4)
