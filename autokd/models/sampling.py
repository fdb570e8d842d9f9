"""Autoregressive generation shared by the language-model families (plain decoder, Hugging Face).

:func:`generate` runs a model's own incremental step — ``start(prompt) -> (logits, state)`` and
``step(token, state) -> (logits, state)``, the state being its KV cache — and picks each next
token with :func:`next_token`: greedy at temperature 0, else sampled from
softmax(logits / temperature), restricted to the ``top_k`` most likely tokens when ``top_k`` > 0,
from ``generator`` (seeded sampling gives the same text on every run).
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor, nn


def next_token(logits: Tensor, temperature: float = 0.0, top_k: int = 0,
               generator: torch.Generator | None = None) -> Tensor:
    """``(B, 1)`` next tokens from the last position's ``(B, V)`` logits."""
    if temperature <= 0:
        return logits.argmax(-1, keepdim=True)
    logits = logits / temperature
    if top_k > 0:
        kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return torch.multinomial(logits.softmax(-1), 1, generator=generator)


@torch.no_grad()
def generate(model: nn.Module, prompt: Tensor, max_new_tokens: int,
             start: Callable[[Tensor], tuple[Tensor, Any]], step: Callable[[Tensor, Any], tuple[Tensor, Any]],
             full: Callable[[Tensor, Any], bool], *, temperature: float = 0.0, top_k: int = 0,
             generator: torch.Generator | None = None) -> Tensor:
    """``prompt`` ``(B, P)`` followed by up to ``max_new_tokens`` tokens; stops early when
    ``full(out, state)`` says the model's context has no room for another step. The model is in
    eval mode meanwhile and gets its training mode back."""
    was_training = model.training
    model.eval()
    try:
        out = prompt
        logits, state = start(prompt)
        for _ in range(max_new_tokens):
            token = next_token(logits[:, -1], temperature, top_k, generator)
            out = torch.cat([out, token], dim=1)
            if full(out, state):
                break
            logits, state = step(token, state)
        return out
    finally:
        model.train(was_training)
