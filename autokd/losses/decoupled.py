"""Decoupled logit distillation: the KL split over a partition of the classes (``dkd``, ``cakd``).

Both methods rest on the chain rule of the KL divergence. For a partition of the classes into a
set S and its complement W, with teacher masses p_S, p_W and the distributions renormalised
within each set (written p̂)::

    KL(p_t ‖ p_s) = KL([p_S, p_W]_t ‖ [p_S, p_W]_s) + p_S^t · KL(p̂_t|S ‖ p̂_s|S) + p_W^t · KL(p̂_t|W ‖ p̂_s|W)

DKD takes S = {target}; CAKD takes S = the target plus the teacher's strongest other classes.
Both expose ``components(student_logits, teacher_logits, targets)`` with the per-sample terms.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from ._common import (TEMPERATURE_DESC, TEMPERATURE_SEARCH, check_logits, kl_per_sample, masked_kl, masked_log_softmax,
                      search_range)
from .registry import register


def partition_kl(student_logits: Tensor, teacher_logits: Tensor, strong: Tensor, temperature: float) -> dict[str, Tensor]:
    """Per-sample parts of ``KL(p_t ‖ p_s)`` at temperature T for the class partition (S, W).

    ``strong`` is a boolean ``(B, K)`` mask of S; W is its complement (both must be non-empty
    in every row for the within-set terms to be defined). Returns ``(B,)`` tensors:
    ``bcd`` (binary KL over the set masses), ``scd`` (KL within S), ``wcd`` (KL within W),
    ``p_strong`` / ``p_weak`` (teacher masses of S / W) and ``kl`` (the full KL); no T² factor.
    """
    weak = ~strong
    zs = student_logits / temperature
    zt = teacher_logits / temperature
    log_p_s = F.log_softmax(zs, dim=1)
    log_p_t = F.log_softmax(zt, dim=1)
    neg_inf = float("-inf")
    # log of the probability mass of each set (exact, no 1 - p cancellation)
    log_S_s = torch.logsumexp(log_p_s.masked_fill(weak, neg_inf), dim=1)
    log_W_s = torch.logsumexp(log_p_s.masked_fill(strong, neg_inf), dim=1)
    log_S_t = torch.logsumexp(log_p_t.masked_fill(weak, neg_inf), dim=1)
    log_W_t = torch.logsumexp(log_p_t.masked_fill(strong, neg_inf), dim=1)
    p_S_t, p_W_t = log_S_t.exp(), log_W_t.exp()
    bcd = p_S_t * (log_S_t - log_S_s) + p_W_t * (log_W_t - log_W_s)
    scd = masked_kl(masked_log_softmax(zt, strong), masked_log_softmax(zs, strong), strong)
    wcd = masked_kl(masked_log_softmax(zt, weak), masked_log_softmax(zs, weak), weak)
    return {
        "bcd": bcd,
        "scd": scd,
        "wcd": wcd,
        "p_strong": p_S_t,
        "p_weak": p_W_t,
        "kl": kl_per_sample(log_p_t, log_p_s),
    }


def _target_mask(logits: Tensor, targets: Tensor) -> Tensor:
    return torch.zeros_like(logits, dtype=torch.bool).scatter_(1, targets.long().reshape(-1, 1), True)


# ----------------------------------------------------------------------------- DKD


class DKDParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(4.0, gt=0, allow_inf_nan=False, description=TEMPERATURE_DESC,
                               json_schema_extra=TEMPERATURE_SEARCH)
    alpha: float = Field(1.0, ge=0, allow_inf_nan=False, description="weight α of the target-class term TCKD",
                         json_schema_extra=search_range(0.25, 4.0, log=True))
    beta: float = Field(8.0, ge=0, allow_inf_nan=False, description="weight β of the non-target-class term NCKD",
                        json_schema_extra=search_range(1.0, 16.0, log=True))
    warmup_epochs: int = Field(
        20, ge=0, description="epochs over which the loss weight ramps linearly up to 1 (0 = no warm-up)"
    )


@register(
    "dkd",
    kind="logit",
    paper="Zhao, Cui, Song, Qiu & Liang. Decoupled Knowledge Distillation. CVPR 2022 (arXiv:2203.08679)",
    params=DKDParams,
)
class DKDLoss(nn.Module):
    """Decoupled KD: α·TCKD + β·NCKD at temperature T, times T² and a linear warm-up factor.

    Formula (per sample b, target y, p = softmax(z / T), p̂ = softmax over the classes ≠ y)::

        TCKD_b = KL([p_y, 1 − p_y]_t ‖ [p_y, 1 − p_y]_s)
        NCKD_b = KL(p̂_t ‖ p̂_s)
        L = w(epoch) · T² · (α · mean_b TCKD_b + β · mean_b NCKD_b)
        KL(p_t ‖ p_s) = TCKD + (1 − p_t,y) · NCKD          (exact identity, see ``components``)

    Reference-code choices (megvii-research/mdistiller ``DKD``): batch-mean reduction, T² on both
    terms, and the warm-up ``w = min(epoch / warmup_epochs, 1)`` where mdistiller counts epochs
    from 1. ``on_epoch_start`` receives the 0-based epoch e, so here ``w = min((e + 1) /
    warmup_epochs, 1)`` — the same factor the authors apply in their e-th epoch. Before any
    ``on_epoch_start`` call (e.g. standalone use) ``w = 1``; ``warmup_epochs = 0`` also gives 1.
    NCKD excludes the target class exactly (masked log-sum-exp) where mdistiller subtracts
    1000 from the target logit; the two agree up to floating-point underflow.
    """

    def __init__(self, temperature: float = 4.0, alpha: float = 1.0, beta: float = 8.0, warmup_epochs: int = 20):
        super().__init__()
        self.temperature = float(temperature)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.warmup_epochs = int(warmup_epochs)
        self.epoch: int | None = None

    def on_epoch_start(self, epoch: int, total_epochs: int) -> None:
        """Record the (0-based) epoch for the warm-up factor."""
        self.epoch = int(epoch)

    @property
    def warmup_factor(self) -> float:
        """``min((epoch + 1) / warmup_epochs, 1)``; 1 before any ``on_epoch_start`` call."""
        if self.epoch is None or self.warmup_epochs <= 0:
            return 1.0
        return min((self.epoch + 1) / self.warmup_epochs, 1.0)

    def components(self, student_logits: Tensor, teacher_logits: Tensor, targets: Tensor) -> dict[str, Tensor]:
        """Per-sample ``tckd``, ``nckd``, ``kl`` and ``p_target_t`` at temperature T, without T²."""
        check_logits("dkd", student_logits, teacher_logits, targets)
        parts = partition_kl(
            student_logits, teacher_logits.detach(), _target_mask(student_logits, targets), self.temperature
        )
        return {"tckd": parts["bcd"], "nckd": parts["wcd"], "kl": parts["kl"], "p_target_t": parts["p_strong"]}

    def forward(self, student_logits: Tensor, teacher_logits: Tensor, targets: Tensor) -> Tensor:
        c = self.components(student_logits, teacher_logits, targets)
        loss = self.alpha * c["tckd"].mean() + self.beta * c["nckd"].mean()
        return self.warmup_factor * self.temperature**2 * loss

    def extra_repr(self) -> str:
        return (
            f"temperature={self.temperature}, alpha={self.alpha}, beta={self.beta}, "
            f"warmup_epochs={self.warmup_epochs}"
        )


# ----------------------------------------------------------------------------- CAKD


class CAKDParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(4.0, gt=0, allow_inf_nan=False, description=TEMPERATURE_DESC,
                               json_schema_extra=TEMPERATURE_SEARCH)
    bcd_weight: float = Field(
        1.0, ge=0, allow_inf_nan=False, description="weight of the binary (strong vs weak mass) divergence BCD",
        json_schema_extra=search_range(0.25, 4.0, log=True),
    )
    scd_weight: float = Field(
        1.0, ge=0, allow_inf_nan=False, description="weight of the within-strong-set divergence p_S·SCD",
        json_schema_extra=search_range(0.25, 4.0, log=True),
    )
    wcd_weight: float = Field(
        1.0, ge=0, allow_inf_nan=False, description="weight of the within-weak-set divergence p_W·WCD",
        json_schema_extra=search_range(0.25, 4.0, log=True),
    )
    strong_k: int = Field(
        3, ge=1, description="size of the strong set: the target plus the teacher's top (strong_k − 1) other classes",
        json_schema_extra=search_range(2, 5),
    )


@register(
    "cakd",
    kind="logit",
    paper=(
        "Zhang, Chen, Ning, Yang & Yuan. CAKD: A Correlation-Aware Knowledge Distillation Framework Based "
        "on Decoupling Kullback-Leibler Divergence. arXiv:2410.14741, 2024"
    ),
    params=CAKDParams,
)
class CAKDLoss(nn.Module):
    """Correlation-aware KD: the KL split into strong/weak-set parts, each weighted separately.

    Strong set (per sample, target y)::

        S = {y} ∪ top_(strong_k − 1) of the teacher logits over the classes ≠ y,   W = the rest

    i.e. the target is always in S and the teacher's highest-ranked non-target classes fill the
    remaining strong_k − 1 places; when the target is itself among the teacher's top classes,
    the next-ranked class takes its place, so |S| = strong_k exactly (ties broken by
    ``torch.topk``). Requires strong_k < number of classes so that W is non-empty.

    Formula (p = softmax(z / T), p̂ renormalised within a set, p_S^t, p_W^t teacher masses)::

        BCD = KL([p_S, p_W]_t ‖ [p_S, p_W]_s)
        SCD = KL(p̂_t|S ‖ p̂_s|S),   WCD = KL(p̂_t|W ‖ p̂_s|W)
        KL(p_t ‖ p_s) = BCD + p_S^t · SCD + p_W^t · WCD       (exact, per sample)
        L = T² · mean_b(bcd_weight · BCD + scd_weight · p_S^t · SCD + wcd_weight · p_W^t · WCD)

    With all three weights 1 the loss equals ``kd`` at the same temperature; with strong_k = 1,
    BCD and WCD are DKD's TCKD and NCKD (SCD = 0). The paper names the three parts (binary,
    strong-correlation and weak-correlation divergences) but no reference code was available to
    us; the strong-set rule above, the teacher-mass weighting that makes the decomposition exact,
    the batch-mean reduction and the T² factor (as in the KD/DKD code of mdistiller) are our
    choices.
    """

    def __init__(
        self,
        temperature: float = 4.0,
        bcd_weight: float = 1.0,
        scd_weight: float = 1.0,
        wcd_weight: float = 1.0,
        strong_k: int = 3,
    ):
        super().__init__()
        self.temperature = float(temperature)
        self.bcd_weight = float(bcd_weight)
        self.scd_weight = float(scd_weight)
        self.wcd_weight = float(wcd_weight)
        self.strong_k = int(strong_k)

    def strong_mask(self, teacher_logits: Tensor, targets: Tensor) -> Tensor:
        """Boolean ``(B, K)`` mask of the strong set S (see the class docstring)."""
        num_classes = teacher_logits.shape[1]
        if self.strong_k >= num_classes:
            raise ValueError(
                f"cakd: strong_k={self.strong_k} must be smaller than the number of classes ({num_classes})"
            )
        mask = _target_mask(teacher_logits, targets)
        if self.strong_k > 1:
            others = teacher_logits.detach().masked_fill(mask, float("-inf"))
            top = others.topk(self.strong_k - 1, dim=1).indices
            mask = mask.scatter(1, top, True)
        return mask

    def components(self, student_logits: Tensor, teacher_logits: Tensor, targets: Tensor) -> dict[str, Tensor]:
        """Per-sample ``bcd``, ``scd``, ``wcd``, ``p_strong``, ``p_weak``, ``kl`` at temperature T, without T²."""
        check_logits("cakd", student_logits, teacher_logits, targets)
        teacher_logits = teacher_logits.detach()
        return partition_kl(student_logits, teacher_logits, self.strong_mask(teacher_logits, targets), self.temperature)

    def forward(self, student_logits: Tensor, teacher_logits: Tensor, targets: Tensor) -> Tensor:
        c = self.components(student_logits, teacher_logits, targets)
        per_sample = (
            self.bcd_weight * c["bcd"]
            + self.scd_weight * c["p_strong"] * c["scd"]
            + self.wcd_weight * c["p_weak"] * c["wcd"]
        )
        return self.temperature**2 * per_sample.mean()

    def extra_repr(self) -> str:
        return (
            f"temperature={self.temperature}, bcd_weight={self.bcd_weight}, scd_weight={self.scd_weight}, "
            f"wcd_weight={self.wcd_weight}, strong_k={self.strong_k}"
        )
