"""Writing batches of images as one PNG grid."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from cyclegen_plots.text import with_caption

PADDING = 2


def to_uint8(images: Tensor) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] -> (N, H, W, C) uint8."""
    scaled = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round()
    return scaled.to(torch.uint8).permute(0, 2, 3, 1).numpy()


def save_grid(images: Tensor, path: Path, columns: int | None = None, *, title: str | None = None) -> Path:
    """Tile `images` row by row, `columns` wide (default: as square as possible), below a strip holding `title`."""
    pixels = to_uint8(images)
    n, height, width, channels = pixels.shape
    columns = columns or max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / columns)
    canvas = np.full(
        (rows * (height + PADDING) + PADDING, columns * (width + PADDING) + PADDING, channels), 255, np.uint8
    )
    for i in range(n):
        top = PADDING + (i // columns) * (height + PADDING)
        left = PADDING + (i % columns) * (width + PADDING)
        canvas[top : top + height, left : left + width] = pixels[i]
    path.parent.mkdir(parents=True, exist_ok=True)
    with_caption(Image.fromarray(canvas[..., 0] if channels == 1 else canvas), title).save(path)
    return path
