"""Sequence-level distillation data: the teacher's continuations of training prompts, and the
student's own samples for on-policy batches.

A window of ``T + 1`` tokens keeps its first ``prompt_tokens`` as the prompt; the rest is
replaced by a continuation, so inputs ``w[:, :-1]`` and targets ``w[:, 1:]`` keep their shapes,
and :func:`continuation_mask` marks the target positions that are generated
(``j ≥ prompt_tokens − 1``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import safe_open
from torch import nn

from autokd.utils.io import save_safetensors

GENERATIONS_NAME = "train_generated.safetensors"


def continuation_mask(batch: int, length: int, prompt_tokens: int, device=None) -> torch.Tensor:
    """``(batch, length)`` booleans: the target positions that predict a generated token."""
    mask = torch.zeros(batch, length, dtype=torch.bool, device=device)
    mask[:, prompt_tokens - 1:] = True
    return mask


@torch.no_grad()
def continue_windows(model: nn.Module, inputs: torch.Tensor, prompt_tokens: int, *, temperature: float = 0.0,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """``(N, T + 1)`` windows: each row's first ``prompt_tokens`` of ``inputs`` ``(N, T)``, then the
    model's continuation (greedy at temperature 0, else sampled) up to ``T + 1`` tokens."""
    length = inputs.shape[1]
    return model.generate(inputs[:, :prompt_tokens], length + 1 - prompt_tokens, temperature=temperature,
                          generator=generator)


@torch.no_grad()
def teacher_generations(teacher: nn.Module, inputs: torch.Tensor, prompt_tokens: int, temperature: float,
                        seed: int, device: torch.device, batch_size: int = 64) -> torch.Tensor:
    """The teacher's continuation of every training window (``temperature`` 0: greedy), seeded."""
    teacher.eval().to(device)
    gen = torch.Generator(device=device).manual_seed(seed) if temperature > 0 else None
    out = [continue_windows(teacher, inputs[i:i + batch_size].to(device), prompt_tokens, temperature=temperature,
                            generator=gen).cpu() for i in range(0, len(inputs), batch_size)]
    return torch.cat(out).to(torch.int32)


def save_generations(path: str | Path, windows: torch.Tensor, meta: dict[str, str]) -> None:
    save_safetensors(path, {"windows": windows}, metadata=meta)


def load_generations(path: str | Path) -> tuple[torch.Tensor, dict[str, str]]:
    with safe_open(str(path), framework="pt") as fh:
        return fh.get_tensor("windows").long(), dict(fh.metadata())
