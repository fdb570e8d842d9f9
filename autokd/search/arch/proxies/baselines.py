"""The baselines every ranking reports (parameter count and multiply-accumulates), and the
non-embedding parameter count of a language model."""

from __future__ import annotations

import torch
from torch import nn

from autokd.evaluate.flops import count_macs
from autokd.models.registry import count_params
from autokd.search.arch.proxies.base import ProxyBatch, final_layer, register_proxy


@register_proxy("params", higher_is_better=True, log_scale=True, paper="baseline", tasks=("classify", "lm"))
def params(model: nn.Module, batch: ProxyBatch) -> float:
    """Trainable parameter count (baseline)."""
    return float(count_params(model))


@register_proxy("flops", higher_is_better=True, log_scale=True, paper="baseline", tasks=("classify", "lm"))
def flops(model: nn.Module, batch: ProxyBatch) -> float:
    """Multiply-accumulates of one forward pass at batch 1 (baseline; the reports' ``flops``)."""
    dtype = batch.x.dtype if not torch.is_floating_point(batch.x) else torch.float32  # token ids stay ids
    return float(count_macs(model, batch.input_shape, dtype=dtype))


@register_proxy("nonembedding_params", higher_is_better=True, log_scale=True, tasks=("lm",),
                paper="Javaheripi et al. LiteTransformerSearch: training-free neural architecture search for "
                      "efficient language models. NeurIPS 2022 (the decoder parameter count)")
def nonembedding_params(model: nn.Module, batch: ProxyBatch) -> float:
    """Trainable parameters outside the embeddings (token, position) and the vocabulary head."""
    skip = {id(p) for m in model.modules() if isinstance(m, nn.Embedding) for p in m.parameters()}
    skip |= {id(p) for p in final_layer(model).parameters()}
    return float(sum(p.numel() for p in model.parameters() if p.requires_grad and id(p) not in skip))
