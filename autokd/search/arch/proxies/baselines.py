"""The baselines every ranking reports: parameter count and multiply-accumulates."""

from __future__ import annotations

from torch import nn

from autokd.evaluate.flops import count_macs
from autokd.models.registry import count_params
from autokd.search.arch.proxies.base import ProxyBatch, register_proxy


@register_proxy("params", higher_is_better=True, log_scale=True, paper="baseline")
def params(model: nn.Module, batch: ProxyBatch) -> float:
    """Trainable parameter count (baseline)."""
    return float(count_params(model))


@register_proxy("flops", higher_is_better=True, log_scale=True, paper="baseline")
def flops(model: nn.Module, batch: ProxyBatch) -> float:
    """Multiply-accumulates of one forward pass at batch 1 (baseline; the reports' ``flops``)."""
    return float(count_macs(model, batch.input_shape))
