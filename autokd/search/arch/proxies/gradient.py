"""Gradient-based proxies: SynFlow, SNIP, grad_norm and ZiCo."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from autokd.search.arch.proxies.base import (
    _BN,
    ProxyBatch,
    _ce_grads,
    _keep_bn_stats,
    _params,
    cross_entropy,
    register_proxy,
    scoring_mode,
)


@register_proxy("synflow", higher_is_better=True, log_scale=True,
                paper="Tanaka, Kunin, Yamins, Ganguli. Pruning neural networks without any data. NeurIPS 2020")
def synflow(model: nn.Module, batch: ProxyBatch) -> float:
    """SynFlow: Σ|θ ⊙ ∂R/∂θ| with R the summed output of the |θ| network on an all-ones input."""
    net = copy.deepcopy(model).double().eval()
    for m in net.modules():
        if isinstance(m, _BN):
            m.reset_running_stats()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    params = _params(net)
    r = net(torch.ones(1, *batch.input_shape, dtype=torch.float64)).sum()
    grads = torch.autograd.grad(r, params, allow_unused=True)
    return float(sum((p.detach() * g).abs().sum() for p, g in zip(params, grads) if g is not None))


@register_proxy("snip", higher_is_better=True, log_scale=True, tasks=("classify", "lm"),
                paper="Lee, Ajanthan, Torr. SNIP: single-shot network pruning. ICLR 2019")
def snip(model: nn.Module, batch: ProxyBatch) -> float:
    """SNIP: Σ|θ ⊙ ∂L_CE/∂θ| on the batch."""
    params, grads = _ce_grads(model, batch)
    return float(sum((p.detach() * g).abs().sum() for p, g in zip(params, grads)))


@register_proxy("grad_norm", higher_is_better=True, log_scale=True, tasks=("classify", "lm"),
                paper="Abdelfattah, Mehrotra, Dudziak, Lane. Zero-cost proxies for lightweight NAS. ICLR 2021")
def grad_norm(model: nn.Module, batch: ProxyBatch) -> float:
    """grad_norm: the L2 norm of the CE gradient over all parameters."""
    _, grads = _ce_grads(model, batch)
    return float(math.sqrt(sum(float((g.double() ** 2).sum()) for g in grads)))


ZICO_SPLITS = 2


def zico_layer_gradients(model: nn.Module, batch: ProxyBatch, splits: int = ZICO_SPLITS) -> list[torch.Tensor]:
    """Per Conv2d/Linear layer, a ``splits × weight.numel()`` matrix: the CE gradient of its weight
    on each of ``splits`` consecutive equal slices of the batch (one backward pass per slice)."""
    n = len(batch)
    k = min(splits, n)
    if k < 2:
        raise ValueError(f"ZiCo needs at least 2 mini-batches; the batch has {n} row(s)")
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)) and m.weight.requires_grad]
    weights = [m.weight for m in layers]
    per_layer: list[list[torch.Tensor]] = [[] for _ in weights]
    with scoring_mode(model), _keep_bn_stats(model):
        for s in range(k):
            lo, hi = s * n // k, (s + 1) * n // k
            loss = cross_entropy(model(batch.x[lo:hi]), batch.y[lo:hi])
            grads = torch.autograd.grad(loss, weights, allow_unused=True)
            for rows, w, g in zip(per_layer, weights, grads):
                rows.append((torch.zeros_like(w) if g is None else g.detach()).double().reshape(-1))
    return [torch.stack(rows) for rows in per_layer]


@register_proxy("zico", higher_is_better=True, tasks=("classify", "lm"),
                paper="Li, Yang, Bhardwaj, Marculescu. ZiCo: zero-shot NAS via inverse coefficient of variation "
                      "on gradients. ICLR 2023")
def zico(model: nn.Module, batch: ProxyBatch) -> float:
    """ZiCo: Σ_layers log Σ_θ mean|g_θ| / std(g_θ), CE weight gradients over mini-batches of the batch."""
    total = 0.0
    for g in zico_layer_gradients(model, batch):
        std = g.std(dim=0, unbiased=False)
        keep = std > 0  # the reference skips weights whose gradient does not vary
        s = float((g.abs().mean(dim=0)[keep] / std[keep]).sum())
        if s > 0:  # a layer whose sum is 0 adds nothing (as the reference)
            total += math.log(s)
    return total
