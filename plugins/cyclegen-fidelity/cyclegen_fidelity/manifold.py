"""Improved precision and recall (Kynkäänniemi et al. 2019) and density and coverage (Naeem et
al. 2020): each set's manifold is the union of balls around its points reaching their k-th
nearest neighbour, and each measure counts points of one set that fall in the other's.

Comparisons are strict (a point on a ball's surface is outside), as in both papers' code.
Distances are Euclidean in float64, computed in blocks so that memory stays bounded.
"""

from __future__ import annotations

import torch
from torch import Tensor

#: Rows of a distance block: 1,024 x 10,000 float64 distances are 80 MB.
BLOCK = 1024


def _blocks(queries: Tensor, points: Tensor):
    """(start, distances from queries[start:start + BLOCK] to every point)."""
    points = points.double()
    for start in range(0, len(queries), BLOCK):
        yield start, torch.cdist(queries[start : start + BLOCK].double(), points)


def kth_neighbour_radii(points: Tensor, k: int) -> Tensor:
    """Each point's distance to its k-th nearest other point (itself excluded)."""
    if len(points) <= k:
        raise ValueError(f"need more than k = {k} points for k-th neighbour radii, got {len(points)}")
    radii = torch.empty(len(points), dtype=torch.float64)
    for start, distances in _blocks(points, points):
        rows = torch.arange(len(distances))
        distances[rows, start + rows] = -1.0  # itself: always the first, whatever ties there are
        radii[start : start + len(distances)] = distances.topk(k + 1, dim=1, largest=False).values[:, k]
    return radii


def balls_containing(queries: Tensor, centres: Tensor, radii: Tensor) -> Tensor:
    """For each query, how many of the balls (centres, radii) hold it strictly inside."""
    counts = torch.empty(len(queries), dtype=torch.long)
    for start, distances in _blocks(queries, centres):
        counts[start : start + len(distances)] = (distances < radii).sum(1)
    return counts


def nearest_distance(queries: Tensor, points: Tensor) -> Tensor:
    """Each query's distance to its nearest point."""
    nearest = torch.empty(len(queries), dtype=torch.float64)
    for start, distances in _blocks(queries, points):
        nearest[start : start + len(distances)] = distances.min(1).values
    return nearest


def precision_recall(real: Tensor, fake: Tensor, k: int = 3) -> tuple[float, float]:
    """Precision: the share of fakes inside the real manifold. Recall: the share of reals
    inside the fake manifold. Both in [0, 1]."""
    precision = (balls_containing(fake, real, kth_neighbour_radii(real, k)) > 0).double().mean()
    recall = (balls_containing(real, fake, kth_neighbour_radii(fake, k)) > 0).double().mean()
    return float(precision), float(recall)


def density_coverage(real: Tensor, fake: Tensor, k: int = 5) -> tuple[float, float]:
    """Density: real balls holding each fake, over k, averaged (about 1 when the sets match,
    above 1 where fakes crowd the real modes). Coverage: the share of real balls holding at
    least one fake, in [0, 1]; unlike recall it does not grow with outlying fakes."""
    radii = kth_neighbour_radii(real, k)
    density = balls_containing(fake, real, radii).double().mean() / k
    coverage = (nearest_distance(real, fake) < radii).double().mean()
    return float(density), float(coverage)
