"""Constraints applied before scoring: max params, max FLOPs, max latency.

Checks run cheapest first (params, then FLOPs at the space's input size, then latency) and
stop at the first budget exceeded, so an over-budget candidate is never scored. ``flops`` /
``max_flops`` are multiply-accumulates of one batch-1 forward pass
(:func:`autokd.evaluate.flops.count_macs`). Latency is the median wall time of ``runs``
forward passes at the stated device, batch size and torch thread count
(:func:`autokd.evaluate.timing.latency_ms`, the evaluate stage's own timing), measured on the
machine running the search (recorded in the ranking).
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field

import torch
from torch import nn

from autokd.evaluate.flops import count_macs
from autokd.evaluate.timing import latency_ms
from autokd.models.registry import count_params
from autokd.search.arch.space import ConstraintSpec, LatencySpec


@dataclass
class Measurement:
    """A candidate's size and speed: ``flops`` is its multiply-accumulate count (batch 1)."""

    params: int
    flops: int | None = None
    latency_ms: float | None = None


@dataclass
class Verdict:
    admitted: bool
    measurement: Measurement
    reasons: list[str] = field(default_factory=list)

    @property
    def reason(self) -> str | None:
        return "; ".join(self.reasons) or None


def measure_latency(model: nn.Module, input_shape: tuple[int, ...], spec: LatencySpec,
                    dtype: torch.dtype = torch.float32) -> float:
    """Median milliseconds of one forward pass of a ``spec.batch_size`` batch (eval mode)."""
    if spec.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("constraints.latency.device is 'cuda' but CUDA is not available on this machine")
    return latency_ms(model, tuple(input_shape), runs=spec.runs, warmup=spec.warmup, threads=spec.threads,
                      batch_size=spec.batch_size, device=spec.device, dtype=dtype)


def check(model: nn.Module, input_shape: tuple[int, ...], spec: ConstraintSpec, measure_all: bool = True,
          dtype: torch.dtype = torch.float32) -> Verdict:
    """Measure ``model`` and check it against every budget of ``spec``.

    Stops measuring at the first exceeded budget; with ``measure_all`` an admitted model
    also gets its FLOPs and latency measured when no budget needs them (rankings report both).
    ``dtype`` is the input's (``torch.long``: a language model's token ids, a full context window).
    """
    m = Measurement(params=count_params(model))
    reasons: list[str] = []
    if spec.max_params is not None and m.params > spec.max_params:
        reasons.append(f"params {m.params} > max_params {spec.max_params}")
        return Verdict(False, m, reasons)
    if spec.max_flops is not None or measure_all:
        m.flops = count_macs(model, tuple(input_shape), dtype=dtype)
        if spec.max_flops is not None and m.flops > spec.max_flops:
            reasons.append(f"flops {m.flops} > max_flops {spec.max_flops}")
            return Verdict(False, m, reasons)
    if spec.max_latency_ms is not None or measure_all:
        m.latency_ms = measure_latency(model, tuple(input_shape), spec.latency, dtype)
        if spec.max_latency_ms is not None and m.latency_ms > spec.max_latency_ms:
            reasons.append(f"latency {m.latency_ms:.3f} ms > max_latency_ms {spec.max_latency_ms:g}")
            return Verdict(False, m, reasons)
    return Verdict(True, m, reasons)


def latency_setup(spec: LatencySpec) -> dict:
    """The stated latency conditions and the machine they were measured on."""
    info = spec.model_dump()
    info.update(machine=platform.machine(), processor=platform.processor() or platform.machine(),
                cpu_count=os.cpu_count(), torch=torch.__version__)
    if spec.device == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info
