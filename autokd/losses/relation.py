"""Relational distillation: match sample-to-sample structure within the batch (``rkd``, ``pkt``, ``sp``).

The student and teacher features may have any shapes as long as the batch size agrees; each is
flattened to ``(B, D)`` and only ``(B, B)`` (or ``(B, B, B)``) relations are compared.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from ._common import NoParams, check_batch, search_range
from .registry import register


def _flat(x: Tensor) -> Tensor:
    return x.reshape(x.shape[0], -1)


# ----------------------------------------------------------------------------- RKD


class RKDParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    distance_weight: float = Field(25.0, ge=0, allow_inf_nan=False, description="weight of the distance-wise loss",
                                   json_schema_extra=search_range(2.5, 250.0, log=True))
    angle_weight: float = Field(50.0, ge=0, allow_inf_nan=False, description="weight of the angle-wise loss",
                                json_schema_extra=search_range(5.0, 500.0, log=True))


def pairwise_distances(e: Tensor, eps: float = 1e-12) -> Tensor:
    """Euclidean distance matrix of the rows of ``e`` with a zero diagonal (squared distances clamped at eps)."""
    sq = e.pow(2).sum(dim=1)
    d2 = (sq.unsqueeze(1) + sq.unsqueeze(0) - 2.0 * (e @ e.t())).clamp(min=eps)
    d = d2.sqrt()
    off_diag = ~torch.eye(e.shape[0], dtype=torch.bool, device=e.device)
    return d * off_diag


def _normalised_distances(e: Tensor) -> Tensor:
    d = pairwise_distances(e)
    positive = d[d > 0]
    if positive.numel() == 0:  # a batch of one (or identical points): nothing to normalise by
        return d
    return d / positive.mean()


def triplet_angles(e: Tensor) -> Tensor:
    """cos∠(e_i − e_j, e_k − e_j) for all (j, i, k), flattened (``B³`` values)."""
    diff = F.normalize(e.unsqueeze(0) - e.unsqueeze(1), p=2, dim=2)  # diff[j, i] = e_i − e_j
    return torch.bmm(diff, diff.transpose(1, 2)).reshape(-1)


@register(
    "rkd",
    kind="relation",
    paper="Park, Kim, Lu & Cho. Relational Knowledge Distillation. CVPR 2019 (arXiv:1904.05068)",
    params=RKDParams,
)
class RKDLoss(nn.Module):
    """Relational KD: smooth-L1 match of normalised pairwise distances and of triplet angles.

    Formula (e = features flattened to ``(B, D)``; ψ_D distances divided by their mean over
    distinct pairs; ψ_A the cosines of the angles at e_j of every triplet)::

        L_D = smooth_l1(ψ_D(e_s), ψ_D(e_t))        (mean over the B² entries, diagonal 0)
        L_A = smooth_l1(ψ_A(e_s), ψ_A(e_t))        (mean over the B³ entries)
        L = distance_weight · L_D + angle_weight · L_A

    Reference-code choices (lenscloth/RKD, mdistiller ``rkd_loss``): non-squared distances with
    the squared distance clamped at 1e-12, zero diagonal, mean over the positive distances,
    ``F.smooth_l1_loss`` with β = 1 and mean reduction, weights 25 and 50.
    """

    def __init__(self, distance_weight: float = 25.0, angle_weight: float = 50.0):
        super().__init__()
        self.distance_weight = float(distance_weight)
        self.angle_weight = float(angle_weight)

    def forward(self, student_feature: Tensor, teacher_feature: Tensor) -> Tensor:
        check_batch("rkd", student_feature, teacher_feature, same_shape=False)
        s = _flat(student_feature)
        t = _flat(teacher_feature.detach())
        loss_d = F.smooth_l1_loss(_normalised_distances(s), _normalised_distances(t))
        loss_a = F.smooth_l1_loss(triplet_angles(s), triplet_angles(t))
        return self.distance_weight * loss_d + self.angle_weight * loss_a

    def extra_repr(self) -> str:
        return f"distance_weight={self.distance_weight}, angle_weight={self.angle_weight}"


# ----------------------------------------------------------------------------- PKT


PKT_EPS = 1e-7


def cosine_conditional_probs(e: Tensor, eps: float = PKT_EPS) -> Tensor:
    """Rows of ``(cos_sim + 1) / 2`` renormalised to sum to 1 (the PKT conditional probabilities)."""
    unit = e / (e.norm(p=2, dim=1, keepdim=True) + eps)
    unit = torch.nan_to_num(unit, nan=0.0)
    sim = (unit @ unit.t() + 1.0) / 2.0
    return sim / sim.sum(dim=1, keepdim=True)


@register(
    "pkt",
    kind="relation",
    paper=(
        "Passalis & Tefas. Learning Deep Representations with Probabilistic Knowledge Transfer. "
        "ECCV 2018 (arXiv:1803.10837)"
    ),
    params=NoParams,
)
class PKTLoss(nn.Module):
    """Probabilistic knowledge transfer: KL between cosine-kernel conditional distributions over the batch.

    Formula (e flattened to ``(B, D)``, ê = e / (‖e‖ + ε), ε = 1e-7)::

        K_ij = (ê_i · ê_j + 1) / 2,     P_ij = K_ij / Σ_j K_ij        (for teacher and student)
        L = mean_{i, j} P^t_ij · log( (P^t_ij + ε) / (P^s_ij + ε) )

    Reference-code choices (passalis/probabilistic_kt ``cosine_similarity_loss``, mdistiller
    ``pkt_loss``): the ε placements above, NaNs from zero vectors set to 0, and the mean over
    all B² entries (not a per-row sum).
    """

    def forward(self, student_feature: Tensor, teacher_feature: Tensor) -> Tensor:
        check_batch("pkt", student_feature, teacher_feature, same_shape=False)
        p_s = cosine_conditional_probs(_flat(student_feature))
        p_t = cosine_conditional_probs(_flat(teacher_feature.detach()))
        return (p_t * torch.log((p_t + PKT_EPS) / (p_s + PKT_EPS))).mean()


# ----------------------------------------------------------------------------- SP


def similarity_matrix(e: Tensor) -> Tensor:
    """``normalize(e eᵀ)``: the batch Gram matrix with L2-normalised rows (ε = 1e-12)."""
    return F.normalize(e @ e.t(), p=2, dim=1)


@register(
    "sp",
    kind="relation",
    paper="Tung & Mori. Similarity-Preserving Knowledge Distillation. ICCV 2019 (arXiv:1907.09682)",
    params=NoParams,
)
class SPLoss(nn.Module):
    """Similarity-preserving KD: squared Frobenius distance between row-normalised batch Gram matrices.

    Formula (f flattened to ``(B, D)``, each row of G L2-normalised)::

        G = normalize(f fᵀ)
        L = ‖G_s − G_t‖²_F / B²

    Reference-code choices (mdistiller / RepDistiller ``similarity_loss``): ``F.normalize`` of the
    Gram matrix along rows (ε = 1e-12) and division by B²; one feature pair per call.
    """

    def forward(self, student_feature: Tensor, teacher_feature: Tensor) -> Tensor:
        check_batch("sp", student_feature, teacher_feature, same_shape=False)
        g_s = similarity_matrix(_flat(student_feature))
        g_t = similarity_matrix(_flat(teacher_feature.detach()))
        batch = student_feature.shape[0]
        return (g_s - g_t).pow(2).sum() / batch**2
