"""Pictures of low-dimensional samples as PNG files, drawn with Pillow alone.

Shared by the first-party toy and prior domains; not a plugin itself.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image, ImageDraw
from torch import Tensor

SIZE = 512
MARGIN = 16


def scatter_png(
    points: Tensor,
    path: Path,
    extent: float,
    centres: Tensor | None = None,
    radius: float = 0.0,
) -> Path:
    """Plot 2-D `points` in [-extent, extent]^2, with optional circles of `radius` at `centres`."""
    image = Image.new("RGB", (SIZE, SIZE), "white")
    draw = ImageDraw.Draw(image)
    scale = (SIZE - 2 * MARGIN) / (2 * extent)

    def pixel(x: float, y: float) -> tuple[float, float]:
        return MARGIN + (x + extent) * scale, SIZE - MARGIN - (y + extent) * scale

    draw.line([pixel(-extent, 0), pixel(extent, 0)], fill=(220, 220, 220))
    draw.line([pixel(0, -extent), pixel(0, extent)], fill=(220, 220, 220))
    if centres is not None:
        r = max(radius * scale, 3.0)
        for cx, cy in centres.tolist():
            px, py = pixel(cx, cy)
            draw.ellipse([px - r, py - r, px + r, py + r], outline=(220, 40, 40), width=2)
    for x, y in points.detach().float().cpu().tolist():
        px, py = pixel(x, y)
        draw.rectangle([px - 1, py - 1, px + 1, py + 1], fill=(30, 80, 200))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def histogram_png(values: Tensor, path: Path, bins: int = 64) -> Path:
    """A histogram of all `values` (a latent batch flattened), on a fixed [-4, 4] range."""
    flat = values.detach().float().cpu().flatten().clamp(-4, 4)
    counts = torch.histc(flat, bins=bins, min=-4, max=4)
    image = Image.new("RGB", (SIZE, SIZE // 2), "white")
    draw = ImageDraw.Draw(image)
    width = (SIZE - 2 * MARGIN) / bins
    height = SIZE // 2 - 2 * MARGIN
    top = float(counts.max()) or 1.0
    for i, count in enumerate(counts.tolist()):
        x0 = MARGIN + i * width
        draw.rectangle([x0, MARGIN + height * (1 - count / top), x0 + width - 1, MARGIN + height], fill=(30, 80, 200))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def latent_png(samples: Tensor, path: Path) -> Path:
    """Latents: a scatter of the first two dimensions, or a histogram for one dimension."""
    flat = samples.flatten(1)
    if flat.shape[1] >= 2:
        return scatter_png(flat[:, :2], path, extent=4.0)
    return histogram_png(flat, path)
