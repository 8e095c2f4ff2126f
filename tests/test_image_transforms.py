"""Image views and true pairs: grayscale and sketch transforms, disjoint parts, held-out keys."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegen.errors import RecipeError
from cyclegen.streams import domain_generator
from tests.conftest import NO_FACES, SHARED_ZIP
from tests.test_images import half_and_half, images


def to_uint8(pixels: torch.Tensor) -> np.ndarray:
    """[-1, 1] floats (N, C, H, W) back to the stored uint8 levels, as (N, H, W, C)."""
    return ((pixels + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


@pytest.fixture
def faces(tmp_path: Path) -> Path:
    """40 lossless 16x16 images: seeded noise in colour, with a left/right asymmetry."""
    root = tmp_path / "faces"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(40):
        array = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        array[:, :4] = (255, 0, 0)
        Image.fromarray(array).save(root / f"{i:02d}.png")
    return root


def test_transforms_are_deterministic_and_leave_the_cache_alone(faces: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    for transform in ("grayscale", "sketch"):
        first = images(faces, size=16, transform=transform, cache="off")
        again = images(faces, size=16, transform=transform, cache=str(cache))  # decoded, then from the cache
        cached = images(faces, size=16, transform=transform, cache=str(cache))
        assert torch.equal(first.pixels, again.pixels) and torch.equal(first.pixels, cached.pixels)
        assert torch.equal(first.held_out()[1], cached.held_out()[1])
    images(faces, size=16, transform="sketch", channels=1, cache=str(cache))
    images(faces, size=16, cache=str(cache))
    assert len(list(cache.glob("*.npy"))) == 1  # every view reads the one RGB decode


def test_grayscale_is_bt601_luma_as_pillow(tmp_path: Path) -> None:
    root = tmp_path / "colours"
    root.mkdir()
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (10, 200, 90)]
    known = np.array(colours, np.uint8).repeat(2, 0).reshape(1, 8, 3).repeat(8, 0)  # columns of colours
    Image.fromarray(known).save(root / "a_known.png")
    noise = np.random.default_rng(1).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(noise).save(root / "b_noise.png")
    gray = images(root, size=8, transform="grayscale", channels=3, cache="off")
    assert gray.shape == (3, 8, 8)
    levels = gray.pixels
    assert torch.equal(levels[:, 0], levels[:, 1]) and torch.equal(levels[:, 1], levels[:, 2])
    by_hand = [round(0.299 * r + 0.587 * g + 0.114 * b) for r, g, b in colours]
    assert by_hand == [76, 150, 29, 131]
    assert levels[0, 0, 0, ::2].tolist() == by_hand
    pillow = np.asarray(Image.fromarray(noise).convert("L"))
    assert np.array_equal(levels[1, 0].numpy(), pillow)
    single = images(root, size=8, transform="grayscale", channels=1, cache="off")
    assert single.shape == (1, 8, 8) and torch.equal(single.pixels, levels[:, :1])
    read = single.read([root / "b_noise.png"])  # files a user gives get the training view
    assert read.shape == (1, 1, 8, 8) and np.array_equal(to_uint8(read)[0, ..., 0], pillow)


def test_sketch_is_white_on_flat_areas_and_dark_on_edges(tmp_path: Path) -> None:
    root = tmp_path / "shapes"
    root.mkdir()
    for level in (0, 128, 255):
        Image.new("RGB", (32, 32), (level, level // 2, 255 - level)).save(root / f"flat_{level:03d}.png")
    edge = np.full((32, 32, 3), 200, np.uint8)
    edge[:, :16] = 60  # dark left half, sharp boundary between columns 15 and 16
    Image.fromarray(edge).save(root / "z_edge.png")
    domain = images(root, size=32, transform="sketch", channels=3, test_fraction=0.25, cache="off")
    _, pixels = domain.held_out()
    everything = torch.cat([pixels, domain.batch(64, domain_generator(0, "x"))])
    assert everything.min() >= -1 and everything.max() <= 1
    assert torch.equal(everything[:, 0], everything[:, 1]) and torch.equal(everything[:, 1], everything[:, 2])
    sketches = domain.read([root])  # every image, in file-name order
    for flat in sketches[:3]:
        assert (flat == 1.0).all()
    line = sketches[3][0]
    assert (line[:, 15] < 0).all()  # the dark side of the boundary is drawn
    assert (line[:, :13] == 1.0).all() and (line[:, 16:] == 1.0).all()  # the rest stays white


def test_parts_are_disjoint_cover_training_and_share_the_held_out_set(tmp_path: Path) -> None:
    root = tmp_path / "levels"
    root.mkdir()
    for i in range(40):  # image i is flat grey 5 * i: a batch's pixels say which images it drew
        Image.new("L", (8, 8), 5 * i).save(root / f"{i:02d}.png")
    whole = images(root, size=8, channels=1, test_fraction=0.25, cache="off")
    halves = [images(root, size=8, channels=1, test_fraction=0.25, parts=2, part=p, cache="off") for p in (0, 1)]
    sketch = images(root, size=8, transform="sketch", test_fraction=0.25, parts=2, part=1, cache="off")
    train = [set(h.splits["train"].tolist()) for h in halves]
    assert train[0] and train[1] and not train[0] & train[1]
    assert train[0] | train[1] == set(whole.splits["train"].tolist())
    for other in (*halves, sketch):
        assert torch.equal(other.splits["test"], whole.splits["test"])
        assert other.held_out()[0] == whole.held_out()[0]
    for half, indices in zip(halves, train):
        drawn = set(to_uint8(half.batch(200, domain_generator(0, "x")))[:, 0, 0, 0].tolist())
        assert drawn == {5 * i for i in indices}


def test_an_empty_part_is_an_error(tmp_path: Path) -> None:
    root = tmp_path / "two"
    root.mkdir()
    for i in range(2):
        half_and_half(8, 8).save(root / f"{i}.png")
    errors = []
    for part in (0, 1):  # one training image: exactly one of the two parts is empty
        try:
            images(root, size=8, parts=2, part=part, cache="off")
        except RecipeError as exc:
            errors.append(str(exc))
    assert len(errors) == 1 and "holds none of the 1 training images; use fewer parts or more images" in errors[0]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"parts": 2, "part": 2}, r"between 0 and 1 \(parts = 2\), got 2; set part to 0..1 or raise parts"),
        ({"parts": 3, "part": -1}, r"part must be between 0 and 2 \(parts = 3\), got -1"),
        ({"parts": 0}, r"parts must be at least 1, got 0; use parts = 1"),
        ({"transform": "blur"}, r"domains.x.transform: Input should be 'none', 'grayscale' or 'sketch'"),
    ],
)
def test_bad_options_name_the_fix(tmp_path: Path, options: dict, message: str) -> None:
    half_and_half(8, 8).save(tmp_path / "a.png")
    half_and_half(8, 8).save(tmp_path / "b.png")
    with pytest.raises(RecipeError, match=message):
        images(tmp_path, size=8, cache="off", **options)


def test_held_out_gives_true_pairs_across_views(faces: Path) -> None:
    common = {"size": 16, "test_fraction": 0.25, "parts": 2, "cache": "off"}
    colour = images(faces, part=0, **common)
    gray = images(faces, transform="grayscale", channels=1, part=1, **common)
    (colour_keys, colour_pixels), (gray_keys, gray_pixels) = colour.held_out(), gray.held_out()
    assert colour_keys == gray_keys == sorted(colour_keys) and len(colour_keys) == 10
    assert colour_pixels.shape == (10, 3, 16, 16) and gray_pixels.shape == (10, 1, 16, 16)
    for rgb, levels in zip(to_uint8(colour_pixels), to_uint8(gray_pixels)):
        assert np.array_equal(levels[..., 0], np.asarray(Image.fromarray(rgb).convert("L")))
    assert (colour_pixels[:, 0, :, :4] == 1).all()  # the red stripe stays left: never flipped


def test_show_pairs_puts_grey_beside_colour(faces: Path, tmp_path: Path) -> None:
    sketch = images(faces, size=16, transform="sketch", channels=1, cache="off")
    colour = images(faces, size=16, cache="off")
    first, second = sketch.batch(6, domain_generator(0, "x")), colour.batch(6, domain_generator(0, "x"))
    picture = Image.open(sketch.show_pairs(first, second, tmp_path / "pairs.png"))
    assert picture.mode == "RGB" and picture.size == (10 * 18 + 2, 2 * 18 + 2)
    cell = np.asarray(picture)[2:18, 2:18]
    assert (cell == cell[..., :1]).all()  # the sketch is grey in RGB


@pytest.mark.skipif(not SHARED_ZIP.exists(), reason=NO_FACES)
def test_sketches_of_the_anime_faces_pair_with_their_colour(tmp_path: Path) -> None:
    common = {"size": 32, "limit": 400, "cache": str(tmp_path)}
    sketch = images(SHARED_ZIP, transform="sketch", channels=1, parts=2, part=0, **common)
    colour = images(SHARED_ZIP, parts=2, part=1, **common)
    (sketch_keys, lines), (colour_keys, faces) = sketch.held_out(), colour.held_out()
    assert sketch_keys == colour_keys and len(lines) == 20
    drawn = (lines < 0).float().mean()
    assert 0.02 < drawn < 0.3 and (lines == 1).float().mean() > 0.5  # lines on white, not blank or filled
    assert faces.std() > 0.2
    assert not set(sketch.splits["train"].tolist()) & set(colour.splits["train"].tolist())


def test_a_sketch_domain_draws_colour_images_as_it_drew_its_data(faces: Path) -> None:
    """view_of on the held-out colour faces gives the sketch domain's own held-out sketches,
    bit for bit: what a translation's outputs are drawn back with ("redrawn" metrics)."""
    common = {"size": 16, "test_fraction": 0.25, "parts": 2, "cache": "off"}
    colour = images(faces, part=0, **common)
    for transform, channels in (("sketch", 3), ("grayscale", 1)):
        view = images(faces, transform=transform, channels=channels, part=1, **common)
        drawn = view.view_of(colour.held_out()[1], colour)
        assert drawn is not None and torch.equal(drawn, view.held_out()[1])
        assert colour.view_of(view.held_out()[1], view) is None  # colour is nobody's view
    other_size = images(faces, **{**common, "size": 8}, transform="sketch", part=1)
    assert other_size.view_of(colour.held_out()[1], colour) is None


def test_diversity_is_near_one_for_data_and_zero_for_one_repeated_image(faces: Path) -> None:
    from cyclegen_images.metrics import Diversity

    colour = images(faces, size=16, test_fraction=0.5, cache="off")
    real = colour.batch(12, torch.Generator().manual_seed(1), "test")
    same = Diversity().evaluate(real[:1].expand(12, -1, -1, -1), colour, torch.Generator().manual_seed(2))
    varied = Diversity().evaluate(real, colour, torch.Generator().manual_seed(2))
    assert same["pairwise l1"] == 0 and same["pairwise l1 ratio"] == 0
    assert varied["pairwise l1 ratio"] == pytest.approx(1.0, abs=0.35) and varied["pairwise l1 of data"] > 0
