"""Reading network sizes off domain shapes, with errors that name what is supported.

Shared by the conv families so a recipe pointing a conv network at the wrong domain fails
at build time with the supported sizes, not deep inside a forward pass.
"""

from __future__ import annotations

SIZES = (32, 64, 128)


def image_shape(shape: tuple[int, ...], sizes: tuple[int, ...] = SIZES) -> tuple[int, int]:
    """(channels, size) of a square image domain shape (C, H, W) whose size is in `sizes`."""
    supported = ", ".join(map(str, sizes))
    if len(shape) != 3 or shape[1] != shape[2] or shape[1] not in sizes:
        raise ValueError(
            f"needs square images (C, H, W) with H = W in {{{supported}}}, got shape {tuple(shape)}"
        )
    return shape[0], shape[1]


def latent_dim(shape: tuple[int, ...]) -> int:
    """The size of a flat latent domain shape (D,)."""
    if len(shape) != 1:
        raise ValueError(f"needs a flat latent domain of shape (D,), got shape {tuple(shape)}")
    return shape[0]


def scaled(units: int, width: float) -> int:
    """`units` times the `width` multiplier, rounded, at least 1."""
    if width <= 0:
        raise ValueError(f"width must be > 0, got {width}")
    return max(1, round(units * width))
