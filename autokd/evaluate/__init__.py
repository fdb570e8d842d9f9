"""Metrics and plots of trained models.

:mod:`.metrics` (accuracy, NLL, ECE, agreement, confusion matrix, ``model_metrics``),
:mod:`.flops` (multiply-accumulates via ``FlopCounterMode``), :mod:`.timing` (latency and
throughput via ``torch.utils.benchmark.Timer``), :mod:`.plots`.
"""

from autokd.evaluate.flops import count_flops, count_macs
from autokd.evaluate.metrics import accuracy, agreement, confusion_matrix, ece, model_metrics, nll, predict_logits
from autokd.evaluate.timing import forward_times, latency_ms, throughput, torch_threads

__all__ = [
    "accuracy",
    "agreement",
    "confusion_matrix",
    "count_flops",
    "count_macs",
    "ece",
    "forward_times",
    "latency_ms",
    "model_metrics",
    "nll",
    "predict_logits",
    "throughput",
    "torch_threads",
]
