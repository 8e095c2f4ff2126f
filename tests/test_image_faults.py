"""Image loading faults: memory layout across the cache, zip bombs, and awkward image files."""

from __future__ import annotations

import io
import os
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import cyclegen_images.loading as loading
from cyclegen.streams import domain_generator
from tests.test_images import half_and_half, images

PREP = loading.Preprocessing(size=8, channels=3)


def noise_folder(root: Path, count: int = 6) -> Path:
    """`count` lossless 12x12 noise images: any layout difference shows in the pixels."""
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(root / f"{i}.png")
    return root


def stored_png(side: int) -> bytes:
    """A flat `side` x `side` RGB PNG saved without compression: big, yet a zip squeezes it to little."""
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), (10, 200, 30)).save(buffer, format="PNG", compress_level=0)
    return buffer.getvalue()


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def animated_gif(path: Path, frames: int = 3) -> Path:
    first, *rest = (Image.new("RGB", (12, 12), (40 * i, 0, 255 - 40 * i)) for i in range(frames))
    first.save(path, format="GIF", save_all=True, append_images=rest, duration=50)
    return path


# Layout: the fresh decode and the cache must give the same (C-contiguous) arrays.


def test_fresh_and_cached_pixels_share_one_contiguous_layout(tmp_path: Path) -> None:
    source, cache = noise_folder(tmp_path / "imgs"), tmp_path / "cache"
    fresh = loading.load_source(source, PREP, cache, strict=True)
    cached = loading.load_source(source, PREP, cache, strict=True)
    assert np.array_equal(fresh.pixels, cached.pixels)
    assert fresh.pixels.flags["C_CONTIGUOUS"] and cached.pixels.flags["C_CONTIGUOUS"]
    assert fresh.pixels.strides == cached.pixels.strides


def test_domain_batches_are_contiguous_from_the_cache_or_not(tmp_path: Path) -> None:
    source, cache = noise_folder(tmp_path / "imgs", 20), tmp_path / "cache"
    fresh = images(source, size=8, cache=str(cache))
    cached = images(source, size=8, cache=str(cache))
    for split in ("train", "test"):
        first, second = (d.batch(4, domain_generator(0, "x"), split) for d in (fresh, cached))
        assert torch.equal(first, second)
        assert first.is_contiguous() and first.stride() == second.stride()
    assert fresh.held_out()[1].is_contiguous() and cached.held_out()[1].is_contiguous()
    assert fresh.read([source / "0.png", source / "1.png"]).is_contiguous()


# Memory: zip members are size-checked and read a bounded number at a time.


def test_zip_member_over_the_size_limit_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loading, "MAX_FILE_BYTES", 2**20)
    archive = tmp_path / "set.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("big.png", stored_png(700))  # about 1.5 MB decompressed, a few kB in the zip
        for i in range(3):
            zf.writestr(f"small{i}.png", png_bytes(half_and_half(16, 16)))
    assert archive.stat().st_size < 2**16
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable image\(s\) .*big.png .*over the 1 MiB limit"):
        decoded = loading.load_source(archive, PREP, None, strict=False)
    assert decoded.names == ["small0.png", "small1.png", "small2.png"] and decoded.skipped == ["big.png"]
    with pytest.raises(ValueError, match=r"cannot read image '.*set.zip/big.png': .*over the 1 MiB limit"):
        loading.read_images([archive], PREP)


def test_folder_file_over_the_size_limit_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loading, "MAX_FILE_BYTES", 2**20)
    big = tmp_path / "big.png"
    big.write_bytes(stored_png(700))
    with pytest.raises(ValueError, match=r"cannot read image '.*big.png': .*over the 1 MiB limit"):
        loading.read_images([big], PREP)


def test_damaged_zip_member_is_skipped_not_fatal(tmp_path: Path) -> None:
    archive = tmp_path / "set.zip"
    good = png_bytes(half_and_half(16, 16))
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        for name in ("a.png", "b.png", "c.png"):
            zf.writestr(name, good)
    raw = bytearray(archive.read_bytes())
    raw[raw.index(good) + len(good) // 2] ^= 0xFF  # the first member's data no longer matches its CRC
    archive.write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable image\(s\) .*a.png"):
        decoded = loading.load_source(archive, PREP, None, strict=False)
    assert decoded.names == ["b.png", "c.png"]


def test_zip_is_decoded_in_bounded_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Decoding slower than reading (big JPEGs, say) must not pile every member's bytes up in memory."""
    member = stored_png(180)  # about 97 kB each
    count = max(400, 12 * (os.cpu_count() or 1))  # well above the members the workers hold at once
    archive = tmp_path / "set.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(count):
            zf.writestr(f"{i:04d}.png", member)
    real_decode = loading.decode

    def slow_decode(data: bytes, prep: loading.Preprocessing) -> np.ndarray:
        time.sleep(0.001)
        return real_decode(data, prep)

    monkeypatch.setattr(loading, "decode", slow_decode)
    tracemalloc.start()
    try:
        decoded = loading.load_source(archive, PREP, None, strict=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(decoded.names) == count
    assert peak < count * len(member) / 4


def test_pillow_decompression_bomb_warning_counts_as_unreadable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 150)  # warns above 150 pixels, refuses above 300
    root = tmp_path / "imgs"
    root.mkdir()
    half_and_half(16, 12).save(root / "bomb.png")  # 192 pixels: only a warning from Pillow
    for i in range(2):
        half_and_half(10, 10).save(root / f"ok{i}.png")
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable image\(s\) .*bomb.png .*could be decompression bomb"):
        decoded = loading.load_source(root, PREP, None, strict=False)
    assert decoded.names == ["ok0.png", "ok1.png"]
    with pytest.raises(ValueError, match="cannot read image .*bomb.png.*decompression bomb"):
        loading.read_images([root / "bomb.png"], PREP)


# Awkward images: high bit depth, animations, GIF, TIFF, extreme shapes.


def gradient(levels: np.ndarray, dtype: type) -> Image.Image:
    """A 16x16 picture whose columns run through `levels`."""
    return Image.fromarray(np.tile(levels.astype(dtype), (16, 1)))


@pytest.mark.parametrize(
    ("make", "suffix"),
    [
        (lambda: gradient(np.arange(16) * 4369, np.uint16), ".png"),  # 16-bit PNG: Pillow's "I;16"
        (lambda: gradient(np.arange(16) * 4369, np.int32), ".tif"),  # Pillow's 32-bit "I", read as 16-bit levels
        (lambda: gradient(np.arange(16) / 15, np.float32), ".tif"),  # Pillow's "F", read as 0..1
    ],
    ids=["I;16 png", "I tiff", "F tiff"],
)
def test_high_bit_depth_greyscale_is_scaled_not_clipped(tmp_path: Path, make, suffix: str) -> None:
    path = tmp_path / f"deep{suffix}"
    make().save(path)
    pixels = loading.read_images([path], loading.Preprocessing(size=16, channels=1))
    assert pixels[0, 0, 0].tolist() == [17 * i for i in range(16)]


def test_single_frame_gif_loads_with_its_colours(tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    root.mkdir()
    for i in range(2):
        half_and_half(16, 16).save(root / f"{i}.gif")
    decoded = loading.load_source(root, loading.Preprocessing(size=16, channels=3), None, strict=True)
    assert decoded.names == ["0.gif", "1.gif"]
    assert decoded.pixels[0, :, 0, 0].tolist() == [255, 0, 0] and decoded.pixels[0, :, 0, -1].tolist() == [0, 0, 255]


def test_animated_images_are_unreadable_whatever_their_name(tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    root.mkdir()
    animated_gif(root / "anim.gif")
    animated_gif(root / "anim_named.png")
    for i in range(2):
        half_and_half(16, 16).save(root / f"still{i}.png")
    with pytest.warns(UserWarning, match=r"skipped 2 unreadable image\(s\) .*animated image \(3 frames\)"):
        decoded = loading.load_source(root, PREP, None, strict=False)
    assert decoded.skipped == ["anim.gif", "anim_named.png"]
    with pytest.raises(ValueError, match=r"cannot read image '.*anim_named.png': animated image \(3 frames\)"):
        loading.read_images([root / "anim_named.png"], PREP)


@pytest.mark.parametrize(
    ("size", "reason"),
    [((4000, 1), "aspect ratio 4000:1 is too extreme to centre-crop"), ((2, 41), "aspect ratio 2:41"), ((1, 1), "1x1")],
)
def test_extreme_shapes_are_unreadable(tmp_path: Path, size: tuple[int, int], reason: str) -> None:
    root = tmp_path / "imgs"
    root.mkdir()
    Image.new("RGB", size, (255, 255, 255)).save(root / "odd.png")
    half_and_half(40, 10).save(root / "wide_enough.png")  # 4:1 is still accepted
    half_and_half(16, 16).save(root / "square.png")
    with pytest.warns(UserWarning, match=rf"skipped 1 unreadable image\(s\) .*odd.png .*{reason}"):
        decoded = loading.load_source(root, PREP, None, strict=False)
    assert decoded.names == ["square.png", "wide_enough.png"]
    with pytest.raises(ValueError, match=f"cannot read image .*odd.png.*{reason}"):
        loading.read_images([root / "odd.png"], PREP)


def test_skip_reasons_survive_the_cache(tmp_path: Path) -> None:
    source, cache = noise_folder(tmp_path / "imgs", 3), tmp_path / "cache"
    animated_gif(source / "anim.gif")
    for _ in range(2):  # decoded, then from the cache
        with pytest.warns(UserWarning, match=r"anim.gif .*animated image \(3 frames\)"):
            loading.load_source(source, PREP, cache, strict=False)
