"""Decoder-only transformer language models (``decoder``), in plain torch.

A GPT-style stack: token + learned position embeddings, ``layers`` pre-LayerNorm blocks
(causal multi-head self-attention, then an MLP of ``mlp_ratio × width``), a final LayerNorm and
a vocabulary head (tied to the token embedding with ``tied_embeddings``). ``forward(idx)`` maps token ids
``(B, T)`` to next-token logits ``(B, T, V)``; ``forward(idx, segments=s)`` runs packed windows
(:mod:`autokd.models.segments`: positions restart and attention stays within each example).

Initialisation: linear layers N(0, 0.02), residual projections scaled by 1/√(2·layers) (GPT-2);
embeddings N(0, 1) (PyTorch's default) unless tied to the head, where they stay N(0, 0.02). On
pydoc_data at d = 128 the unit-variance embeddings reached a training loss of 4.55 after 100
steps where GPT-2's 0.02 gave 5.37 (the same seed and batches).

Registered with ``task="lm"``: the registry's ``input_shape`` is ``(context,)`` and
``num_classes`` the vocabulary size.

Features for representation transfer:

* aliases (``forward(idx, return_features=True)``): ``embed`` (the summed embeddings) and
  ``block0`` … ``block{L-1}`` (each block's output hidden states ``(B, T, width)``);
* module paths for forward hooks: ``blocks.{i}.attn.q`` / ``.k`` / ``.v`` receive the per-head
  queries, keys and values ``(B, heads, T, head_dim)`` (MiniLM relations), and
  ``blocks.{i}.attn.probs`` the attention probabilities ``(B, heads, T, T)``, computed
  explicitly only while a forward hook is registered on that module or ``attn.keep_probs`` is
  set (otherwise the fused ``scaled_dot_product_attention`` runs and ``probs`` is not called);
* ``layers``: every layer's hidden states stacked, ``(B, layers + 1, T, width)`` (embeddings
  first), for the layer-transforming relation (``ckd_ltr``).

Generation keeps a per-block key/value cache, so each new token costs one position's work
(:meth:`DecoderLM.generate`; greedy or sampled with temperature and top-k, from a seeded
``torch.Generator``).
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor, nn

from autokd.models.registry import ModelBuildError, register_model
from autokd.models.segments import segment_mask, segment_positions

KVCache = list[tuple[Tensor, Tensor]]


class DecoderParams(BaseModel):
    """Shape of a decoder-only transformer."""

    model_config = ConfigDict(extra="forbid")
    layers: int = Field(2, ge=1, description="number of transformer blocks")
    width: int = Field(128, ge=8, description="model width d (embedding and hidden size)")
    heads: int = Field(4, ge=1, description="attention heads (must divide width)")
    mlp_ratio: float = Field(4.0, gt=0, allow_inf_nan=False, description="MLP hidden size as a multiple of width")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout on embeddings, attention output and MLP")
    tied_embeddings: bool = Field(False, description="the vocabulary head shares the token embedding's weights "
                                  "(off by default: untied, with unit-variance embeddings, learned faster here)")

    @model_validator(mode="after")
    def _heads_divide_width(self) -> "DecoderParams":
        if self.width % self.heads:
            raise ValueError(f"heads ({self.heads}) must divide width ({self.width})")
        return self


class CausalSelfAttention(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.head_dim = heads, width // heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.drop = nn.Dropout(dropout)
        # identity taps: forward hooks on these module paths see q, k, v and the probabilities
        self.q, self.k, self.v, self.probs = nn.Identity(), nn.Identity(), nn.Identity(), nn.Identity()
        self.keep_probs = False

    def forward(self, x: Tensor, cache: tuple[Tensor, Tensor] | None = None,
                mask: Tensor | None = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """``mask`` ``(B, 1, T, T)``: packed windows' attention (:func:`autokd.models.segments.segment_mask`)."""
        b, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=-1)
        q, k, v = (z.view(b, t, self.heads, self.head_dim).transpose(1, 2) for z in (q, k, v))
        q, k, v = self.q(q), self.k(k), self.v(v)
        if cache is not None:
            k = torch.cat([cache[0], k], dim=2)
            v = torch.cat([cache[1], v], dim=2)
        past = k.shape[2] - t
        if mask is not None and past:
            raise ValueError("decoder: packed segments are for whole windows, not for cached generation")
        if self.keep_probs or self.probs._forward_hooks:  # explicit when asked for, or when a hook reads them
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)
            allowed = torch.ones(t, k.shape[2], dtype=torch.bool, device=x.device).tril(diagonal=past)
            allowed = allowed if mask is None else mask
            probs = self.probs(scores.masked_fill(~allowed, float("-inf")).softmax(dim=-1))
            y = probs @ v
        elif mask is not None:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        elif past == 0:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:  # new positions attend to everything cached and causally among themselves
            allowed = torch.ones(t, k.shape[2], dtype=torch.bool, device=x.device).tril(diagonal=past)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        y = y.transpose(1, 2).reshape(b, t, d)
        return self.drop(self.out(y)), (k, v)


class Block(nn.Module):
    def __init__(self, p: DecoderParams):
        super().__init__()
        hidden = max(1, int(round(p.mlp_ratio * p.width)))
        self.ln1 = nn.LayerNorm(p.width)
        self.attn = CausalSelfAttention(p.width, p.heads, p.dropout)
        self.ln2 = nn.LayerNorm(p.width)
        self.mlp = nn.Sequential(nn.Linear(p.width, hidden), nn.GELU(), nn.Linear(hidden, p.width), nn.Dropout(p.dropout))

    def forward(self, x: Tensor, cache: tuple[Tensor, Tensor] | None = None,
                mask: Tensor | None = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        a, new_cache = self.attn(self.ln1(x), cache, mask)
        x = x + a
        return x + self.mlp(self.ln2(x)), new_cache


class DecoderLM(nn.Module):
    """Decoder-only transformer LM: ids ``(B, T)`` -> logits ``(B, T, V)``; features ``embed``, ``block{i}``."""

    def __init__(self, vocab_size: int, context: int, p: DecoderParams):
        super().__init__()
        self.vocab_size, self.context, self.params_spec = int(vocab_size), int(context), p
        self.tok = nn.Embedding(vocab_size, p.width)
        self.pos = nn.Embedding(context, p.width)
        self.drop = nn.Dropout(p.dropout)
        self.blocks = nn.ModuleList(Block(p) for _ in range(p.layers))
        self.ln_f = nn.LayerNorm(p.width)
        self.head = nn.Linear(p.width, vocab_size, bias=False)
        self.apply(self._init)
        if p.tied_embeddings:
            self.head.weight = self.tok.weight
        else:  # untied: unit-variance embeddings (PyTorch's default) learned much faster here than std 0.02
            nn.init.normal_(self.tok.weight, std=1.0)
            nn.init.normal_(self.pos.weight, std=1.0)
        for name, param in self.named_parameters():  # GPT-2: residual projections scaled by depth
            if name.endswith(("attn.out.weight", "mlp.2.weight")):
                nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * p.layers))

    @property
    def num_layers(self) -> int:
        return len(self.blocks)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def run(self, idx: Tensor, cache: KVCache | None = None, segments: Tensor | None = None
            ) -> tuple[Tensor, KVCache, "OrderedDict[str, Tensor]"]:
        """Logits, the updated key/value cache and the feature aliases for ids ``idx`` that follow
        the ``cache``'s positions; ``segments`` (packed windows): positions and attention per example."""
        if idx.dim() != 2:
            raise ValueError(f"decoder: token ids must be (batch, seq), got shape {tuple(idx.shape)}")
        start = cache[0][0].shape[2] if cache else 0
        t = idx.shape[1]
        if start + t > self.context:
            raise ValueError(f"decoder: {start + t} positions exceed the context of {self.context}")
        mask = None
        if segments is not None:
            pos, mask = segment_positions(segments), segment_mask(segments)
        else:
            pos = torch.arange(start, start + t, device=idx.device)
        x = self.drop(self.tok(idx) + self.pos(pos))
        feats: OrderedDict[str, Tensor] = OrderedDict(embed=x)
        new_cache: KVCache = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, cache[i] if cache else None, mask)
            new_cache.append(kv)
            feats[f"block{i}"] = x
        feats["layers"] = torch.stack(list(feats.values()), dim=1)
        return self.head(self.ln_f(x)), new_cache, feats

    def forward(self, idx: Tensor, return_features: bool = False, segments: Tensor | None = None):
        logits, _, feats = self.run(idx, segments=segments)
        return (logits, feats) if return_features else logits

    @torch.no_grad()
    def generate(self, prompt: Tensor, max_new_tokens: int, *, temperature: float = 0.0, top_k: int = 0,
                 generator: torch.Generator | None = None) -> Tensor:
        """``prompt`` ``(B, P)`` followed by ``max_new_tokens`` tokens: greedy when ``temperature``
        is 0, else sampled from softmax(logits / temperature), restricted to the ``top_k`` most
        likely tokens when ``top_k`` > 0. Stops early at the context length."""
        from autokd.models.sampling import generate

        def start(prompt: Tensor):
            logits, cache, _ = self.run(prompt[:, -self.context:])
            return logits, cache

        def step(token: Tensor, cache):
            logits, cache, _ = self.run(token, cache)
            return logits, cache

        return generate(self, prompt, max_new_tokens, start, step,
                        full=lambda out, cache: cache[0][0].shape[2] >= self.context,
                        temperature=temperature, top_k=top_k, generator=generator)


@register_model("decoder", DecoderParams, task="lm")
def build_decoder(p: DecoderParams, input_shape, num_classes):
    """Decoder-only transformer language model (GPT-style, pre-LayerNorm, optionally tied embeddings)."""
    if len(input_shape) != 1:
        raise ModelBuildError(f"decoder: input_shape must be (context,), got {tuple(input_shape)}")
    return DecoderLM(vocab_size=num_classes, context=int(input_shape[0]), p=p)
