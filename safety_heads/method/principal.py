"""Principal angles between the dominant subspaces of two sets of hidden states.

Generalized Ships (Zhou et al., section 4) stacks the last-position, final-norm hidden
states of N prompts into an N x d matrix M, takes its SVD M = U S V^T, and compares the
span of the first ``rank`` left singular vectors of the vanilla model with that of the
ablated model. The score is the sum of the principal angles between the two spans, in
degrees (the paper's code uses rank 1).

Angles are computed in float64 and from both their cosines and their sines: arccos alone
loses precision for small angles (where the cosine is ~1), arcsin for angles near 90.
"""

import torch
from jaxtyping import Float
from torch import Tensor

from safety_heads.errors import InputError

__all__ = ["left_singular_basis", "principal_angles", "principal_angle_score"]


def left_singular_basis(
    states: Float[Tensor, "*batch prompts d_model"], rank: int
) -> Float[Tensor, "*batch prompts rank"]:
    """The first ``rank`` left singular vectors of ``states`` (float64)."""
    n_prompts, d_model = states.shape[-2:]
    if not 1 <= rank <= min(n_prompts, d_model):
        raise InputError(
            f"rank={rank} must be between 1 and min(n_prompts, d_model) = "
            f"{min(n_prompts, d_model)}; use more prompts or a smaller rank."
        )
    u, _, _ = torch.linalg.svd(states.double(), full_matrices=False)
    return u[..., :rank]


def principal_angles(
    a: Float[Tensor, "*batch prompts rank"], b: Float[Tensor, "*batch prompts rank"]
) -> Float[Tensor, "*batch rank"]:
    """Principal angles (degrees, ascending) between the spans of orthonormal ``a`` and ``b``."""
    overlap = a.mT @ b
    cosines = torch.linalg.svdvals(overlap).clamp(0.0, 1.0)  # descending
    residual = b - a @ overlap
    sines = torch.linalg.svdvals(residual).flip(-1).clamp(0.0, 1.0)  # ascending
    from_cos = torch.arccos(cosines)
    from_sin = torch.arcsin(sines)
    angles = torch.where(cosines.square() < 0.5, from_cos, from_sin)
    return torch.rad2deg(angles)


def principal_angle_score(
    base: Float[Tensor, "prompts d_model"],
    ablated: Float[Tensor, "*batch prompts d_model"],
    rank: int = 1,
) -> Float[Tensor, "*batch"]:
    """Sum of the principal angles (degrees) between the rank-``rank`` left singular
    subspaces of ``base`` and of each ``ablated`` matrix."""
    reference = left_singular_basis(base, rank)
    changed = left_singular_basis(ablated, rank)
    return principal_angles(reference.expand_as(changed), changed).sum(dim=-1)
