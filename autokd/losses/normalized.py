"""Logit distillation with per-sample normalised logits (``normkd``, ``lskd``)."""

from __future__ import annotations

import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from ._common import TEMPERATURE_DESC, TEMPERATURE_SEARCH, check_logits, kl_per_sample, search_range
from .registry import register

#: Lower bound on a logit row's standard deviation in NormKD (guards constant rows; not in the paper).
NORMKD_MIN_STD = 1e-7
#: The ε added to the standard deviation in logit standardisation (authors' code).
LSKD_EPS = 1e-7


class NormKDParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    t_norm: float = Field(
        1.0,
        gt=0,
        allow_inf_nan=False,
        description="T_norm: each sample's temperature is T_norm times the std of its logits",
        json_schema_extra=search_range(0.25, 4.0, log=True),
    )


@register(
    "normkd",
    kind="logit",
    paper="Chi, Zheng, Li, Yang, Wu, Lin & Cai. NormKD: Normalized Logits for Knowledge Distillation. arXiv:2308.00520, 2023",
    params=NormKDParams,
)
class NormKDLoss(nn.Module):
    """NormKD: KD with a per-sample temperature T_norm·std(z) for teacher and student separately.

    Formula (per sample b; std over the classes, unbiased)::

        T_t,b = t_norm · std(z_t,b),   T_s,b = t_norm · std(z_s,b)
        L = mean_b  T_t,b² · KL( softmax(z_t,b / T_t,b) ‖ softmax(z_s,b / T_s,b) )

    Each side's logits are divided by its own temperature, i.e. both are brought to the same
    spread ("normalised logits", the softmax is shift-invariant so the mean need not be removed),
    and each sample's KL is scaled by the square of the teacher-side temperature, playing the
    role of KD's T². The paper's text leaves the scale factor's side implicit; we follow the
    public implementation of the method (teacher-side T², batch mean). The student's std is part
    of the graph (gradients flow through it); the teacher side is detached. Stds are clamped
    below at 1e-7 so a constant logit row does not divide by zero (not in the paper).
    """

    def __init__(self, t_norm: float = 1.0):
        super().__init__()
        self.t_norm = float(t_norm)

    def forward(self, student_logits: Tensor, teacher_logits: Tensor, targets: Tensor | None = None) -> Tensor:
        check_logits("normkd", student_logits, teacher_logits)
        if student_logits.shape[1] < 2:
            raise ValueError("normkd: needs at least 2 classes (the std of a single logit is undefined)")
        teacher_logits = teacher_logits.detach()
        T_t = self.t_norm * teacher_logits.std(dim=1, keepdim=True).clamp_min(NORMKD_MIN_STD)
        T_s = self.t_norm * student_logits.std(dim=1, keepdim=True).clamp_min(NORMKD_MIN_STD)
        log_p_t = F.log_softmax(teacher_logits / T_t, dim=1)
        log_p_s = F.log_softmax(student_logits / T_s, dim=1)
        return (kl_per_sample(log_p_t, log_p_s) * T_t.squeeze(1) ** 2).mean()

    def extra_repr(self) -> str:
        return f"t_norm={self.t_norm}"


class LSKDParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(2.0, gt=0, allow_inf_nan=False, description=TEMPERATURE_DESC,
                               json_schema_extra=TEMPERATURE_SEARCH)


def standardize(logits: Tensor) -> Tensor:
    """Z-score each row: ``(z − mean(z)) / (1e-7 + std(z))`` with the unbiased std."""
    mean = logits.mean(dim=-1, keepdim=True)
    std = logits.std(dim=-1, keepdim=True)
    return (logits - mean) / (LSKD_EPS + std)


@register(
    "lskd",
    kind="logit",
    paper="Sun, Ren, Li, Wang & Cao. Logit Standardization in Knowledge Distillation. CVPR 2024 (arXiv:2403.01427)",
    params=LSKDParams,
)
class LSKDLoss(nn.Module):
    """Logit-standardised KD: Hinton KD applied to per-sample z-scored teacher and student logits.

    Formula (mean and unbiased std over the classes of each sample)::

        ẑ = (z − mean(z)) / (1e-7 + std(z))
        L = T² · mean_b KL( softmax(ẑ_t,b / T) ‖ softmax(ẑ_s,b / T) )

    Reference-code choices (sunshangquan/logit-standardization-KD ``kd_loss`` with
    ``logit_stand``): unbiased ``torch.std``, ε = 1e-7 added to the std, KL summed over classes
    and averaged over the batch, times T². Default T = 2 (standardised logits have unit
    spread, so a smaller T than plain KD's 4 is used).
    """

    def __init__(self, temperature: float = 2.0):
        super().__init__()
        self.temperature = float(temperature)

    def forward(self, student_logits: Tensor, teacher_logits: Tensor, targets: Tensor | None = None) -> Tensor:
        check_logits("lskd", student_logits, teacher_logits)
        if student_logits.shape[1] < 2:
            raise ValueError("lskd: needs at least 2 classes (the std of a single logit is undefined)")
        T = self.temperature
        log_p_s = F.log_softmax(standardize(student_logits) / T, dim=1)
        log_p_t = F.log_softmax(standardize(teacher_logits.detach()) / T, dim=1)
        return kl_per_sample(log_p_t, log_p_s).mean() * T**2

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"
