"""Test-split metrics: accuracy, NLL, ECE, agreement, confusion matrix, and a model's size and speed.

``model_metrics`` is what the evaluate stage writes per model to ``reports/metrics.json``:
``accuracy``, ``nll``, ``ece``, ``params``, ``flops`` (multiply-accumulates of one batch-1
forward pass, see :mod:`autokd.evaluate.flops`), ``latency_ms`` and ``throughput`` (timed by
:mod:`autokd.evaluate.timing`).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from autokd.evaluate.flops import count_flops, count_macs
from autokd.evaluate.timing import latency_ms, throughput
from autokd.models.registry import count_params

__all__ = [
    "accuracy", "agreement", "confusion_matrix", "count_flops", "count_macs", "ece", "latency_ms",
    "model_metrics", "nll", "predict_logits", "throughput",
]


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, device: torch.device, batch_size: int = 512) -> torch.Tensor:
    model.eval().to(device)
    out = [model(x[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(out)


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    return float((logits.argmax(1) == y).double().mean())


def nll(logits: torch.Tensor, y: torch.Tensor) -> float:
    return float(F.cross_entropy(logits.double(), y))


def ece(logits: torch.Tensor, y: torch.Tensor, n_bins: int = 15) -> float:
    """Expected calibration error with ``n_bins`` equal-width confidence bins (Guo et al. 2017):
    sum_b |B_b|/N * |acc(B_b) - conf(B_b)|; bins are (lo, hi], the first includes 0."""
    probs = torch.softmax(logits.double(), dim=1)
    conf, pred = probs.max(1)
    correct = (pred == y).double()
    edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
    total = 0.0
    n = len(y)
    for b in range(n_bins):
        lo, hi = edges[b], edges[b + 1]
        mask = (conf > lo) & (conf <= hi) if b > 0 else (conf >= lo) & (conf <= hi)
        if mask.any():
            total += mask.sum().item() / n * abs(correct[mask].mean().item() - conf[mask].mean().item())
    return float(total)


def agreement(a: torch.Tensor, b: torch.Tensor) -> float:
    """Top-1 agreement between two models' predictions."""
    return float((a.argmax(1) == b.argmax(1)).double().mean())


def confusion_matrix(logits: torch.Tensor, y: torch.Tensor, num_classes: int) -> np.ndarray:
    """``cm[true, predicted]`` counts (scikit-learn's), one row and column per class even if unseen."""
    from sklearn.metrics import confusion_matrix as sk_confusion_matrix  # heavy: only when a matrix is asked for

    return sk_confusion_matrix(y.numpy(), logits.argmax(1).numpy(), labels=np.arange(num_classes))


def model_metrics(
    model: nn.Module,
    logits: torch.Tensor,
    y: torch.Tensor,
    input_shape,
    ece_bins: int = 15,
    latency_runs: int = 100,
    latency_warmup: int = 10,
    threads: int = 1,
    throughput_batch: int = 256,
) -> dict[str, float]:
    """Quality of ``logits`` against ``y`` and the model's size and CPU speed.

    ``flops`` is the multiply-accumulate count of one batch-1 forward pass (the key's
    historical name; ``FlopCounterMode``'s FLOPs / 2); ``latency_ms`` the median batch-1 CPU
    latency with ``threads`` torch threads; ``throughput`` samples/s at ``throughput_batch``."""
    return {
        "accuracy": accuracy(logits, y),
        "nll": nll(logits, y),
        "ece": ece(logits, y, ece_bins),
        "params": count_params(model),
        "flops": count_macs(model, tuple(input_shape)),
        "latency_ms": latency_ms(model, input_shape, latency_runs, latency_warmup, threads),
        "throughput": throughput(model, input_shape, throughput_batch, threads=threads),
    }
