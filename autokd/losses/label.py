"""Teacher-free label regularisation (``ls``): label smoothing, the usual no-teacher KD baseline."""

from __future__ import annotations

import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from ._common import check_logits, search_range
from .registry import register


class LSParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    epsilon: float = Field(
        0.1, ge=0, le=1, allow_inf_nan=False, description="smoothing ε: probability mass spread uniformly over the K classes",
        json_schema_extra=search_range(0.01, 0.5, log=True),
    )


@register(
    "ls",
    kind="label",
    paper=(
        "Szegedy, Vanhoucke, Ioffe, Shlens & Wojna. Rethinking the Inception Architecture for Computer Vision "
        "(label smoothing). CVPR 2016; as a teacher-free KD baseline: Yuan et al., Revisiting Knowledge "
        "Distillation via Label Smoothing Regularization, CVPR 2020"
    ),
    params=LSParams,
)
class LabelSmoothingLoss(nn.Module):
    """Label smoothing: cross-entropy against targets mixed with the uniform distribution (no teacher).

    Formula (K classes, y the target)::

        q_k = (1 − ε) · [k = y] + ε / K
        L = mean_b ( − Σ_k q_b,k · log softmax(z_s,b)_k )

    This is the whole smoothed-label cross-entropy (identical to
    ``F.cross_entropy(z, y, label_smoothing=ε)``), not just the ε-part; the trainer mixes it with
    the hard-label CE as ``(1 − λ)·CE + λ·L``, so λ = 1 gives plain label smoothing training.
    ``teacher_logits`` is ignored (it may be None); the registry marks the method
    ``needs_teacher=False``.
    """

    def __init__(self, epsilon: float = 0.1):
        super().__init__()
        self.epsilon = float(epsilon)

    def forward(self, student_logits: Tensor, teacher_logits: Tensor | None, targets: Tensor) -> Tensor:
        check_logits("ls", student_logits, None, targets)
        return F.cross_entropy(student_logits, targets.long(), label_smoothing=self.epsilon)

    def extra_repr(self) -> str:
        return f"epsilon={self.epsilon}"
