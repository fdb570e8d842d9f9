"""Curriculum temperature KD (``ctkd``): a learnable temperature trained adversarially via gradient reversal."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor, nn

from ._common import check_logits, kl_per_sample, search_range
from .registry import register

#: The authors' defaults: T = t_start + t_end · sigmoid(θ) with t_start = 1, t_end = 20, θ₀ = 1.
_T_START, _T_END, _THETA0 = 1.0, 20.0, 1.0
_DEFAULT_INIT_T = _T_START + _T_END / (1.0 + math.exp(-_THETA0))  # ≈ 15.62


class GradientReversal(torch.autograd.Function):
    """Identity in the forward pass; multiplies the incoming gradient by ``−λ`` in the backward pass."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, lambda_: float) -> Tensor:
        ctx.lambda_ = float(lambda_)
        return x.clone()

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor, None]:
        return -ctx.lambda_ * grad_output, None


def grad_reverse(x: Tensor, lambda_: float) -> Tensor:
    """Apply :class:`GradientReversal` with strength ``lambda_``."""
    return GradientReversal.apply(x, lambda_)


class CTKDParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    init_temperature: float = Field(
        _DEFAULT_INIT_T,
        allow_inf_nan=False,
        description="starting temperature, strictly between min and max (authors: 1 + 20·sigmoid(1) ≈ 15.62)",
    )
    min_temperature: float = Field(
        _T_START, gt=0, allow_inf_nan=False, description="lower bound of the learnable temperature (authors' t_start)"
    )
    max_temperature: float = Field(
        _T_START + _T_END,
        gt=0,
        allow_inf_nan=False,
        description="upper bound of the learnable temperature (authors' t_start + t_end)",
    )
    lambda_max: float = Field(
        1.0, ge=0, allow_inf_nan=False, description="gradient-reversal strength λ at the end of the schedule",
        json_schema_extra=search_range(0.1, 4.0, log=True),
    )
    lambda_min: float = Field(
        0.0, ge=0, allow_inf_nan=False, description="gradient-reversal strength λ at the start of the schedule"
    )
    schedule_epochs: int = Field(
        10, ge=1, description="epochs of the cosine ramp of λ from lambda_min to lambda_max (authors' decay_loops)"
    )

    @model_validator(mode="after")
    def _check_range(self) -> "CTKDParams":
        if not self.min_temperature < self.max_temperature:
            raise ValueError(
                f"min_temperature ({self.min_temperature}) must be smaller than max_temperature ({self.max_temperature})"
            )
        if not self.min_temperature < self.init_temperature < self.max_temperature:
            raise ValueError(
                f"init_temperature ({self.init_temperature}) must lie strictly between min_temperature "
                f"({self.min_temperature}) and max_temperature ({self.max_temperature})"
            )
        return self


@register(
    "ctkd",
    kind="logit",
    paper="Li, Li, Yang, Li, Zheng, Han, Yang & Zhang. Curriculum Temperature for Knowledge Distillation. AAAI 2023 (arXiv:2211.16231)",
    params=CTKDParams,
)
class CTKDLoss(nn.Module):
    """Curriculum temperature KD: KD at a learnable global temperature that is trained to maximise the loss.

    Formula (θ the learnable scalar, GRL_λ the gradient-reversal layer)::

        T = min_temperature + (max_temperature − min_temperature) · sigmoid(GRL_λ(θ))
        L = T² · mean_b KL( softmax(z_t,b / T) ‖ softmax(z_s,b / T) )
        λ(e) = lambda_min + (lambda_max − lambda_min) · (1 − cos(π · min(e + 1, E) / E)) / 2,  E = schedule_epochs

    The student minimises L while θ receives ``−λ ·`` its gradient, i.e. the temperature ascends
    the loss (easy-to-hard curriculum as λ grows). θ is an ``nn.Parameter``; the trainer adds
    it to the optimizer through ``parameters()``.

    Reference-code choices (zhengli97/CTKD ``Global_T`` + ``CosineDecay``): a single global θ
    initialised to 1 with ``T = t_start + t_end · sigmoid(θ)``, t_start = 1, t_end = 20 (so T
    lies in (1, 21) and starts at ≈ 15.62); here the bounds are ``min_temperature`` /
    ``max_temperature`` and θ₀ is chosen so that T starts at ``init_temperature``. The authors
    multiply the gradient by a cosine-scheduled value going 0 → −1 over ``decay_loops = 10``
    epochs, evaluated at their 1-based epoch; ``on_epoch_start`` receives the 0-based epoch e,
    hence ``e + 1`` above. Before any ``on_epoch_start`` call λ is the value for e = 0. The T²
    factor and batch-mean KL follow their ``DistillKL``; T² depends on θ as in their code.
    """

    def __init__(
        self,
        init_temperature: float = _DEFAULT_INIT_T,
        min_temperature: float = _T_START,
        max_temperature: float = _T_START + _T_END,
        lambda_max: float = 1.0,
        lambda_min: float = 0.0,
        schedule_epochs: int = 10,
    ):
        super().__init__()
        CTKDParams(
            init_temperature=init_temperature,
            min_temperature=min_temperature,
            max_temperature=max_temperature,
            lambda_max=lambda_max,
            lambda_min=lambda_min,
            schedule_epochs=schedule_epochs,
        )  # direct construction gets the same checks as create()
        self.min_temperature = float(min_temperature)
        self.max_temperature = float(max_temperature)
        self.lambda_max = float(lambda_max)
        self.lambda_min = float(lambda_min)
        self.schedule_epochs = int(schedule_epochs)
        frac = (float(init_temperature) - self.min_temperature) / (self.max_temperature - self.min_temperature)
        self.theta = nn.Parameter(torch.tensor([math.log(frac / (1.0 - frac))]))
        self.grl_lambda = self.lambda_at(0)

    def lambda_at(self, epoch: int) -> float:
        """The gradient-reversal strength λ for 0-based ``epoch`` (cosine ramp, see the class docstring)."""
        i = min(max(int(epoch) + 1, 0), self.schedule_epochs)
        ramp = (1.0 - math.cos(math.pi * i / self.schedule_epochs)) / 2.0
        return self.lambda_min + (self.lambda_max - self.lambda_min) * ramp

    def on_epoch_start(self, epoch: int, total_epochs: int) -> None:
        """Set λ for this (0-based) epoch."""
        self.grl_lambda = self.lambda_at(epoch)

    def current_temperature(self, reverse: bool = True) -> Tensor:
        """T as a 1-element tensor in the graph (through the gradient-reversal layer if ``reverse``)."""
        theta = grad_reverse(self.theta, self.grl_lambda) if reverse else self.theta
        return self.min_temperature + (self.max_temperature - self.min_temperature) * torch.sigmoid(theta)

    @property
    def temperature(self) -> float:
        """The current temperature as a plain number (for logging)."""
        return float(self.current_temperature(reverse=False).detach())

    def forward(self, student_logits: Tensor, teacher_logits: Tensor, targets: Tensor | None = None) -> Tensor:
        check_logits("ctkd", student_logits, teacher_logits)
        T = self.current_temperature().to(student_logits.dtype)
        log_p_s = F.log_softmax(student_logits / T, dim=1)
        log_p_t = F.log_softmax(teacher_logits.detach() / T, dim=1)
        return kl_per_sample(log_p_t, log_p_s).mean() * T.squeeze(0) ** 2

    def extra_repr(self) -> str:
        return (
            f"T={self.temperature:.4g} in ({self.min_temperature}, {self.max_temperature}), "
            f"lambda={self.grl_lambda:.4g} ({self.lambda_min}→{self.lambda_max} over {self.schedule_epochs} epochs)"
        )
