"""Feature distillation on one (already adapted) student/teacher feature pair: ``fitnet``, ``at``, ``nd``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from ._common import NoParams, check_batch, search_range
from .registry import register


@register(
    "fitnet",
    kind="feature",
    paper="Romero, Ballas, Kahou, Chassang, Gatta & Bengio. FitNets: Hints for Thin Deep Nets. ICLR 2015 (arXiv:1412.6550)",
    params=NoParams,
)
class FitNetLoss(nn.Module):
    """FitNet hint loss: mean squared error between the adapted student feature and the teacher feature.

    Formula (N = number of elements of the feature tensor, batch included)::

        L = (1 / N) · Σ (f_s − f_t)²

    The paper writes ½‖u_h − r(v_g)‖² summed per sample; the reference implementations
    (mdistiller ``FitNet``, torchdistill) use ``F.mse_loss`` with the default mean over all
    elements, which we follow. The regressor r is the pipeline's adapter, applied before this loss.
    """

    def forward(self, student_feature: Tensor, teacher_feature: Tensor) -> Tensor:
        check_batch("fitnet", student_feature, teacher_feature, same_shape=True)
        return F.mse_loss(student_feature, teacher_feature.detach())


class ATParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    p: int = Field(2, ge=1, description="exponent p of the attention map mean_c f^p (authors: 2)",
                   json_schema_extra=search_range(1, 4))


def attention_map(feature: Tensor, p: int) -> Tensor:
    """``normalize(mean_c(f^p).view(B, -1))``: the L2-normalised spatial attention of a ``(B, C, ...)`` map."""
    return F.normalize(feature.pow(p).mean(1).reshape(feature.shape[0], -1))


@register(
    "at",
    kind="feature",
    paper=(
        "Zagoruyko & Komodakis. Paying More Attention to Attention: Improving the Performance of CNNs "
        "via Attention Transfer. ICLR 2017 (arXiv:1612.03928)"
    ),
    params=ATParams,
)
class ATLoss(nn.Module):
    """Attention transfer: squared distance between L2-normalised spatial attention maps.

    Formula (f of shape ``(B, C, H, W)``, channel mean, flatten, L2-normalise per sample)::

        a(f) = normalize( mean_c f^p ).view(B, H·W)
        L = mean_{b, j} (a(f_s) − a(f_t))²_{b, j}

    Reference-code choices (szagoruyko/attention-transfer ``at_loss``, mdistiller): p = 2,
    ``f.pow(p).mean(1)`` (so odd p follows their sign convention), ``(at(x) − at(y)).pow(2).mean()``
    — the mean over batch and positions, without the paper's β/2 factor (put it in the method
    weight). Registered as kind "feature", but the channel counts may differ: the map averages
    over channels, so no adapter is needed. The spatial sizes must match (a ``ValueError``
    otherwise; mdistiller pools the larger map, we leave resizing to the pipeline).
    """

    def __init__(self, p: int = 2):
        super().__init__()
        self.p = int(p)

    def forward(self, student_feature: Tensor, teacher_feature: Tensor) -> Tensor:
        check_batch("at", student_feature, teacher_feature, same_shape=False)
        if student_feature.dim() < 3:
            raise ValueError(
                f"at: features must be (batch, channels, *spatial), got {tuple(student_feature.shape)}"
            )
        if student_feature.shape[2:] != teacher_feature.shape[2:]:
            raise ValueError(
                f"at: spatial sizes differ: student {tuple(student_feature.shape[2:])} vs teacher "
                f"{tuple(teacher_feature.shape[2:])} (channels may differ, spatial sizes must match)"
            )
        a_s = attention_map(student_feature, self.p)
        a_t = attention_map(teacher_feature.detach(), self.p)
        return (a_s - a_t).pow(2).mean()

    def extra_repr(self) -> str:
        return f"p={self.p}"


class NDParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    norm_weight: float = Field(
        1.0, ge=0, allow_inf_nan=False, description="weight of the norm term mean(1 − ‖s‖ / max(‖s‖, ‖t‖))",
        json_schema_extra=search_range(0.25, 4.0, log=True),
    )
    direction_weight: float = Field(
        1.0, ge=0, allow_inf_nan=False, description="weight of the direction term mean(1 − cos(s, t))",
        json_schema_extra=search_range(0.25, 4.0, log=True),
    )


def pool_to_vector(feature: Tensor) -> Tensor:
    """``(B, C, *spatial)`` -> ``(B, C)`` by global average pooling; ``(B, D)`` is returned unchanged."""
    if feature.dim() == 2:
        return feature
    if feature.dim() < 2:
        raise ValueError(f"nd: features must be at least 2-D (batch, dim), got {tuple(feature.shape)}")
    return feature.flatten(2).mean(-1)


@register(
    "nd",
    kind="feature",
    paper=(
        "Wang, Cheng, Duan, Wang, Zhang & Ding. Improving Knowledge Distillation via Regularizing "
        "Feature Norm and Direction. arXiv:2305.17007, 2023"
    ),
    params=NDParams,
)
class NDLoss(nn.Module):
    """Norm-and-direction loss: align the pooled student embedding's direction with the teacher's and raise its norm.

    Formula (s, t the globally average-pooled student/teacher embeddings of sample b)::

        L_norm = mean_b ( 1 − ‖s_b‖ / max(‖s_b‖, ‖t_b‖) )
        L_dir  = mean_b ( 1 − cos(s_b, t_b) )
        L = norm_weight · L_norm + direction_weight · L_dir

    L_norm is zero once the student's norm reaches the teacher's and otherwise pushes it up to
    the larger (teacher) norm; L_dir aligns directions. Adapted from the authors' ``DirectNormLoss``
    (WangYZ1608/Knowledge-Distillation-via-ND), whose single term is
    ``1 − ⟨s_b, e_c⟩ / max(‖s_b‖, ‖t_b‖)`` with e_c the unit mean teacher embedding of the target
    class c: the feature-loss signature has no labels nor class centres, so the per-sample
    teacher direction replaces e_c and the term is split into separately weighted norm and
    direction parts (their product form would couple the two weights). Cosine via
    ``F.cosine_similarity`` (ε = 1e-8); norms are clamped below at 1e-12.
    """

    def __init__(self, norm_weight: float = 1.0, direction_weight: float = 1.0):
        super().__init__()
        self.norm_weight = float(norm_weight)
        self.direction_weight = float(direction_weight)

    def forward(self, student_feature: Tensor, teacher_feature: Tensor) -> Tensor:
        check_batch("nd", student_feature, teacher_feature, same_shape=True)
        s = pool_to_vector(student_feature)
        t = pool_to_vector(teacher_feature.detach())
        s_norm = s.norm(p=2, dim=1)
        t_norm = t.norm(p=2, dim=1)
        norm_term = 1.0 - s_norm / torch.maximum(s_norm, t_norm).clamp_min(1e-12)
        direction_term = 1.0 - F.cosine_similarity(s, t, dim=1)
        return self.norm_weight * norm_term.mean() + self.direction_weight * direction_term.mean()

    def extra_repr(self) -> str:
        return f"norm_weight={self.norm_weight}, direction_weight={self.direction_weight}"
