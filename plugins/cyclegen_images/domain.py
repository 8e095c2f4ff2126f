"""The image domain: a folder or zip of images as a data domain with train/test splits."""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar, Literal

import torch
from torch import Tensor

from cyclegen import Domain, Metric, PairMetric
from cyclegen_images.grid import save_grid
from cyclegen_images.loading import EXPECTED, Preprocessing, load_source, read_images
from cyclegen_images.metrics import (
    PSNR,
    Diversity,
    NumberOfDifferentBins,
    ReconstructionL1,
    Sharpness,
    SlicedWassersteinDistance,
)
from cyclegen_images.splits import check_part, split
from cyclegen_images.transforms import Transform, transform_pixels

CACHE_ENV = "CYCLEGEN_CACHE"


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "cyclegen") / "images"


class Images(Domain):
    """Images from a folder (recursively) or a .zip, as (channels, size, size) in [-1, 1].

    Every image is converted to `channels`, centre-cropped and resized once; the decoded
    set is cached (`cache = "auto"` uses $CYCLEGEN_CACHE or ~/.cache/cyclegen, "off"
    disables it, anything else is a folder). A seeded shuffle holds out `test_fraction`
    of the images; `limit` keeps the first images in file-name order. Training batches
    are drawn uniformly with replacement and, with `flip`, mirrored at random; held-out
    batches are distinct images, never flipped.

    `transform` turns every image, once after loading, into another view of it:
    "grayscale" (BT.601 luma, as Pillow's "L") or "sketch" (a pencil line drawing, see
    cyclegen_images.transforms), computed from the RGB decode and repeated to `channels`.
    `parts` > 1 splits the training images into disjoint parts by a stable hash of their
    file names, and the domain trains on part `part` only; the held-out images stay the
    same. So two domains over one source, say `transform = "sketch"` with `part = 0` and
    the colour images with `part = 1`, never see one face in both views during training,
    while `held_out()` gives both views of the same held-out faces: true pairs for
    scoring translations.

    Options:
        source: A folder of images (searched recursively) or a .zip of them; a relative path
            is relative to the current folder, and `~` is expanded.
        size: Side of the square images in pixels (at least 4): every image is centre-cropped
            and resized to it once, when loaded.
        channels: 1 for grey images, 3 for RGB; every image is converted to it.
        flip: Mirror training images left to right at random (half of them); held-out images
            are never flipped.
        test_fraction: The fraction of the images held out for sample pictures and evaluation
            (between 0 and 1), chosen by a shuffle seeded with `split_seed`.
        split_seed: Seeds the choice of held-out images: domains over one source with the same
            seed and `test_fraction` hold out the same images.
        limit: Keep only the first `limit` images in file-name order (at least 2), for quick
            experiments on a large set; unset keeps every image.
        strict: Make an unreadable image file an error instead of skipping it with a warning.
        cache: Where the decoded set is cached: "auto" is $CYCLEGEN_CACHE/images or
            ~/.cache/cyclegen/images, "off" decodes the images on every run, anything else is
            the cache folder.
        transform: Turn every image, once after loading, into another view of it: "grayscale"
            (BT.601 luma) or "sketch" (a pencil line drawing), repeated to `channels`; "none"
            keeps the images as they are.
        parts: Split the training images into this many disjoint parts by a stable hash of
            their file names, and train on part `part` only; the held-out images stay the same.
        part: The part of `parts` this domain trains on, from 0 to `parts` - 1.
    """

    can_show: ClassVar[bool] = True

    def __init__(
        self,
        name: str,
        source: str,
        size: int = 64,
        channels: Literal[1, 3] = 3,
        flip: bool = True,
        test_fraction: float = 0.05,
        split_seed: int = 0,
        limit: int | None = None,
        strict: bool = False,
        cache: str = "auto",
        transform: Transform = "none",
        parts: int = 1,
        part: int = 0,
    ) -> None:
        if size < 4:
            raise ValueError(f"size must be at least 4, got {size}")
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}")
        check_part(part, parts)
        super().__init__(name, (channels, size, size))
        self.prep = Preprocessing(size, channels if transform == "none" else 3)  # views come from colour
        self.transform = transform
        self.flip = flip
        cache_dir = None if cache == "off" else default_cache_dir() if cache == "auto" else Path(cache)
        if limit is not None and limit < 2:
            raise ValueError(f"limit must be at least 2 images, got {limit}")
        path = Path(source).expanduser()
        if not path.exists():
            raise ValueError(
                f"image source {source!r} not found; expected {EXPECTED}. Get the data (README, "
                f"section Data) and point the recipe at it: --set domains.{name}.source=PATH"
            )
        decoded = load_source(path, self.prep, cache_dir, strict, limit, label=f"domain {name}")
        self.pixels = self._view(torch.from_numpy(decoded.pixels))
        self.names = decoded.names
        self.splits = split(self.names, test_fraction, split_seed, parts, part)

    def __len__(self) -> int:
        return len(self.pixels)

    def batch(self, n: int, generator: torch.Generator, split: str = "train") -> Tensor:
        pool = self.splits[split]
        if split == "test" and n <= len(pool):  # held-out sets: distinct images
            chosen = pool[torch.randperm(len(pool), generator=generator)[:n]]
        else:
            chosen = pool[torch.randint(len(pool), (n,), generator=generator)]
        pixels = self.pixels[chosen]
        if self.flip and split == "train":
            mirrored = torch.rand(n, generator=generator) < 0.5
            pixels = torch.where(mirrored[:, None, None, None], pixels.flip(-1), pixels)
        return to_float(pixels)

    def held_out(self) -> tuple[list[str], Tensor]:
        """The held-out images in file-name order, keyed by file name, never flipped."""
        test = self.splits["test"].sort().values
        return [self.names[i] for i in test.tolist()], to_float(self.pixels[test])

    def read(self, paths: list[Path], limit: int | None = None) -> Tensor:
        return to_float(self._view(torch.from_numpy(read_images(paths, self.prep, limit))))

    def show(self, samples: Tensor, path: Path, columns: int | None = None, *, title: str | None = None) -> Path:
        return save_grid(samples, path, columns, title=title)

    def show_pairs(self, first: Tensor, second: Tensor, path: Path, *, title: str | None = None) -> Path:
        """Side by side; a grey batch beside a colour one (sketch -> colour) is shown in RGB."""
        if first.shape[1] != second.shape[1]:
            first, second = (x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x for x in (first, second))
        return super().show_pairs(first, second, path, title=title)

    def _view(self, pixels: Tensor) -> Tensor:
        return transform_pixels(pixels, self.transform, self.shape[0])

    def view_of(self, samples: Tensor, domain: Domain) -> Tensor | None:
        """A sketch or grey domain draws RGB images of its own size as it drew its data: each
        quantised to 8 bits first, as a decoded file would be."""
        if self.transform == "none" or not isinstance(domain, Images) or domain.transform != "none":
            return None
        if tuple(samples.shape[1:]) != (3, *self.shape[1:]):
            return None
        pixels = samples.clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
        return to_float(self._view(pixels))

    def metrics(self) -> list[Metric]:
        return [SlicedWassersteinDistance(), NumberOfDifferentBins(), Diversity()]

    def pair_metrics(self) -> list[PairMetric]:
        return [ReconstructionL1(), PSNR(), Sharpness()]


def to_float(pixels: Tensor) -> Tensor:
    """uint8 [0, 255] -> float [-1, 1], as the reference scales images (x / 255 * 2 - 1)."""
    return pixels.float().div_(127.5).sub_(1.0)
