"""Image metrics: distribution distances (SWD, NDB) and paired errors (L1, PSNR, sharpness).

Distribution metrics compare generated images with real ones the domain draws; pair metrics
compare outputs with known targets. Images are (N, C, H, W) floats in [-1, 1] on the CPU.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from cyclegen import Domain, Metric, PairMetric

#: Images pushed through the pyramid at once, bounding the memory of that step.
IMAGE_CHUNK = 256
#: Projected values held per descriptor set at once (64 MiB of float32).
PROJECTION_ELEMENTS = 2**24
#: The 5-tap binomial filter of Burt and Adelson's pyramid.
BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], dtype=torch.float64) / 16


@functools.cache
def _blur_matrix(size: int) -> Tensor:
    """The 1-D binomial blur with mirrored borders (so edges are not darkened), as a matrix.

    Blurring and 2x resampling along an axis then become one small matrix product, which
    is many times faster on the CPU than torch's depthwise convolution.
    """
    index = (torch.arange(size)[:, None] + torch.arange(-2, 3)).abs()
    index = torch.where(index >= size, 2 * (size - 1) - index, index)
    return torch.zeros(size, size, dtype=torch.float64).scatter_add_(1, index, BINOMIAL.expand(size, 5))


def _resample(images: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """Apply `rows` (new height x height) and `cols` (new width x width) to every image."""
    return rows.to(images.dtype) @ images @ cols.to(images.dtype).T


def _downsample(images: Tensor) -> Tensor:
    """Blur, then keep every other row and column."""
    height, width = images.shape[-2:]
    return _resample(images, _blur_matrix(height)[::2], _blur_matrix(width)[::2])


def _upsample(images: Tensor) -> Tensor:
    """Insert zeros between samples and blur; the gain of 2 per axis restores the zeroed energy."""
    height, width = images.shape[-2:]
    return _resample(images, 2 * _blur_matrix(2 * height)[:, ::2], 2 * _blur_matrix(2 * width)[:, ::2])


def laplacian_pyramid(images: Tensor, min_resolution: int) -> list[Tensor]:
    """Band-pass levels from full resolution down, ending with the low-pass image.

    Halving stops at `min_resolution` (or at an odd size), so a 64x64 batch with
    `min_resolution=16` gives levels of 64, 32 and 16 pixels.
    """
    levels = []
    current = images
    while min(current.shape[-2:]) > min_resolution and current.shape[-1] % 2 == current.shape[-2] % 2 == 0:
        low = _downsample(current)
        levels.append(current - _upsample(low))
        current = low
    levels.append(current)
    return levels


def _patches(level: Tensor, rows: Tensor, cols: Tensor, size: int) -> Tensor:
    """Flattened `size`x`size` neighbourhoods at top-left corners (n, k): (n * k, C * size**2)."""
    n, c = level.shape[:2]
    offsets = torch.arange(size)
    r = (rows[..., None] + offsets)[..., :, None]  # (n, k, size, 1)
    q = (cols[..., None] + offsets)[..., None, :]  # (n, k, 1, size)
    picked = level.permute(0, 2, 3, 1)[torch.arange(n).view(n, 1, 1, 1), r, q]  # (n, k, size, size, C)
    return picked.permute(0, 1, 4, 2, 3).reshape(-1, c * size * size)


def _normalised(descriptors: Tensor, channels: int) -> Tensor:
    """Standardise each colour channel by this set's own mean and std (in place)."""
    view = descriptors.view(len(descriptors), channels, -1)
    std, mean = torch.std_mean(view, dim=(0, 2), keepdim=True)
    view.sub_(mean).div_(std.clamp_min(1e-8))
    return descriptors


def sliced_wasserstein(a: Tensor, b: Tensor, directions: int, repeats: int, generator: torch.Generator) -> float:
    """Mean over random unit directions of the 1-D Wasserstein-1 distance of the projections.

    Both sets hold the same number of points, so the 1-D distance is the mean absolute
    difference of the sorted projections (Rabin et al. 2011). Directions go a slice at a
    time through two reused buffers, sorted in place by numpy, whose vectorised sort is an
    order of magnitude faster than torch's on the CPU; sorting and projecting dominate.
    """
    if a.shape != b.shape:
        raise ValueError(f"sets must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    slice_size = min(directions, max(1, PROJECTION_ELEMENTS // len(a)))
    buffer_a, buffer_b = torch.empty(slice_size, len(a)), torch.empty(slice_size, len(b))
    total = 0.0
    for _ in range(repeats):
        units = torch.randn(directions, a.shape[1], generator=generator)
        units /= units.norm(dim=1, keepdim=True)
        for part in units.split(slice_size):
            projected_a = torch.mm(part, a.T, out=buffer_a[: len(part)]).numpy()
            projected_b = torch.mm(part, b.T, out=buffer_b[: len(part)]).numpy()
            projected_a.sort(axis=1)
            projected_b.sort(axis=1)
            np.subtract(projected_a, projected_b, out=projected_a)
            total += float(np.abs(projected_a, out=projected_a).sum(dtype=np.float64))
    return total / (repeats * directions * len(a))


class SlicedWassersteinDistance(Metric):
    """Sliced Wasserstein distance on Laplacian-pyramid patches (Karras et al. 2018, app. D).

    It sees how well local image structure matches at each scale: low levels catch colour
    and layout, high levels catch edges, texture and noise. Real images come from the
    held-out split, as many as there are samples. Per level, `patches_per_image` random
    `patch`x`patch` neighbourhoods per image become descriptors; following the paper (and
    its reference code), each set is standardised per colour channel by its *own* mean and
    std, so global per-channel brightness/contrast shifts are deliberately not counted.
    Both sets use the same random patch positions: that changes nothing in expectation,
    removes one source of noise, and makes identical sets score exactly 0. Levels are named
    by their height; values are x1e3 as in the paper's tables. Memory peaks at two
    float32 descriptor sets for one level: about 150 MB per 1,000 RGB images.
    """

    name = "swd"

    def __init__(
        self,
        patches_per_image: int = 128,
        directions: int = 512,
        repeats: int = 4,
        patch: int = 7,
        min_resolution: int = 16,
    ) -> None:
        if min_resolution < max(patch, 2):
            raise ValueError(f"min_resolution ({min_resolution}) must be at least 2 and the patch size ({patch})")
        if min(patches_per_image, directions, repeats, patch) < 1:
            raise ValueError("patches_per_image, directions, repeats and patch must be positive")
        self.patches_per_image = patches_per_image
        self.directions = directions
        self.repeats = repeats
        self.patch = patch
        self.min_resolution = min_resolution

    def evaluate(self, samples: Tensor, domain: Domain, generator: torch.Generator) -> dict[str, float]:
        domain.validate(samples)
        real = domain.batch(len(samples), generator, "test")
        n, channels = samples.shape[:2]
        sizes = [level.shape[-2:] for level in laplacian_pyramid(samples[:1], self.min_resolution)]
        results: dict[str, float] = {}
        for index, (height, width) in enumerate(sizes):
            if min(height, width) < self.patch:
                raise ValueError(f"level {height}x{width} is smaller than the {self.patch}x{self.patch} patch")
            shape = (n, self.patches_per_image)
            rows = torch.randint(height - self.patch + 1, shape, generator=generator)
            cols = torch.randint(width - self.patch + 1, shape, generator=generator)
            fake_descriptors = self._descriptors(samples, index, rows, cols)
            real_descriptors = self._descriptors(real, index, rows, cols)
            distance = sliced_wasserstein(
                _normalised(real_descriptors, channels),
                _normalised(fake_descriptors, channels),
                self.directions,
                self.repeats,
                generator,
            )
            results[f"swd {height}"] = 1e3 * distance
        results["swd avg"] = sum(results.values()) / len(results)
        return results

    def _descriptors(self, images: Tensor, level: int, rows: Tensor, cols: Tensor) -> Tensor:
        """One pyramid level's patches for all images, building the pyramid a chunk at a time."""
        out = torch.empty(rows.numel(), images.shape[1] * self.patch**2)
        per_image = self.patches_per_image
        for start in range(0, len(images), IMAGE_CHUNK):
            chunk = images[start : start + IMAGE_CHUNK].float()
            band = laplacian_pyramid(chunk, self.min_resolution)[level]
            stop = start + len(chunk)
            out[start * per_image : stop * per_image] = _patches(band, rows[start:stop], cols[start:stop], self.patch)
        return out


def _nearest(points: Tensor, centres: Tensor) -> Tensor:
    """Index of the nearest centre for each point.

    |x - c|^2 = |x|^2 - 2 x.c + |c|^2 and |x|^2 does not change the argmin, so one matrix
    product does it (faster than cdist here).
    """
    return (centres.pow(2).sum(1) - 2 * points @ centres.T).argmin(dim=1)


def kmeans(points: Tensor, k: int, iterations: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """k-means++ seeding then Lloyd steps until assignments settle: (centres, assignments).

    A cluster that empties keeps its previous centre, so the number of bins stays `k`.
    """
    if len(points) < k:
        raise ValueError(f"k-means needs at least k={k} points, got {len(points)}")
    norms = points.pow(2).sum(1)
    chosen: list[int] = []
    gap = torch.ones(len(points), dtype=points.dtype)  # uniform choice of the first centre
    for _ in range(k):
        weights = gap if float(gap.sum()) > 0 else torch.ones_like(gap)
        chosen.append(int(torch.multinomial(weights, 1, generator=generator)))
        centre = points[chosen[-1]]
        gap = torch.minimum(gap, (norms - 2 * points @ centre + centre @ centre).clamp_min(0))
    centres = points[chosen].clone()
    assignment = _nearest(points, centres)
    for _ in range(iterations):
        members = F.one_hot(assignment, k).to(points.dtype)  # a matrix product beats index_add_
        counts = members.sum(0)
        filled = counts > 0
        centres[filled] = (members.T @ points)[filled] / counts[filled, None]
        updated = _nearest(points, centres)
        if torch.equal(updated, assignment):
            break
        assignment = updated
    return centres, assignment


class NumberOfDifferentBins(Metric):
    """Number of statistically different bins (Richardson and Weiss 2018, "On GANs and GMMs").

    It counts the regions of image space that samples over- or under-fill, which catches
    mode dropping that per-sample quality scores miss. Real training images are clustered
    into `bins` by k-means in pixel space; each bin's share of those images is compared
    with its share of the samples (assigned to the nearest centre) by a two-sided
    two-proportion z-test at `significance`. The reference holds
    max(`reference_samples`, N) training images, so its shares are estimated at least as
    well as the samples'. Images are area-averaged down to `resolution` pixels a side
    (None keeps full size) first: pixel distances at 16x16 still separate layout and
    colour, and clustering is far cheaper. Reports the count, the count over K (the
    paper's NDB/K) and K; about `significance` * K bins differ by chance alone.
    """

    name = "ndb"

    def __init__(
        self,
        bins: int = 50,
        reference_samples: int = 2000,
        resolution: int | None = 16,
        significance: float = 0.05,
        iterations: int = 30,
    ) -> None:
        if bins < 2:
            raise ValueError(f"bins must be at least 2, got {bins}")
        if not 0 < significance < 1:
            raise ValueError(f"significance must be in (0, 1), got {significance}")
        self.bins = bins
        self.reference_samples = reference_samples
        self.resolution = resolution
        self.significance = significance
        self.iterations = iterations

    def evaluate(self, samples: Tensor, domain: Domain, generator: torch.Generator) -> dict[str, float]:
        domain.validate(samples)
        real = domain.batch(max(self.reference_samples, len(samples)), generator, "train")
        centres, real_bins = kmeans(self._features(real), self.bins, self.iterations, generator)
        sample_bins = _nearest(self._features(samples), centres)
        n_real, n_fake = len(real), len(samples)
        real_counts = torch.bincount(real_bins, minlength=self.bins).double()
        fake_counts = torch.bincount(sample_bins, minlength=self.bins).double()
        pooled = (real_counts + fake_counts) / (n_real + n_fake)
        error = (pooled * (1 - pooled) * (1 / n_real + 1 / n_fake)).sqrt()
        gap = real_counts / n_real - fake_counts / n_fake
        z = torch.where(error > 0, gap / error.clamp_min(1e-300), torch.zeros_like(gap))
        p_values = torch.erfc(z.abs() / math.sqrt(2))
        different = float((p_values < self.significance).sum())
        return {"ndb": different, "ndb/k": different / self.bins, "bins": float(self.bins)}

    def _features(self, images: Tensor) -> Tensor:
        """Flattened (optionally downsampled) pixels in float64, for stable distances."""
        images = images.double()
        if self.resolution is not None and min(images.shape[-2:]) > self.resolution:
            images = F.adaptive_avg_pool2d(images, self.resolution)
        return images.flatten(1)


class Diversity(Metric):
    """How different the samples are from one another, beside held-out data: the mean L1
    between random pairs of distinct samples, the same for as many held-out images, and their
    ratio. A translator that paints one face whatever its input (the one-face collapse of an
    unpaired translation) has a ratio near 0; the data's own is 1.
    """

    name = "diversity"

    def evaluate(self, samples: Tensor, domain: Domain, generator: torch.Generator) -> dict[str, float]:
        if len(samples) < 2:
            raise ValueError("diversity needs at least 2 samples")
        real = domain.batch(len(samples), generator, "test")
        spread, data = (_pairwise_l1(images, generator) for images in (samples, real))
        return {"pairwise l1": spread, "pairwise l1 of data": data, "pairwise l1 ratio": spread / max(data, 1e-12)}


def _pairwise_l1(images: Tensor, generator: torch.Generator) -> float:
    """Mean absolute difference between each image and the next in a random order: every
    image paired once, never with itself."""
    order = torch.randperm(len(images), generator=generator)
    first, second = images[order].double(), images[order.roll(1)].double()
    return float((first - second).abs().mean())


class ReconstructionL1(PairMetric):
    """Mean absolute error on the [-1, 1] scale: the cycle loss most recipes train with."""

    def evaluate(self, target: Tensor, output: Tensor, domain: Domain) -> dict[str, float]:
        return {"l1": float((output.double() - target.double()).abs().mean())}


#: Per-image MSE floor, so identical images give a large finite PSNR (about 106 dB), not infinity.
MIN_MSE = 1e-10


class PSNR(PairMetric):
    """Mean per-image peak signal-to-noise ratio in dB, the usual image-reconstruction score.

    The data range is 2 ([-1, 1]), so values equal PSNR on [0, 1] images.
    """

    def evaluate(self, target: Tensor, output: Tensor, domain: Domain) -> dict[str, float]:
        mse = (output.double() - target.double()).pow(2).flatten(1).mean(1).clamp_min(MIN_MSE)
        return {"psnr": float((10 * torch.log10(4 / mse)).mean())}


#: ITU-R BT.601 luma weights, for grayscale from RGB.
LUMA = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64)
LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], dtype=torch.float64)


def laplacian_variance(images: Tensor) -> Tensor:
    """Per-image variance of the 3x3 Laplacian of grayscale: high for sharp detail.

    Grayscale is BT.601 luma for RGB and the channel mean otherwise; no padding, so image
    borders add no false edges.
    """
    images = images.double()
    gray = torch.einsum("nchw,c->nhw", images, LUMA) if images.shape[1] == 3 else images.mean(1)
    return F.conv2d(gray[:, None], LAPLACIAN.view(1, 1, 3, 3)).flatten(1).var(dim=1)


class Sharpness(PairMetric):
    """Mean Laplacian variance of outputs over that of targets: 1 is as sharp, < 1 blurrier.

    L1 and PSNR reward blurry averages; this exposes them. NaN when targets are flat.
    """

    def evaluate(self, target: Tensor, output: Tensor, domain: Domain) -> dict[str, float]:
        reference = float(laplacian_variance(target).mean())
        ratio = float(laplacian_variance(output).mean()) / reference if reference > 0 else math.nan
        return {"sharpness ratio": ratio}
