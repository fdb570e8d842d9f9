"""Proxies of the forward pass at initialization: NASWOT's ReLU-code kernel and Zen-score."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from autokd.models.registry import forward_with_features
from autokd.search.arch.proxies.base import (
    _BN,
    _RELU_LIKE,
    ProxyBatch,
    _keep_bn_stats,
    last_feature_map,
    register_proxy,
    scoring_mode,
)


def naswot_kernel(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """K_H[i, j] = number of ReLU units on which inputs i and j agree (both on or both off).

    Codes are taken at the input of every ReLU-like module, on every call (a module used
    twice contributes twice)."""
    n = x.shape[0]
    k = torch.zeros(n, n, dtype=torch.float64)

    def hook(_m, inp, _out):
        c = (inp[0].detach().reshape(n, -1) > 0).double()
        k.add_(c @ c.t() + (1 - c) @ (1 - c).t())

    hooks = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, _RELU_LIKE)]
    try:
        with torch.no_grad(), scoring_mode(model), _keep_bn_stats(model):
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return k


@register_proxy("naswot", higher_is_better=True,
                paper="Mellor, Turner, Storkey, Crowley. Neural Architecture Search without Training. ICML 2021")
def naswot(model: nn.Module, batch: ProxyBatch) -> float:
    """NASWOT: log-determinant of the ReLU binary-code kernel on the batch."""
    k = naswot_kernel(model, batch.x)
    sign, logdet = torch.linalg.slogdet(k)
    return float(logdet) if float(sign) > 0 else float("-inf")


ZEN_ALPHA = 0.01
ZEN_SEED = 0


@register_proxy("zen", higher_is_better=True,
                paper="Lin et al. Zen-NAS: a zero-shot NAS for high-performance image recognition. ICCV 2021")
def zen(model: nn.Module, batch: ProxyBatch) -> float:
    """Zen-score: log E‖f(x) − f(x + αε)‖₁ + Σ_BN log √(mean σ²), Gaussian weights and inputs."""
    net = copy.deepcopy(model).double()
    gen = torch.Generator().manual_seed(ZEN_SEED)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen, dtype=torch.float64))
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, _BN) and m.affine:
                m.weight.fill_(1.0)
                m.bias.zero_()
        shape = (len(batch), *batch.input_shape)
        x = torch.randn(shape, generator=gen, dtype=torch.float64)
        eps = torch.randn(shape, generator=gen, dtype=torch.float64)
        bn_log = []

        def bn_hook(_m, inp):
            t = inp[0]
            dims = [0] + list(range(2, t.dim()))
            bn_log.append(0.5 * math.log(max(float(t.var(dim=dims, unbiased=False).mean()), 1e-300)))

        hooks = [m.register_forward_pre_hook(bn_hook) for m in net.modules() if isinstance(m, _BN)]
        try:
            with scoring_mode(net):
                logits, feats = forward_with_features(net, x)
                f1 = last_feature_map(feats, logits)
                for h in hooks:
                    h.remove()
                hooks = []
                logits2, feats2 = forward_with_features(net, x + ZEN_ALPHA * eps)
                f2 = last_feature_map(feats2, logits2)
        finally:
            for h in hooks:
                h.remove()
        diff = (f1 - f2).abs().reshape(f1.shape[0], -1).sum(1).mean()
    return float(math.log(max(float(diff), 1e-300)) + sum(bn_log))
