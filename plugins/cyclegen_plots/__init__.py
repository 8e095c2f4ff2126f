"""Pictures of low-dimensional samples as PNG files, drawn with Pillow alone.

Shared by the first-party toy and prior domains (and `text`, the captions, by the image domain);
not a plugin itself. Pictures keep a fixed size whatever their caption and legend, so they line
up when compared across steps.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image, ImageDraw
from torch import Tensor

from cyclegen_plots.text import Font, draw_lines, font, line_height, width_of, wrap

SIZE = 512
MARGIN = 16
AXES = (220, 220, 220)
POINTS = (30, 80, 200)
SOURCES = (150, 150, 150)
JOINS = (215, 215, 215)
CENTRES = (220, 40, 40)
#: Legend marker width and the space after a legend entry.
MARKER = 18
ENTRY_GAP = 14


def scatter_png(
    points: Tensor,
    path: Path,
    extent: float,
    centres: Tensor | None = None,
    radius: float = 0.0,
    *,
    title: str | None = None,
    label: str = "samples",
    centres_label: str | None = None,
    sources: Tensor | None = None,
    sources_label: str = "inputs, a line to each one's output",
) -> Path:
    """Plot 2-D `points` in [-extent, extent]^2, with optional circles of `radius` at `centres`.

    `title` is drawn at the top and a legend at the bottom: blue dots are `label`, red circles
    `centres_label` (no entry when None: only the caller knows what its circles mean), and grey
    dots, `sources` (one per point, such as the inputs a mapper turned into `points`), joined
    to their points by lines. The plot between them stays square; points beyond it are cut off
    at its edge rather than drawn over the text.
    """
    image = Image.new("RGB", (SIZE, SIZE), "white")
    draw = ImageDraw.Draw(image)
    face = font()
    top = draw_lines(draw, wrap(title, face, SIZE - 2 * MARGIN), MARGIN, MARGIN // 2, face) if title else 0
    entries = [("dot", label)]
    if sources is not None:
        entries.append(("source", sources_label))
    if centres is not None and centres_label:
        entries.append(("circle", centres_label))
    legend = legend_rows(entries, face, SIZE - 2 * MARGIN)
    bottom = SIZE - MARGIN // 2 - len(legend) * line_height(face)
    plot = Image.new("RGB", (min(SIZE, bottom - top),) * 2, "white")  # clips points beyond it
    plot_pixels(ImageDraw.Draw(plot), plot.width, points, extent, centres, radius, sources)
    image.paste(plot, ((SIZE - plot.width) // 2, top + (bottom - top - plot.width) // 2))
    draw_legend(draw, legend, MARGIN, bottom, face)
    return save(image, path)


def plot_pixels(
    draw: ImageDraw.ImageDraw,
    size: int,
    points: Tensor,
    extent: float,
    centres: Tensor | None,
    radius: float,
    sources: Tensor | None,
) -> None:
    """The scatter itself on a `size` px square: axes, lines from sources, circles, points."""
    scale = (size - 2 * MARGIN) / (2 * extent)

    def pixel(x: float, y: float) -> tuple[float, float]:
        return MARGIN + (x + extent) * scale, size - MARGIN - (y + extent) * scale

    draw.line([pixel(-extent, 0), pixel(extent, 0)], fill=AXES)
    draw.line([pixel(0, -extent), pixel(0, extent)], fill=AXES)
    if sources is not None:
        starts = [pixel(x, y) for x, y in sources.detach().float().cpu().tolist()]
        for start, end in zip(starts, (pixel(x, y) for x, y in points.detach().float().cpu().tolist())):
            draw.line([start, end], fill=JOINS)
        for px, py in starts:
            draw.rectangle([px - 1, py - 1, px + 1, py + 1], fill=SOURCES)
    if centres is not None:
        r = max(radius * scale, 3.0)
        for cx, cy in centres.tolist():
            px, py = pixel(cx, cy)
            draw.ellipse([px - r, py - r, px + r, py + r], outline=CENTRES, width=2)
    for x, y in points.detach().float().cpu().tolist():
        px, py = pixel(x, y)
        draw.rectangle([px - 1, py - 1, px + 1, py + 1], fill=POINTS)


def legend_rows(entries: list[tuple[str, str]], face: Font, width: int) -> list[list[tuple[str, str]]]:
    """Lay (marker, text) entries left to right, starting a new row where the next would not fit."""
    rows: list[list[tuple[str, str]]] = []
    used = width
    for entry in entries:
        needed = MARKER + width_of(entry[1], face) + ENTRY_GAP
        if used + needed > width + ENTRY_GAP:
            rows.append([])
            used = 0
        rows[-1].append(entry)
        used += needed
    return rows


def draw_legend(draw: ImageDraw.ImageDraw, rows: list[list[tuple[str, str]]], left: int, top: int, face: Font) -> None:
    """Each entry's marker (drawn as in the plot, only larger) followed by its text."""
    height = line_height(face)
    for row in rows:
        x, y = left, top + height / 2 - 2  # the marker sits at mid-height of the letters
        for marker, text in row:
            if marker == "dot":
                draw.rectangle([x + 6, y - 3, x + 12, y + 3], fill=POINTS)
            elif marker == "source":
                draw.line([(x, y), (x + MARKER - 4, y)], fill=JOINS, width=2)
                draw.rectangle([x, y - 3, x + 6, y + 3], fill=SOURCES)
            else:
                draw.ellipse([x + 3, y - 6, x + 15, y + 6], outline=CENTRES, width=2)
            draw_lines(draw, [text], int(x + MARKER), top, face)
            x += MARKER + width_of(text, face) + ENTRY_GAP
        top += height


def histogram_png(values: Tensor, path: Path, bins: int = 64, *, title: str | None = None) -> Path:
    """A histogram of all `values` (a latent batch flattened), on a fixed [-4, 4] range, under `title`."""
    flat = values.detach().float().cpu().flatten().clamp(-4, 4)
    counts = torch.histc(flat, bins=bins, min=-4, max=4)
    image = Image.new("RGB", (SIZE, SIZE // 2), "white")
    draw = ImageDraw.Draw(image)
    face = font()
    top = draw_lines(draw, wrap(title, face, SIZE - 2 * MARGIN), MARGIN, MARGIN // 2, face) if title else 0
    width = (SIZE - 2 * MARGIN) / bins
    height = SIZE // 2 - 2 * MARGIN - top
    highest = float(counts.max()) or 1.0
    for i, count in enumerate(counts.tolist()):
        x0 = MARGIN + i * width
        y1 = top + MARGIN + height
        draw.rectangle([x0, y1 - height * count / highest, x0 + width - 1, y1], fill=POINTS)
    return save(image, path)


def latent_png(samples: Tensor, path: Path, *, title: str | None = None) -> Path:
    """Latents: a scatter of the first two dimensions, or a histogram for one dimension."""
    flat = samples.flatten(1)
    dims = flat.shape[1]
    if dims >= 2:
        label = "samples" if dims == 2 else f"samples: dimensions 1 and 2 of {dims}"
        return scatter_png(flat[:, :2], path, extent=4.0, title=title, label=label)
    return histogram_png(flat, path, title=title)


def save(image: Image.Image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path
