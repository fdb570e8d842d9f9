"""Learning-rate schedules and the optimizer.

Per epoch (``train.schedule_unit: epoch``, the default): cosine, step or constant with a linear
warm-up of ``warmup_epochs``; the rate is a pure function of the epoch. Per optimizer step
(``schedule_unit: step``, how LLM runs are scheduled): a linear warm-up over ``warmup_steps``,
then the schedule over the remaining steps of the whole run (``step_size`` counts steps), set
before every optimizer step; a pure function of the global step, so a run resumed mid-epoch
continues the curve exactly.
"""

from __future__ import annotations

import math

import torch

from autokd.spec.pipeline import TrainSpec


def lr_factor(cfg: TrainSpec, epoch: int) -> float:
    """Learning-rate multiplier for a 0-based epoch."""
    if cfg.warmup_epochs and epoch < cfg.warmup_epochs:
        return (epoch + 1) / (cfg.warmup_epochs + 1)
    if cfg.schedule == "constant":
        return 1.0
    if cfg.schedule == "step":
        return cfg.gamma ** ((epoch - cfg.warmup_epochs) // cfg.step_size)
    span = max(cfg.epochs - cfg.warmup_epochs, 1)
    t = (epoch - cfg.warmup_epochs) / span
    return 0.5 * (1.0 + math.cos(math.pi * t))


def make_optimizer(cfg: TrainSpec, params) -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0,
            weight_decay=cfg.weight_decay,
        )
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def step_lr_factor(cfg: TrainSpec, step: int, total_steps: int) -> float:
    """Learning-rate multiplier before optimizer step ``step`` (0-based) of ``total_steps``."""
    warm = cfg.warmup_steps
    if warm and step < warm:
        return (step + 1) / (warm + 1)
    if cfg.schedule == "constant":
        return 1.0
    if cfg.schedule == "step":
        return cfg.gamma ** ((step - warm) // cfg.step_size)
    t = (step - warm) / max(total_steps - warm, 1)
    return 0.5 * (1.0 + math.cos(math.pi * t))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
