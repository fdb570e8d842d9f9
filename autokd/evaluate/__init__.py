"""Metrics and plots of trained models."""

from autokd.evaluate.metrics import (
    accuracy,
    agreement,
    confusion_matrix,
    count_flops,
    ece,
    latency_ms,
    model_metrics,
    nll,
    predict_logits,
    throughput,
)

__all__ = [
    "accuracy",
    "agreement",
    "confusion_matrix",
    "count_flops",
    "ece",
    "latency_ms",
    "model_metrics",
    "nll",
    "predict_logits",
    "throughput",
]
