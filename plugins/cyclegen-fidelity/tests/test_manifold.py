"""Precision/recall and density/coverage on constructed sets with known answers."""

from __future__ import annotations

import pytest
import torch

from cyclegen_fidelity import manifold
from cyclegen_fidelity.manifold import density_coverage, kth_neighbour_radii, precision_recall


def points(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)[:, None]


def test_a_worked_example() -> None:
    # k = 1. Real radii: 0 -> 1, 1 -> 1, 3 -> 2. Fake radii: 0.5 -> 9.5, 10 -> 1, 11 -> 1.
    real, fake = points(0, 1, 3), points(0.5, 10, 11)
    assert kth_neighbour_radii(real, 1).tolist() == [1, 1, 2]
    assert precision_recall(real, fake, k=1) == pytest.approx((1 / 3, 1.0))  # only 0.5 is realistic
    # 0.5 lies in the balls of 0 and 1 (not of 3: 2.5 > 2); 0 and 1 hold a fake, 3 does not
    assert density_coverage(real, fake, k=1) == pytest.approx((2 / 3, 2 / 3))


def test_a_point_on_a_ball_surface_is_outside() -> None:
    real, fake = points(0, 1, 20, 21), points(2, 20.5, 50)  # every real radius is 1; 2 is 1 from 1
    assert precision_recall(real, fake, k=1)[0] == pytest.approx(1 / 3)  # only 20.5 is inside


def test_samples_of_one_mode_of_two() -> None:
    generator = torch.Generator().manual_seed(0)
    real = torch.cat([torch.randn(200, 2, generator=generator), torch.randn(200, 2, generator=generator) + 100])
    fake = real[:200].clone()  # every sample copies a real point of the first mode
    precision, recall = precision_recall(real, fake)
    density, coverage = density_coverage(real, fake)
    assert precision == 1.0 and recall == 0.5 and coverage == 0.5
    assert density == pytest.approx(1.0, abs=0.15)  # within the mode they cover, as dense as the data


def test_disjoint_sets_score_zero_and_equal_distributions_score_high() -> None:
    generator = torch.Generator().manual_seed(1)
    real = torch.randn(1500, 4, generator=generator)
    assert precision_recall(real, real + 100) == (0.0, 0.0)
    assert density_coverage(real, real + 100) == (0.0, 0.0)
    other = torch.randn(1500, 4, generator=generator)
    precision, recall = precision_recall(real, other)
    density, coverage = density_coverage(real, other)
    assert precision > 0.75 and recall > 0.75 and coverage > 0.9
    assert density == pytest.approx(1.0, abs=0.1)  # Naeem et al.: E[density] = 1 for equal distributions


def test_blocks_give_the_same_answer_as_one_matrix(monkeypatch: pytest.MonkeyPatch) -> None:
    generator = torch.Generator().manual_seed(2)
    real, fake = torch.randn(300, 3, generator=generator), torch.randn(250, 3, generator=generator) + 0.3
    whole = precision_recall(real, fake), density_coverage(real, fake)
    monkeypatch.setattr(manifold, "BLOCK", 7)
    assert (precision_recall(real, fake), density_coverage(real, fake)) == whole


def test_too_few_points_for_k_is_an_error() -> None:
    with pytest.raises(ValueError, match="more than k = 3 points"):
        precision_recall(points(0, 1, 2), points(0, 1, 2, 3), k=3)
