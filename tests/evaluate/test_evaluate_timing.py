"""The one timing function: thread count, mode and device restored, no gradients, no global random draw."""

from __future__ import annotations

import torch
from torch import nn

from autokd.evaluate.timing import forward_times, latency_ms, throughput


class Probe(nn.Module):
    """Records, on every forward, the torch thread count, grad mode and train mode."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8, 4)
        self.calls: list[tuple[int, bool, bool]] = []

    def forward(self, x):
        self.calls.append((torch.get_num_threads(), torch.is_grad_enabled(), self.training))
        return self.lin(x)


def test_forward_times_runs_as_stated_and_restores_everything():
    model = Probe().train()
    threads = torch.get_num_threads()
    rng = torch.get_rng_state()
    times = forward_times(model, (8,), runs=4, warmup=3, threads=2, batch_size=5)
    assert len(times) == 4 and all(t > 0 for t in times)
    assert len(model.calls) >= 3 + 4  # warm-up and timed passes (Timer adds its own warm-up)
    assert all(c == (2, False, False) for c in model.calls)  # 2 threads, no grad, eval mode
    assert torch.get_num_threads() == threads and model.training
    assert torch.equal(torch.get_rng_state(), rng)  # the input is drawn from a private generator


def test_latency_and_throughput_are_positive():
    model = Probe()
    assert latency_ms(model, (8,), runs=3, warmup=1) > 0
    assert throughput(model, (8,), batch_size=16, repeats=2) > 0
