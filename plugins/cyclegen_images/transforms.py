"""Deterministic views of decoded RGB images: grayscale and a pencil-sketch line drawing.

They run once, after loading, on the whole uint8 set (the cache keeps the plain decode), so
two domains over one source can hold two views of the same images: a face's sketch and
its colour picture, the true pairs of an unpaired benchmark.
"""

from __future__ import annotations

import functools
import math
from typing import Literal

import torch
from torch import Tensor

Transform = Literal["none", "grayscale", "sketch"]

#: Images converted at once, bounding the working memory (about 50 MB of floats at 64x64).
CHUNK = 1024
#: ITU-R BT.601 luma weights (0.299, 0.587, 0.114) in Pillow's 16-bit fixed point, so the
#: result equals Pillow's "L" conversion exactly.
LUMA_WEIGHTS = torch.tensor([19595.0, 38470.0, 7471.0])
#: Sketch constants, tuned by eye on the 64x64 and 32x32 anime faces (see `sketch`).
BLUR_SIGMA = 1.5 / 64  # Gaussian sigma as a fraction of the image side: 1.5 px at 64, 0.75 px at 32
OFFSET = 0.05  # added to both sides of the dodge ratio: keeps noise in dark hair from becoming lines
FLOOR = 0.04  # darkness below this (faint shading, JPEG noise) stays white
GAIN = 2.5  # darkness above the floor is scaled up, so lines come out solid
#: Blur weights are integers summing to this, per axis (see `_blur_matrix`).
WEIGHT_TOTAL = 256


def transform_pixels(pixels: Tensor, transform: Transform, channels: int) -> Tensor:
    """(N, 3, H, W) uint8 RGB -> (N, channels, H, W) uint8; "none" returns `pixels` as they are.

    The single grey channel is broadcast (a view, not a copy) to `channels`.
    """
    if transform == "none":
        return pixels
    gray = torch.empty((len(pixels), 1, *pixels.shape[2:]), dtype=torch.uint8)
    for start in range(0, len(pixels), CHUNK):
        chunk = luma(pixels[start : start + CHUNK])
        gray[start : start + len(chunk)] = sketch(chunk) if transform == "sketch" else chunk
    return gray.expand(-1, channels, -1, -1)


def luma(rgb: Tensor) -> Tensor:
    """(N, 3, H, W) uint8 -> (N, 1, H, W) uint8: 0.299 R + 0.587 G + 0.114 B, rounded.

    Fixed-point sums stay below 2**24, exact in float32, where a matrix product is several
    times faster than integer arithmetic.
    """
    n, _, height, width = rgb.shape
    weighted = LUMA_WEIGHTS @ rgb.reshape(n, 3, height * width).float()
    return weighted.add_(2**15).div_(2**16).floor_().to(torch.uint8).view(n, 1, height, width)


def sketch(gray: Tensor) -> Tensor:
    """(N, 1, H, W) uint8 luma -> uint8 line drawing: dark lines on white.

    A "colour dodge" pencil sketch, x / (1 - blur(1 - x)) = x / blur(x): each pixel
    divided by its Gaussian-blurred neighbourhood, here (x + OFFSET) / (blur(x) + OFFSET)
    with x in [0, 1]. Flat areas of any shade give 1 (white); a pixel darker than its
    surroundings, like the ink outlines of anime art, gives less, and only on the dark
    side of an edge, so each edge makes one line. XDoG (Winnemoeller 2012) was tried too:
    its threshold on the sharpened image fills dark hair black; this draws outlines only.
    Darkness 1 - ratio then goes through a levels curve, clamp((d - FLOOR) * GAIN, 0, 1),
    which whitens faint shading and makes lines solid. Sigma scales with the image side,
    so a face is drawn alike at 32 and 64 pixels. The blur is exact integer arithmetic
    (see `_blur_matrix`) and the rest elementwise IEEE operations, so the output is
    bit-identical whatever the thread count or chunking.
    """
    height, width = gray.shape[-2:]
    sigma = BLUR_SIGMA * min(height, width)
    x = gray[:, 0].float()
    blurred = _blur_matrix(height, sigma) @ x @ _blur_matrix(width, sigma).T  # x * WEIGHT_TOTAL**2
    offset = OFFSET * 255 * WEIGHT_TOTAL**2  # the ratio computed on that scale, in place
    ratio = x.mul_(WEIGHT_TOTAL**2).add_(offset).div_(blurred.add_(offset))
    darkness = ratio.sub_(1 - FLOOR).mul_(-GAIN * 255).clamp_(0, 255)  # in grey levels
    return darkness.neg_().add_(255).round_().to(torch.uint8).unsqueeze(1)


@functools.cache
def _blur_matrix(size: int, sigma: float) -> Tensor:
    """The 1-D Gaussian blur with mirrored borders as a (size, size) matrix of integer weights.

    Each row's weights are integers summing to WEIGHT_TOTAL, so blurring uint8 pixels along
    both axes only ever forms integers below 255 * 256**2 < 2**24, which float32 holds
    exactly: the matrix products are exact in any summation order, and as fast as BLAS.
    """
    radius = max(1, math.ceil(3 * sigma))
    offsets = torch.arange(-radius, radius + 1)
    weights = torch.exp(-0.5 * (offsets.double() / sigma) ** 2)
    weights = (weights / weights.sum() * WEIGHT_TOTAL).round()
    weights[radius] += WEIGHT_TOTAL - weights.sum()  # rounding's remainder goes to the centre
    index = (torch.arange(size)[:, None] + offsets).abs()
    index = torch.where(index >= size, 2 * (size - 1) - index, index)
    matrix = torch.zeros(size, size, dtype=torch.float64).scatter_add_(1, index, weights.expand(size, -1))
    return matrix.float()
