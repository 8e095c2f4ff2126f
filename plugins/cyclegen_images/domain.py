"""The image domain: a folder or zip of images as a data domain with train/test splits."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor

from cyclegen import Domain, Metric, PairMetric
from cyclegen_images.grid import save_grid
from cyclegen_images.loading import EXPECTED, Preprocessing, load_source, read_images
from cyclegen_images.metrics import PSNR, NumberOfDifferentBins, ReconstructionL1, Sharpness, SlicedWassersteinDistance

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
    """

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
    ) -> None:
        if size < 4:
            raise ValueError(f"size must be at least 4, got {size}")
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}")
        super().__init__(name, (channels, size, size))
        self.prep = Preprocessing(size, channels)
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
        decoded = load_source(path, self.prep, cache_dir, strict, limit)
        self.pixels = torch.from_numpy(decoded.pixels)
        self.names = decoded.names
        order = torch.randperm(len(self.pixels), generator=torch.Generator().manual_seed(split_seed))
        n_test = min(max(1, round(len(order) * test_fraction)), len(order) - 1)
        self.splits = {"test": order[:n_test], "train": order[n_test:]}

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

    def read(self, paths: list[Path], limit: int | None = None) -> Tensor:
        return to_float(torch.from_numpy(read_images(paths, self.prep, limit)))

    def show(self, samples: Tensor, path: Path, columns: int | None = None) -> Path:
        return save_grid(samples, path, columns)

    def metrics(self) -> list[Metric]:
        return [SlicedWassersteinDistance(), NumberOfDifferentBins()]

    def pair_metrics(self) -> list[PairMetric]:
        return [ReconstructionL1(), PSNR(), Sharpness()]


def to_float(pixels: Tensor) -> Tensor:
    """uint8 [0, 255] -> float [-1, 1], as the reference scales images (x / 255 * 2 - 1)."""
    return pixels.float().div_(127.5).sub_(1.0)
