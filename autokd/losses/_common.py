"""Small tensor helpers shared by the loss families (torch only)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict
from torch import Tensor

class NoParams(BaseModel):
    """Parameter model of a method without parameters."""

    model_config = ConfigDict(extra="forbid")


TEMPERATURE_DESC = "softmax temperature T (logits are divided by T; the loss is scaled by T²)"


def search_range(low: float, high: float, *, log: bool = False) -> dict:
    """A parameter's search hint (``Field(json_schema_extra=search_range(…))``): the range the
    tuned method comparison searches it in (:meth:`autokd.losses.registry.LossSpec.search_space`).
    A parameter without one keeps its value when a method is tuned."""
    return {"search": {"low": low, "high": high, "log": log}}


#: The temperature range every method with a temperature is tuned over.
TEMPERATURE_SEARCH = search_range(1.0, 16.0, log=True)


def check_logits(name: str, student: Tensor, teacher: Tensor | None, targets: Tensor | None = None) -> None:
    """Raise ``ValueError`` unless logits are ``(B, K)`` (teacher the same shape) and targets ``(B,)``."""
    if student.dim() != 2:
        raise ValueError(f"{name}: student logits must be 2-D (batch, classes), got shape {tuple(student.shape)}")
    if teacher is not None and teacher.shape != student.shape:
        raise ValueError(
            f"{name}: teacher logits shape {tuple(teacher.shape)} != student logits shape {tuple(student.shape)}"
        )
    if targets is not None:
        if targets.dim() != 1 or targets.shape[0] != student.shape[0]:
            raise ValueError(
                f"{name}: targets must be 1-D class indices of length {student.shape[0]}, "
                f"got shape {tuple(targets.shape)}"
            )


def check_batch(name: str, student: Tensor, teacher: Tensor, same_shape: bool) -> None:
    """Raise ``ValueError`` unless the two feature tensors share the batch size (and shape, if asked)."""
    if student.dim() < 1 or teacher.dim() < 1 or student.shape[0] != teacher.shape[0]:
        raise ValueError(
            f"{name}: student and teacher features must share the batch dimension, "
            f"got {tuple(student.shape)} and {tuple(teacher.shape)}"
        )
    if same_shape and student.shape != teacher.shape:
        raise ValueError(
            f"{name}: student feature shape {tuple(student.shape)} != teacher feature shape "
            f"{tuple(teacher.shape)}; the pipeline must adapt the student feature first"
        )


def kl_per_sample(log_p_teacher: Tensor, log_p_student: Tensor) -> Tensor:
    """``KL(p_t ‖ p_s)`` per row, from log-probabilities over the last dim (returns shape ``(B,)``)."""
    return F.kl_div(log_p_student, log_p_teacher, reduction="none", log_target=True).sum(-1)


def masked_log_softmax(x: Tensor, mask: Tensor) -> Tensor:
    """Log-softmax over the entries of each row where ``mask`` is True, renormalised exactly.

    Entries outside the mask are returned as 0 (not -inf), so products with the masked
    probabilities stay finite and their gradients are not NaN.
    """
    lse = torch.logsumexp(x.masked_fill(~mask, float("-inf")), dim=-1, keepdim=True)
    return torch.where(mask, x - lse, torch.zeros_like(x))


def masked_kl(log_q_teacher: Tensor, log_q_student: Tensor, mask: Tensor) -> Tensor:
    """``Σ_{k ∈ mask} q_t,k (log q_t,k − log q_s,k)`` per row, for outputs of :func:`masked_log_softmax`."""
    terms = log_q_teacher.exp() * (log_q_teacher - log_q_student)
    return torch.where(mask, terms, torch.zeros_like(terms)).sum(-1)
