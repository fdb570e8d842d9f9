"""Class-aware logit distillation (``clkd``): instance-level, class-level and class-correlation terms."""

from __future__ import annotations

import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from ._common import TEMPERATURE_DESC, TEMPERATURE_SEARCH, check_logits, kl_per_sample, search_range
from .registry import register


class CLKDParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(4.0, gt=0, allow_inf_nan=False, description=TEMPERATURE_DESC,
                               json_schema_extra=TEMPERATURE_SEARCH)
    instance_weight: float = Field(
        1.0, ge=0, allow_inf_nan=False, description="weight of the instance-level KL (softmax over classes)",
        json_schema_extra=search_range(0.25, 4.0, log=True),
    )
    class_weight: float = Field(
        1.0, ge=0, allow_inf_nan=False, description="weight of the class-level KL (softmax over the batch)",
        json_schema_extra=search_range(0.25, 4.0, log=True),
    )
    correlation_weight: float = Field(
        1.0, ge=0, allow_inf_nan=False, description="weight of the class-correlation loss ‖C_s − C_t‖²_F / K²",
        json_schema_extra=search_range(0.25, 4.0, log=True),
    )


def class_correlation(probs: Tensor) -> Tensor:
    """The ``(K, K)`` Pearson correlation matrix of the class columns of a ``(B, K)`` batch.

    Columns are centred over the batch and L2-normalised (``F.normalize``, ε = 1e-12, so a
    constant column gives a zero row/column instead of NaN); then ``C = X̂ᵀ X̂``.
    """
    centred = probs - probs.mean(dim=0, keepdim=True)
    unit = F.normalize(centred, p=2, dim=0)
    return unit.t() @ unit


@register(
    "clkd",
    kind="logit",
    paper=(
        "Zhang, Liu, Hopcroft & He. Class-aware Information for Logit-based Knowledge Distillation. "
        "arXiv:2211.14773, 2022"
    ),
    params=CLKDParams,
)
class CLKDLoss(nn.Module):
    """Class-aware logit KD: instance-level KL + class-level KL over the batch + class-correlation loss.

    Formula (Z_s, Z_t the ``(B, K)`` logits, p = softmax(Z / T) over classes, q = softmax(Z / T)
    over the batch, i.e. the softmax of each class column, transposed to ``(K, B)``)::

        L_ins  = T² · mean_b KL(p_t,b ‖ p_s,b)                 (= ``kd``)
        L_cls  = T² · mean_k KL(q_t,k ‖ q_s,k)                 (each class k: a distribution over the B samples)
        C      = corr(P) with P = softmax(Z / T) over classes, Pearson correlation of the K class
                 columns over the batch (columns centred over the batch and L2-normalised)
        L_corr = ‖C_s − C_t‖²_F / K²
        L      = instance_weight · L_ins + class_weight · L_cls + correlation_weight · L_corr

    The paper gives the class-level term as the instance KD applied to the transposed logits
    and a class-correlation matrix compared with a squared norm scaled by 1/K²; it leaves the
    reductions, whether the correlation is built from logits or predictions, and its
    normalisation open. Choices here: batch mean / class mean reductions with T² on both KL
    terms (as in KD); the correlation uses the temperature-softened predictions and is the
    normalised (Pearson) correlation, so its entries lie in [−1, 1] and the term needs no T²;
    the squared Frobenius norm divided by K². The class-level and correlation terms need a
    batch of at least 2 samples (with B = 1 they are 0).
    """

    def __init__(
        self,
        temperature: float = 4.0,
        instance_weight: float = 1.0,
        class_weight: float = 1.0,
        correlation_weight: float = 1.0,
    ):
        super().__init__()
        self.temperature = float(temperature)
        self.instance_weight = float(instance_weight)
        self.class_weight = float(class_weight)
        self.correlation_weight = float(correlation_weight)

    def components(self, student_logits: Tensor, teacher_logits: Tensor) -> dict[str, Tensor]:
        """The three scalar terms ``instance``, ``class``, ``correlation`` (T² already applied to the KLs)."""
        check_logits("clkd", student_logits, teacher_logits)
        T = self.temperature
        zs = student_logits / T
        zt = teacher_logits.detach() / T
        instance = kl_per_sample(F.log_softmax(zt, dim=1), F.log_softmax(zs, dim=1)).mean() * T**2
        class_level = kl_per_sample(F.log_softmax(zt.t(), dim=1), F.log_softmax(zs.t(), dim=1)).mean() * T**2
        c_s = class_correlation(F.softmax(zs, dim=1))
        c_t = class_correlation(F.softmax(zt, dim=1))
        num_classes = student_logits.shape[1]
        correlation = (c_s - c_t).pow(2).sum() / num_classes**2
        return {"instance": instance, "class": class_level, "correlation": correlation}

    def forward(self, student_logits: Tensor, teacher_logits: Tensor, targets: Tensor | None = None) -> Tensor:
        c = self.components(student_logits, teacher_logits)
        return (
            self.instance_weight * c["instance"]
            + self.class_weight * c["class"]
            + self.correlation_weight * c["correlation"]
        )

    def extra_repr(self) -> str:
        return (
            f"temperature={self.temperature}, instance_weight={self.instance_weight}, "
            f"class_weight={self.class_weight}, correlation_weight={self.correlation_weight}"
        )
