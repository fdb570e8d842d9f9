"""How many rows of a split one forward pass may take, so that its logits fit a memory budget.

A language model's validation and evaluation logits are ``(rows, positions, vocabulary)``: 512
windows of GPT-2 (context 1,024, vocabulary 50,257) are ~98 GiB of fp32. :func:`rows_per_pass`
caps the rows so that ``rows x positions x vocabulary`` stays within :data:`LOGITS_BUDGET`
elements (256 MiB of fp32), never above the caller's own batch size. The shipped LM pipeline
(512 x 128 x 1,024) fits the budget exactly, so its passes, and its sums, are unchanged; a
classifier's ``(rows, classes)`` logits are not capped.
"""

from __future__ import annotations

import torch
from torch import nn

#: elements of one pass's logits (fp32: 256 MiB); the same for validation and evaluation
LOGITS_BUDGET = 512 * 128 * 1024


@torch.no_grad()
def rows_per_pass(model: nn.Module, x: torch.Tensor, device: torch.device, cap: int,
                  budget: int | None = None) -> int:
    """At most ``cap`` rows of ``x`` per forward; for token inputs ``(N, T)`` (integers) also
    at most ``budget // (T x V)``, ``V`` read from one probe row's logits (the probe's output
    is discarded, so the passes that count are the same whatever the probe saw)."""
    if len(x) == 0 or x.dim() != 2 or x.is_floating_point():
        return cap
    budget = LOGITS_BUDGET if budget is None else budget
    logits = model(x[:1].to(device))
    per_row = logits[0].numel()  # T x V
    return max(1, min(cap, budget // max(1, per_row)))
