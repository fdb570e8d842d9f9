"""MeCo (Jiang, Wang, Bie, NeurIPS 2023): the minimum eigenvalue of the Pearson correlation
matrix of each layer's feature map, summed over layers; one sample, one forward pass.

As in the reference implementation: every module's output is hooked (the model itself and
containers included); of an output of shape (B, C, …) the first sample's map is taken as C
rows of H·W values; NaN/inf correlations (a constant channel) are set to 0; outputs without
spatial dimensions ((B, F): one value per row) give a zero matrix there, so they add 0 and
are skipped. ``meco_opt`` correlates ``MECO_OPT_CHANNELS`` channels drawn at random (seeded)
and weights the eigenvalue by C / ``MECO_OPT_CHANNELS`` (the reference's ``meco`` indicator).
"""

from __future__ import annotations

import torch
from torch import nn

from autokd.search.arch.proxies.base import ProxyBatch, _keep_bn_stats, register_proxy, scoring_mode

MECO_OPT_CHANNELS = 8
MECO_SEED = 0


def min_corr_eigenvalue(rows: torch.Tensor) -> float:
    """λ_min of the Pearson correlation matrix of the rows of ``rows`` (NaN/inf entries -> 0)."""
    c = rows.shape[0]
    if rows.shape[1] < 2:  # one value per channel: every correlation is NaN -> a zero matrix
        return 0.0
    corr = torch.corrcoef(rows.double()).reshape(c, c)
    corr = torch.nan_to_num(corr, nan=0.0, posinf=0.0, neginf=0.0)
    return float(torch.linalg.eigvalsh(corr)[0])


def meco_layer_values(model: nn.Module, x: torch.Tensor, channels: int | None = None, seed: int = MECO_SEED) -> list[float]:
    """One value per hooked module output with spatial dimensions, in call order: λ_min of the
    channel correlation of the first sample's map (``channels``: sampled, weighted by C/channels)."""
    gen = torch.Generator().manual_seed(seed)
    values: list[float] = []

    def hook(_m, _inp, out):
        if not isinstance(out, torch.Tensor) or out.dim() < 3:
            return
        f = out[0].detach().reshape(out.shape[1], -1)
        weight = 1.0
        if channels is not None:
            c = f.shape[0]
            f = f[torch.randperm(c, generator=gen)[:channels]]
            weight = c / channels
        values.append(weight * min_corr_eigenvalue(f))

    hooks = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        with torch.no_grad(), scoring_mode(model), _keep_bn_stats(model):
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return values


@register_proxy("meco", higher_is_better=True,
                paper="Jiang, Wang, Bie. MeCo: zero-shot NAS with one data and single forward pass via minimum "
                      "eigenvalue of correlation. NeurIPS 2023")
def meco(model: nn.Module, batch: ProxyBatch) -> float:
    """MeCo: Σ_layers λ_min of the channel correlation matrix of the layer's feature map."""
    return float(sum(meco_layer_values(model, batch.x)))


@register_proxy("meco_opt", higher_is_better=True,
                paper="Jiang, Wang, Bie. MeCo. NeurIPS 2023 (MeCo_opt: channel sampling)")
def meco_opt(model: nn.Module, batch: ProxyBatch) -> float:
    """MeCo_opt: Σ_layers (C/8)·λ_min of the correlation of 8 sampled channels of the layer's map."""
    return float(sum(meco_layer_values(model, batch.x, channels=MECO_OPT_CHANNELS)))
