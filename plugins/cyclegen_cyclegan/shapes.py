"""Reading image shapes off domains, so a misplaced network fails at build time with the fix."""

from __future__ import annotations


def image_shape(shape: tuple[int, ...], role: str) -> tuple[int, int, int]:
    """(channels, height, width) of an image domain shape; `role` names the domain in errors."""
    if len(shape) != 3:
        raise ValueError(
            f"the {role} domain must hold images of shape (C, H, W), got shape {tuple(shape)};"
            " point this network at an image domain"
        )
    return shape[0], shape[1], shape[2]
