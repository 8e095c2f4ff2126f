"""The image domain: folders and zips of mixed images, the decode cache, splits, flips, grids."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import cyclegen_images.loading as loading
from cyclegen.errors import RecipeError
from cyclegen.streams import domain_generator
from cyclegen.plugins import load_plugins
from tests.conftest import NO_FACES, SHARED_ZIP

REGISTRY = load_plugins().registry


def images(source: Path, **options: object):
    return REGISTRY.build("domain", "images", "domains.x", {"source": str(source), **options}, name="x")


def half_and_half(width: int, height: int, mode: str = "RGB") -> Image.Image:
    """Left half red, right half blue: orientation and crop are visible in the pixels."""
    array = np.zeros((height, width, 3), np.uint8)
    array[:, : width // 2] = (255, 0, 0)
    array[:, width // 2 :] = (0, 0, 255)
    return Image.fromarray(array).convert(mode)


def make_folder(root: Path) -> Path:
    """Mixed formats and modes, a nested folder, a truncated JPEG and a non-image."""
    root.mkdir(parents=True, exist_ok=True)
    half_and_half(40, 20).save(root / "a_wide.jpg", quality=95)
    rgba = half_and_half(16, 16, "RGBA")
    rgba.putalpha(0)  # fully transparent: alpha is dropped, colours stay
    rgba.save(root / "b_rgba.png")
    half_and_half(16, 16, "L").save(root / "c_gray.png")
    (root / "nested").mkdir(exist_ok=True)
    half_and_half(16, 16).save(root / "nested" / "d.webp", lossless=True)
    half_and_half(16, 16).save(root / "nested" / "e.BMP")
    buffer = io.BytesIO()
    half_and_half(32, 32).save(buffer, format="JPEG")
    (root / "f_truncated.jpg").write_bytes(buffer.getvalue()[:200])
    (root / "g_not_an_image.png").write_bytes(b"hello")
    (root / "notes.txt").write_text("ignored: not an image extension")
    return root


def zip_of(folder: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, f"faces/{path.relative_to(folder)}")
    return target


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_folder(tmp_path / "imgs")


def test_folder_of_mixed_images(folder: Path, tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match=r"skipped 2 unreadable image\(s\) in .*f_truncated.jpg, g_not_an_image.png"):
        domain = images(folder, size=8, cache=str(tmp_path / "cache"))
    assert domain.names == ["a_wide.jpg", "b_rgba.png", "c_gray.png", "nested/d.webp", "nested/e.BMP"]
    assert domain.shape == (3, 8, 8) and domain.pixels.dtype == torch.uint8
    # The 40x20 image is centre-cropped to 20x20, so it stays half red, half blue.
    wide = domain.pixels[0].float()
    assert wide[0, :, :3].mean() > 200 and wide[2, :, :3].mean() < 60
    assert wide[2, :, 5:].mean() > 200 and wide[0, :, 5:].mean() < 60
    rgba = domain.pixels[1]
    assert rgba[0, 0, 0] == 255 and rgba[2, 0, 0] == 0  # alpha dropped, colour kept
    gray = domain.pixels[2]
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])
    batch = domain.batch(6, domain_generator(0, "x"))
    assert batch.shape == (6, 3, 8, 8) and batch.min() >= -1 and batch.max() <= 1


def test_zip_reads_the_same_images_as_the_folder(folder: Path, tmp_path: Path) -> None:
    archive = zip_of(folder, tmp_path / "faces.zip")
    with pytest.warns(UserWarning):
        from_folder = images(folder, size=8, cache="off")
    with pytest.warns(UserWarning):
        from_zip = images(archive, size=8, cache="off")
    assert torch.equal(from_folder.pixels, from_zip.pixels)
    assert from_zip.names[0] == "faces/a_wide.jpg"


def test_grayscale_domain(folder: Path) -> None:
    with pytest.warns(UserWarning):
        domain = images(folder, size=8, channels=1, cache="off")
    assert domain.shape == (1, 8, 8) and domain.pixels.shape[1] == 1


def test_strict_makes_unreadable_files_an_error(folder: Path) -> None:
    with pytest.raises(RecipeError, match=r"domains.x .*2 unreadable image\(s\).*set strict = false"):
        images(folder, size=8, strict=True, cache="off")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing", "not found; expected a folder of images"),
        (lambda p: (p / "empty").mkdir() or p / "empty", "holds no images"),
        (lambda p: (p / "x.txt").write_text("x") and p / "x.txt", "neither a folder nor a zip"),
    ],
)
def test_bad_sources_fail_before_training(tmp_path: Path, make, message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        images(make(tmp_path), size=8, cache="off")


def test_decoded_set_is_cached_and_steps_never_decode(folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    with pytest.warns(UserWarning):
        first = images(folder, size=8, cache=str(cache))
    assert len(list(cache.glob("*.npy"))) == 1

    def no_decoding(*args: object) -> None:
        raise AssertionError("decoded an image")

    monkeypatch.setattr(loading, "decode", no_decoding)
    with pytest.warns(UserWarning):  # the cache remembers the skipped files too
        second = images(folder, size=8, cache=str(cache))
    assert torch.equal(first.pixels, second.pixels)
    second.batch(16, domain_generator(0, "x"))
    second.batch(4, domain_generator(0, "x"), "test")


def test_cache_key_follows_content_and_preprocessing(folder: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with pytest.warns(UserWarning):
        images(folder, size=8, cache=str(cache))
        images(folder, size=4, cache=str(cache))
    assert len(list(cache.glob("*.npy"))) == 2
    half_and_half(16, 16).save(folder / "h_new.png")
    with pytest.warns(UserWarning):
        grown = images(folder, size=8, cache=str(cache))
    assert len(grown) == 6 and len(list(cache.glob("*.npy"))) == 3


def test_split_is_deterministic_disjoint_and_test_is_never_flipped(tmp_path: Path) -> None:
    root = tmp_path / "many"
    root.mkdir()
    for i in range(40):
        half_and_half(8, 8).save(root / f"{i:02d}.png")
    domain = images(root, size=8, test_fraction=0.25, cache="off")
    again = images(root, size=8, test_fraction=0.25, cache="off")
    other = images(root, size=8, test_fraction=0.25, split_seed=1, cache="off")
    assert len(domain.splits["test"]) == 10 and len(domain.splits["train"]) == 30
    assert torch.equal(domain.splits["test"], again.splits["test"])
    assert not torch.equal(domain.splits["test"], other.splits["test"])
    assert not set(domain.splits["test"].tolist()) & set(domain.splits["train"].tolist())
    test = domain.batch(10, domain_generator(0, "x"), "test")
    assert (test[:, 0, :, 0] > 0.9).all()  # red stays on the left
    train = domain.batch(400, domain_generator(0, "x"))
    mirrored = (train[:, 0, 0, 0] < 0).float().mean()
    assert 0.4 < mirrored < 0.6
    no_flip = images(root, size=8, flip=False, cache="off").batch(50, domain_generator(0, "x"))
    assert (no_flip[:, 0, :, 0] > 0.9).all()


def test_read_user_files_strictly(folder: Path, tmp_path: Path) -> None:
    with pytest.warns(UserWarning):
        domain = images(folder, size=8, cache="off")
    batch = domain.read([folder / "a_wide.jpg", folder / "nested"])
    assert batch.shape == (3, 3, 8, 8)
    with pytest.raises(ValueError, match="cannot read image .*f_truncated.jpg"):
        domain.read([folder / "f_truncated.jpg"])
    with pytest.raises(ValueError, match="not found"):
        domain.read([folder / "nope.png"])


def test_grid_and_pairs_pictures(folder: Path, tmp_path: Path) -> None:
    with pytest.warns(UserWarning):
        domain = images(folder, size=8, cache="off")
    batch = domain.batch(6, domain_generator(0, "x"))
    grid = Image.open(domain.show(batch, tmp_path / "grid.png"))
    assert grid.size == (3 * 10 + 2, 2 * 10 + 2)
    pairs = Image.open(domain.show_pairs(batch, batch, tmp_path / "pairs.png"))
    assert pairs.size == (10 * 10 + 2, 2 * 10 + 2)


@pytest.mark.skipif(not SHARED_ZIP.exists(), reason=NO_FACES)
def test_reads_the_anime_faces_zip(tmp_path: Path) -> None:
    domain = images(SHARED_ZIP, size=32, limit=300, cache=str(tmp_path))
    assert len(domain) == 300 and domain.shape == (3, 32, 32)
    assert domain.names[0].startswith("anime-faces-64/")
    batch = domain.batch(16, domain_generator(0, "x"))
    assert batch.std() > 0.2  # real pictures, not blank
