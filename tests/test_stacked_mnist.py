"""Stacked MNIST: the domain's batches and errors, the shipped digit classifier, the mode metric,
and the recipes training end to end.

Most tests run on a small synthetic mnist.npz written here, so the domain's code paths run on a
fresh clone; the few that need real digits (the classifier's accuracy, the metric on real
stacked samples) read ../shared/data/mnist.npz or $CYCLEGEN_TEST_MNIST and skip without it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from cyclegen_mnist.classifier import SHIPPED, classify, load_classifier
from PIL import Image
from safetensors.torch import save_file
from typer.testing import CliRunner

from cyclegen.cli import app
from cyclegen.errors import RecipeError
from cyclegen.plugins import load_plugins
from tests.conftest import NO_MNIST, SHARED_MNIST

REGISTRY = load_plugins().registry
RECIPES = Path(__file__).resolve().parents[1] / "recipes"
needs_mnist = pytest.mark.skipif(not SHARED_MNIST.is_file(), reason=NO_MNIST)


def synthetic_mnist(path: Path, train: int = 120, test: int = 40, seed: int = 0, **replace: np.ndarray) -> Path:
    """An mnist.npz of random 28x28 uint8 "digits" with the real keys, shapes and dtypes; labels
    cycle through 0-9. `replace` swaps in (or, as None, drops) arrays, for broken files."""
    rng = np.random.default_rng(seed)
    arrays = {
        "x_train": rng.integers(0, 256, (train, 28, 28), dtype=np.uint8),
        "y_train": (np.arange(train) % 10).astype(np.uint8),
        "x_test": rng.integers(0, 256, (test, 28, 28), dtype=np.uint8),
        "y_test": (np.arange(test) % 10).astype(np.uint8),
    }
    arrays.update(replace)
    np.savez(path, **{key: value for key, value in arrays.items() if value is not None})
    return path


def stacked(source: Path | str, **options: object):
    return REGISTRY.build("domain", "stacked-mnist", "domains.x", {"source": str(source), **options}, name="x")


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def as_uint8(samples: torch.Tensor) -> np.ndarray:
    return ((samples + 1) * 127.5).round().to(torch.uint8).numpy()


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Classifying tens of thousands of digits is several times slower on two threads of a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_mnist(tmp_path_factory.mktemp("mnist") / "mnist.npz")


# -- the domain, on synthetic digits -------------------------------------------------------


def test_batches_are_padded_digits_in_range_and_repeat_per_generator(synthetic: Path) -> None:
    domain = stacked(synthetic)
    assert domain.shape == (3, 32, 32) and domain.can_show
    batch = domain.batch(50, seeded(1))
    assert batch.shape == (50, 3, 32, 32) and batch.dtype == torch.float32
    assert batch.min() >= -1 and batch.max() <= 1
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False
    assert (batch[..., border] == -1).all()  # zero-padded by 2 pixels, not resized
    assert torch.equal(batch, domain.batch(50, seeded(1)))
    assert not torch.equal(batch, domain.batch(50, seeded(2)))
    again, labels = domain.batch_with_labels(50, seeded(1))
    assert torch.equal(again, batch) and labels.shape == (50, 3)


@pytest.mark.parametrize("split", ["train", "test"])
def test_each_channel_is_a_digit_of_its_own_split_with_its_label(synthetic: Path, split: str) -> None:
    with np.load(synthetic) as data:
        own = {image.tobytes(): int(label) for image, label in zip(data[f"x_{split}"], data[f"y_{split}"])}
        other = {image.tobytes() for image in data["x_test" if split == "train" else "x_train"]}
    samples, labels = stacked(synthetic).batch_with_labels(200, seeded(3), split)
    digits = as_uint8(samples)[:, :, 2:30, 2:30]
    for sample, sample_labels in zip(digits, labels.tolist()):
        keys = [channel.tobytes() for channel in sample]
        assert [own[key] for key in keys] == sample_labels
        assert not other.intersection(keys)


def test_channels_are_drawn_independently(synthetic: Path) -> None:
    n = 20_000
    _, labels = stacked(synthetic).batch_with_labels(n, seeded(4))
    for a, b in [(0, 1), (0, 2), (1, 2)]:
        joint = torch.bincount(labels[:, a] * 10 + labels[:, b], minlength=100).double() / n
        assert (joint - 0.01).abs().max() < 0.004  # uniform labels: every pair of digits 1% of samples
    assert len(torch.unique(labels @ torch.tensor([100, 10, 1]))) == 1000


def test_show_writes_an_rgb_grid(synthetic: Path, tmp_path: Path) -> None:
    domain = stacked(synthetic)
    path = domain.show(domain.batch(16, seeded(0)), tmp_path / "grid.png", title="sixteen samples")
    with Image.open(path) as picture:
        assert picture.mode == "RGB" and picture.width >= 4 * 32


# -- clear errors -------------------------------------------------------------------------


def broken_files(root: Path) -> dict[str, tuple[Path, str]]:
    """Files that are no usable mnist.npz, each with what its error must say."""
    whole = synthetic_mnist(root / "whole.npz").read_bytes()
    (root / "torn.npz").write_bytes(whole[: len(whole) // 2])
    (root / "text.npz").write_text("not an archive\n")
    np.save(root / "array.npy", np.zeros((3, 28, 28), np.uint8))
    return {
        "missing": (root / "absent.npz", "not found"),
        "folder": (root, "is a folder"),
        "torn": (root / "torn.npz", "not a readable .npz"),
        "text": (root / "text.npz", "not a readable .npz"),
        "npy": (root / "array.npy", "single .npy array"),
        "no labels": (synthetic_mnist(root / "no_labels.npz", y_test=None), "lacks y_test"),
        "no digits": (synthetic_mnist(root / "no_digits.npz", x_train=None, y_train=None), "lacks x_train, y_train"),
        "resized": (synthetic_mnist(root / "resized.npz", x_train=np.zeros((120, 32, 32), np.uint8)),
                    "x_train should be (N, 28, 28) uint8"),
        "float": (synthetic_mnist(root / "float.npz", x_test=np.zeros((40, 28, 28), np.float32)),
                  "x_test should be (N, 28, 28) uint8"),
        "bad labels": (synthetic_mnist(root / "bad_labels.npz", y_train=np.full(120, 10, np.uint8)),
                       "y_train should be 120 labels 0-9"),
    }


def test_unusable_files_are_named_with_the_fix(tmp_path: Path) -> None:
    for case, (path, problem) in broken_files(tmp_path).items():
        with pytest.raises(RecipeError) as info:
            stacked(path)
        message = str(info.value)
        assert message.startswith("domains.x (domain 'stacked-mnist'): MNIST source"), case
        assert problem in message and path.name in message, (case, message)
        assert "README, section Data" in message and "--set domains.x.source=PATH" in message, case


def test_a_bad_classifier_file_is_named_with_the_fix(
    synthetic: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    torn = tmp_path / "torn.safetensors"
    torn.write_bytes(SHIPPED.read_bytes()[:1000])
    foreign = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.zeros(3)}, foreign)
    cases = {torn: "unreadable or do not fit", foreign: "unreadable or do not fit", tmp_path / "none": "not found"}
    for path, problem in cases.items():
        with pytest.raises(RecipeError, match=problem) as info:
            stacked(synthetic, classifier=str(path))
        assert str(path) in str(info.value) and "train_classifier" in str(info.value)
    monkeypatch.setenv("CYCLEGEN_MNIST_CLASSIFIER", str(torn))
    with pytest.raises(RecipeError, match="torn.safetensors are unreadable"):
        stacked(synthetic)
    copy = tmp_path / "copy.safetensors"
    shutil.copy(SHIPPED, copy)
    monkeypatch.setenv("CYCLEGEN_MNIST_CLASSIFIER", str(copy))
    stacked(synthetic)  # the variable names the file to use


# -- the mode metric ------------------------------------------------------------------------


def test_copies_of_one_sample_are_one_mode(synthetic: Path) -> None:
    domain = stacked(synthetic)
    [metric] = domain.metrics()
    assert metric.name == "stacked-modes"
    copies = domain.batch(1, seeded(5)).expand(300, -1, -1, -1)
    result = metric.evaluate(copies, domain, seeded(0))
    assert result["modes covered"] == 1 and result["modes total"] == 1000
    assert result["kl"] == pytest.approx(np.log(1000))
    assert result["confident %"] in (0.0, 100.0)


@pytest.fixture(scope="module")
def real_stacked() -> tuple[dict[str, float], torch.Tensor, torch.Tensor]:
    """The metric on 26,000 real stacked test samples (the papers' count), and the true labels of
    the first 5,000 and those the metric reads."""
    if not SHARED_MNIST.is_file():
        pytest.skip(NO_MNIST)
    domain = stacked(SHARED_MNIST)
    samples, truth = domain.batch_with_labels(26_000, seeded(0), "test")
    [metric] = domain.metrics()
    return metric.evaluate(samples, domain, seeded(1)), truth[:5000], metric.labels(samples[:5000])[0]


@needs_mnist
def test_shipped_classifier_reads_the_mnist_test_set() -> None:
    with np.load(SHARED_MNIST) as data:
        digits, labels = data["x_test"], torch.from_numpy(data["y_test"].astype(np.int64))
    padded = torch.from_numpy(np.pad(digits, ((0, 0), (2, 2), (2, 2)))).float() / 127.5 - 1
    predicted, confidence = classify(load_classifier(), padded.unsqueeze(1))
    assert float((predicted == labels).double().mean()) >= 0.985
    assert float((confidence >= 0.5).double().mean()) > 0.99


@needs_mnist
def test_real_stacked_samples_cover_every_mode_evenly(real_stacked) -> None:
    result, _, _ = real_stacked
    assert result["modes covered"] >= 995 and result["modes total"] == 1000
    assert result["kl"] < 0.05  # 0.025: sampling noise at 26,000 samples and unequal digit counts
    assert result["confident %"] > 97


@needs_mnist
def test_the_metric_reads_the_true_labels(real_stacked) -> None:
    _, truth, read = real_stacked
    assert float((read == truth).double().mean()) >= 0.985  # per digit
    assert float((read == truth).all(1).double().mean()) >= 0.96  # all three digits of a sample


# -- the recipes, end to end ----------------------------------------------------------------


@pytest.mark.parametrize("family", ["gan", "aegan"])
def test_recipe_trains_and_evaluates_on_synthetic_digits(family: str, synthetic: Path, tmp_path: Path) -> None:
    networks = ["mappers.G", "critics.Dx"] + (["mappers.E"] if family == "aegan" else [])
    overrides = [
        f"domains.x.source={str(synthetic)!r}", "train.steps=2", "train.batch_size=8", "train.log_every=1",
        "train.sample_every=0", "train.checkpoint_every=0", "train.sample_count=4", "train.threads=1",
        "train.device='cpu'", "eval.samples=64", *(f"{network}.base=4" for network in networks),
    ]
    out = tmp_path / "run"
    args = ["run", str(RECIPES / f"{family}_stacked_mnist.toml"), "--out", str(out)]
    result = CliRunner().invoke(app, args + [part for o in overrides for part in ("--set", o)])
    assert result.exit_code == 0, result.output
    evaluation = json.loads((out / "eval.json").read_text())
    modes = evaluation["G: z -> x"]
    assert set(modes) == {"modes covered", "modes total", "kl", "confident %"}
    assert 1 <= modes["modes covered"] <= 64 and modes["modes total"] == 1000
    if family == "aegan":
        assert {"l1", "psnr"} <= set(evaluation["cycle: x -> E -> G"])
    assert (out / "samples" / "G-fixed-step000000002.png").is_file()
