"""ZiCo and MeCo against independent small computations and their invariances."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from autokd.models import build_model
from autokd.search.arch.proxies import (
    MECO_OPT_CHANNELS,
    PROXIES,
    ProxyBatch,
    compute_proxy,
    meco,
    meco_layer_values,
    meco_opt,
    zico,
)

SHAPE = (1, 8, 8)
K = 10


def _batch(n=12, seed=0, shape=SHAPE) -> ProxyBatch:
    g = torch.Generator().manual_seed(seed)
    return ProxyBatch(torch.randn(n, *shape, generator=g), torch.arange(n) % K, K)


def _cnn(width=4, bn=True, seed=0):
    torch.manual_seed(seed)
    return build_model("cnn", {"stem_width": width, "depths": [1, 1], "widths": [width, 2 * width],
                               "batch_norm": bn}, SHAPE, K)


class Softmax1(nn.Module):
    """Flatten + one bias-free linear layer: its CE gradient has a closed form."""

    def __init__(self, d_in, d_out, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.fc = nn.Linear(d_in, d_out, bias=False)

    def forward(self, x):
        return self.fc(x.flatten(1))


def _np_zico_one_layer(w: np.ndarray, x: np.ndarray, y: np.ndarray, splits: int) -> float:
    n = x.shape[0]
    grads = []
    for s in range(splits):
        xs, ys = x[s * n // splits:(s + 1) * n // splits], y[s * n // splits:(s + 1) * n // splits]
        z = xs @ w.T
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        grads.append(((p - np.eye(w.shape[0])[ys]).T @ xs / len(xs)).ravel())  # dCE/dW
    g = np.array(grads)
    std = g.std(0)
    keep = std > 0
    return math.log((np.abs(g).mean(0)[keep] / std[keep]).sum())


def test_registered_like_the_others():
    for name in ("zico", "meco", "meco_opt"):
        p = PROXIES[name]
        assert p.higher_is_better and not p.needs_teacher and p.summary and p.paper


def test_zico_matches_closed_form_gradient():
    batch = _batch(n=16, seed=1)
    batch = ProxyBatch(batch.x.double(), batch.y, K)  # float64 end to end: std of 2 rows cancels
    model = Softmax1(64, K, seed=2).double()
    x = batch.x.flatten(1).numpy()
    expected = _np_zico_one_layer(model.fc.weight.detach().numpy(), x, batch.y.numpy(), splits=2)
    assert zico(model, batch) == pytest.approx(expected, rel=1e-9)


def test_zico_zero_when_the_mini_batches_agree():
    # identical halves give identical gradients: std 0 everywhere, every weight skipped
    half = _batch(n=6, seed=3)
    batch = ProxyBatch(torch.cat([half.x, half.x]), torch.cat([half.y, half.y]), K)
    assert zico(Softmax1(64, K), batch) == 0.0
    assert zico(Softmax1(64, K), _batch(n=12, seed=3)) != 0.0


def test_zico_sums_layers_and_is_invariant_to_loss_scale_free_reordering():
    # swapping the two mini-batches swaps the rows of the gradient matrix: mean|g| and std unchanged
    batch = _batch(n=12, seed=4)
    swapped = ProxyBatch(torch.cat([batch.x[6:], batch.x[:6]]), torch.cat([batch.y[6:], batch.y[:6]]), K)
    model = _cnn(4, bn=False)
    assert zico(model, swapped) == pytest.approx(zico(model, batch), rel=1e-9)


@pytest.mark.parametrize("name", ["zico", "meco", "meco_opt"])
def test_proxies_leave_the_model_untouched(name):
    model = _cnn(4, bn=True)
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    value = compute_proxy(name, model, _batch())
    assert math.isfinite(value)
    assert not model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(p.grad is None for p in model.parameters())


def _conv_net(c_out=6, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, c_out, 3, padding=1, bias=False), nn.Flatten(), nn.Linear(c_out * 64, K))


def test_meco_matches_numpy_on_one_conv():
    net, batch = _conv_net(), _batch(n=5, seed=5)
    with torch.no_grad():
        fmap = net[0](batch.x)[0].double().numpy().reshape(6, -1)  # the first sample's channels
    expected = np.linalg.eigvalsh(np.corrcoef(fmap)).min()
    # hooked outputs with spatial dims: only the conv's (Flatten/Linear/the net itself are (B, F))
    assert meco_layer_values(net, batch.x) == pytest.approx([expected], rel=1e-9)
    assert meco(net, batch) == pytest.approx(expected, rel=1e-9)
    assert 0.0 <= expected <= 1.0  # a correlation matrix is PSD with trace C


def test_meco_reads_only_the_first_sample_and_ignores_channel_scale():
    net, batch = _conv_net(), _batch(n=5, seed=6)
    base = meco(net, batch)
    other = batch.x.clone()
    other[1:] = torch.randn_like(other[1:])
    assert meco(net, ProxyBatch(other, batch.y, K)) == pytest.approx(base, rel=1e-9)
    with torch.no_grad():  # positive per-channel scaling leaves Pearson correlations unchanged
        net[0].weight.mul_(torch.tensor([0.5, 2.0, 3.0, 1.0, 7.0, 0.1]).view(6, 1, 1, 1))
    assert meco(net, batch) == pytest.approx(base, rel=1e-7)


def test_meco_opt_with_few_channels_is_the_weighted_full_meco():
    # C <= 8: all channels are drawn (in some order), weight C/8; λ_min does not depend on the order
    net, batch = _conv_net(c_out=6), _batch(n=4, seed=7)
    assert meco_opt(net, batch) == pytest.approx(6 / MECO_OPT_CHANNELS * meco(net, batch), rel=1e-9)
    wide = _conv_net(c_out=20)
    assert meco_opt(wide, batch) == meco_opt(wide, batch)  # seeded channel draw


def test_meco_zero_without_feature_maps():
    torch.manual_seed(0)
    mlp = build_model("mlp", {"hidden": [16]}, SHAPE, K)
    assert meco(mlp, _batch()) == 0.0


def test_meco_layer_values_lie_in_unit_interval_on_a_real_cnn():
    values = meco_layer_values(_cnn(8), _batch(n=8).x)
    assert values and all(-1e-9 <= v <= 1 + 1e-9 for v in values)
