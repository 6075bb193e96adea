import math

import pytest
import torch

from safety_heads.method.principal import (
    left_singular_basis,
    principal_angle_score,
    principal_angles,
)


def _rotation_pair(theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    a = torch.zeros(5, 1, dtype=torch.float64)
    a[0, 0] = 1.0
    b = torch.zeros(5, 1, dtype=torch.float64)
    b[0, 0], b[1, 0] = math.cos(theta), math.sin(theta)
    return a, b


@pytest.mark.parametrize("degrees", [0.0, 1e-6, 0.01, 30.0, 45.0, 60.0, 89.99, 90.0])
def test_known_angles(degrees):
    a, b = _rotation_pair(math.radians(degrees))
    assert principal_angles(a, b).item() == pytest.approx(degrees, abs=1e-9)


def test_score_is_invariant_to_scale_and_sign():
    states = torch.randn(12, 7, dtype=torch.float64)
    assert principal_angle_score(states, -3.0 * states, rank=2).item() == pytest.approx(0, abs=1e-6)


def test_rank_r_sums_r_angles():
    base = torch.randn(10, 6, dtype=torch.float64)
    other = torch.randn(10, 6, dtype=torch.float64)
    one = principal_angle_score(base, other, rank=1)
    three = principal_angle_score(base, other, rank=3)
    assert 0 <= one <= 90
    assert three <= 270
    a, b = left_singular_basis(base, 3), left_singular_basis(other, 3)
    assert three.item() == pytest.approx(principal_angles(a, b).sum().item())


def test_batched_scores_equal_single_scores():
    base = torch.randn(8, 5, dtype=torch.float64)
    stack = torch.randn(4, 8, 5, dtype=torch.float64)
    together = principal_angle_score(base, stack, rank=2)
    alone = torch.stack([principal_angle_score(base, m, rank=2) for m in stack])
    assert torch.allclose(together, alone)


def test_rank_out_of_range_is_explained():
    with pytest.raises(ValueError, match="rank=4"):
        left_singular_basis(torch.randn(3, 5), 4)
