"""Classic logit distillation: Hinton et al.'s temperature-softened KL (``kd``)."""

from __future__ import annotations

import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from ._common import TEMPERATURE_DESC, TEMPERATURE_SEARCH, check_logits, kl_per_sample
from .registry import register


class KDParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(4.0, gt=0, allow_inf_nan=False, description=TEMPERATURE_DESC,
                               json_schema_extra=TEMPERATURE_SEARCH)


@register(
    "kd",
    kind="logit",
    paper="Hinton, Vinyals & Dean. Distilling the Knowledge in a Neural Network. NIPS DL Workshop 2015 (arXiv:1503.02531)",
    params=KDParams,
)
class KDLoss(nn.Module):
    """Hinton KD: T² times the batch-mean KL from the teacher's to the student's softened predictions.

    Formula::

        L = T² · mean_b KL( softmax(z_t,b / T) ‖ softmax(z_s,b / T) )

    Reference-code choices (mdistiller ``kd_loss``): KL summed over classes and averaged over the
    batch ("batchmean"), multiplied by T² so gradient magnitudes do not shrink as 1/T².
    ``targets`` are accepted for the common logit signature and ignored.
    """

    def __init__(self, temperature: float = 4.0):
        super().__init__()
        self.temperature = float(temperature)

    def forward(self, student_logits: Tensor, teacher_logits: Tensor, targets: Tensor | None = None) -> Tensor:
        check_logits("kd", student_logits, teacher_logits)
        T = self.temperature
        log_p_s = F.log_softmax(student_logits / T, dim=1)
        log_p_t = F.log_softmax(teacher_logits.detach() / T, dim=1)
        return kl_per_sample(log_p_t, log_p_s).mean() * T**2

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"
