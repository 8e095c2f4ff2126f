"""Image data: folders or zips of images, grids, and image metrics."""

from __future__ import annotations

from cyclegen import hookimpl
from cyclegen_images.domain import Images


@hookimpl
def cyclegen_register(registry) -> None:
    registry.domain("images", Images)
