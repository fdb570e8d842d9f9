"""Latency and throughput of a forward pass: the one timing code of the project.

The evaluate stage (:func:`autokd.evaluate.metrics.model_metrics`: ``latency_ms``,
``throughput``), the architecture search's latency constraint
(:func:`autokd.search.arch.constraints.measure_latency`) and a hyperparameter trial's
``latency_ms`` all time through :func:`forward_times`, built on
:class:`torch.utils.benchmark.Timer`:

- the model runs in eval mode under ``torch.no_grad`` on the stated device, with a
  seeded random input (the global random state is not touched); its mode and device are
  restored after;
- ``warmup`` untimed passes first, then ``runs`` timed passes of one forward each
  (``Timer.timeit(1)``, which adds its own two warm-up passes before each);
- the torch CPU thread count is ``threads`` while timing (``Timer(num_threads=…)``; the
  warm-up under :class:`torch_threads`) and restored after; ``Timer`` synchronizes an
  accelerator around each timed pass.

``latency_ms`` is the median of the timed passes (robust to a descheduled run),
``throughput`` the batch size over the fastest pass.
"""

from __future__ import annotations

import statistics

import torch
from torch import nn
from torch.utils import benchmark

from autokd.evaluate.flops import model_device

INPUT_SEED = 0


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
def forward_times(
    model: nn.Module,
    input_shape,
    runs: int,
    warmup: int = 0,
    threads: int = 1,
    batch_size: int = 1,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> list[float]:
    """Seconds of each of ``runs`` timed forward passes of a ``batch_size`` batch (``dtype``:
    ``torch.long`` for a language model: token id 0 everywhere, the cost does not depend on ids)."""
    device = torch.device(device)
    was, home = model.training, model_device(model)
    gen = torch.Generator().manual_seed(INPUT_SEED)
    x = (torch.randn(batch_size, *input_shape, generator=gen) if dtype.is_floating_point
         else torch.zeros(batch_size, *input_shape, dtype=dtype)).to(device)
    model.eval().to(device)
    try:
        with torch_threads(threads):
            for _ in range(warmup):
                model(x)
        timer = benchmark.Timer(stmt="model(x)", globals={"model": model, "x": x}, num_threads=threads,
                                description=f"forward, batch {batch_size}, {device}")
        return [timer.timeit(1).times[0] for _ in range(runs)]
    finally:
        model.to(home).train(was)


def latency_ms(
    model: nn.Module,
    input_shape,
    runs: int = 100,
    warmup: int = 10,
    threads: int = 1,
    batch_size: int = 1,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> float:
    """Median milliseconds of one forward pass (batch 1 and the CPU unless stated)."""
    return statistics.median(forward_times(model, input_shape, runs, warmup, threads, batch_size, device,
                                           dtype)) * 1000.0


def throughput(model: nn.Module, input_shape, batch_size: int = 256, repeats: int = 5, threads: int = 1) -> float:
    """Samples per second of batched CPU inference (fastest of ``repeats`` timed passes)."""
    return batch_size / min(forward_times(model, input_shape, repeats, warmup=1, threads=threads,
                                          batch_size=batch_size))
