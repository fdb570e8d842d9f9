"""Test-split metrics: accuracy, NLL, ECE, agreement, params, FLOPs, latency, throughput."""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from autokd.models.registry import count_params


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
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (y.numpy(), logits.argmax(1).numpy()), 1)
    return cm


def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one forward pass (conv and linear layers), batch 1."""
    total = 0

    def conv_hook(m: nn.Conv2d, inp, out):
        nonlocal total
        k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
        total += int(out.numel() * k)

    def linear_hook(m: nn.Linear, inp, out):
        nonlocal total
        total += int(out.numel() * m.in_features)

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, device=next(model.parameters()).device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was)
    return total


class torch_threads:  # noqa: N801 (used as a context manager)
    """Run a block with ``n`` torch CPU threads, restoring the previous count after."""

    def __init__(self, n: int):
        self.n = n

    def __enter__(self):
        self.old = torch.get_num_threads()
        torch.set_num_threads(self.n)

    def __exit__(self, *exc):
        torch.set_num_threads(self.old)


@torch.no_grad()
def latency_ms(model: nn.Module, input_shape, runs: int = 100, warmup: int = 10, threads: int = 1) -> float:
    """Median wall time of a batch-1 forward pass on the CPU, in milliseconds."""
    model = model.eval().cpu()
    x = torch.randn(1, *input_shape)
    with torch_threads(threads):
        for _ in range(warmup):
            model(x)
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000.0


@torch.no_grad()
def throughput(model: nn.Module, input_shape, batch_size: int = 256, repeats: int = 5, threads: int = 1) -> float:
    """Samples per second of batched CPU inference (best of ``repeats``)."""
    model = model.eval().cpu()
    x = torch.randn(batch_size, *input_shape)
    with torch_threads(threads):
        model(x)
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(x)
            best = min(best, time.perf_counter() - t0)
    return batch_size / best


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
    return {
        "accuracy": accuracy(logits, y),
        "nll": nll(logits, y),
        "ece": ece(logits, y, ece_bins),
        "params": count_params(model),
        "flops": count_flops(model, tuple(input_shape)),
        "latency_ms": latency_ms(model, input_shape, latency_runs, latency_warmup, threads),
        "throughput": throughput(model, input_shape, throughput_batch, threads=threads),
    }
