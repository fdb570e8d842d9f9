"""Each training-free proxy against an independent computation or a known property."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from autokd.evaluate.flops import count_macs
from autokd.models import build_model, count_params, forward_with_features
from autokd.search.arch.proxies import (
    PROXIES,
    ProxyBatch,
    compute_proxy,
    diswot_relation,
    diswot_semantic,
    grad_norm,
    naswot,
    naswot_kernel,
    snip,
    synflow,
    teacher_signals,
    zen,
)

SHAPE = (1, 8, 8)
K = 10


def _batch(n=12, seed=0, shape=SHAPE) -> ProxyBatch:
    g = torch.Generator().manual_seed(seed)
    return ProxyBatch(torch.randn(n, *shape, generator=g), torch.arange(n) % K, K)


def _cnn(width=4, bn=False, seed=0, depths=(1, 1)):
    torch.manual_seed(seed)
    return build_model("cnn", {"stem_width": width, "depths": list(depths), "widths": [width, 2 * width],
                               "batch_norm": bn}, SHAPE, K)


def _mlp(hidden, seed=0, **kw):
    torch.manual_seed(seed)
    return build_model("mlp", {"hidden": list(hidden), **kw}, SHAPE, K)


def _np_normgram(a: np.ndarray) -> np.ndarray:
    a = a.reshape(a.shape[0], -1).astype(np.float64)
    g = a @ a.T
    return g / np.linalg.norm(g, axis=1, keepdims=True)


def _np_dist(a: np.ndarray, b: np.ndarray) -> float:
    return float(((a - b) ** 2).sum() / a.shape[0] ** 2)


class Linear2(nn.Module):
    """Bias-free two-layer linear net exposing its hidden features."""

    def __init__(self, d_in, d_hidden, d_out):
        super().__init__()
        self.l1 = nn.Linear(d_in, d_hidden, bias=False)
        self.head = nn.Linear(d_hidden, d_out, bias=False)

    def forward(self, x, return_features=False):
        h = self.l1(x.flatten(1))
        out = self.head(h)
        return (out, OrderedDict(hidden=h)) if return_features else out


def test_registry_documents_every_proxy():
    expected = {"diswot_relation", "diswot_semantic", "naswot", "synflow", "snip", "grad_norm", "zen",
                "params", "flops"}
    assert expected <= set(PROXIES)
    for p in PROXIES.values():
        assert p.summary and p.paper
    assert not PROXIES["diswot_relation"].higher_is_better and PROXIES["diswot_relation"].needs_teacher
    assert PROXIES["naswot"].higher_is_better and not PROXIES["naswot"].needs_teacher


def test_relation_term_matches_numpy():
    batch = _batch()
    teacher, student = _cnn(8, seed=1, depths=(1, 2)), _cnn(4, seed=2)  # no BN: train == eval
    sig = teacher_signals(teacher, batch)
    with torch.no_grad():
        ft = forward_with_features(teacher, batch.x)[1]["stage2"].numpy()
        fs = forward_with_features(student, batch.x)[1]["stage2"].numpy()
    expected = _np_dist(_np_normgram(ft), _np_normgram(fs))
    assert diswot_relation(student, batch, sig) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert expected > 0
    # a student identical to the teacher has distance 0 (width does not matter: B x B)
    assert diswot_relation(teacher, batch, sig) == pytest.approx(0.0, abs=1e-12)


def test_semantic_term_matches_analytic_head_gradient():
    batch = _batch(n=16, seed=3)
    teacher, student = _mlp([32], seed=1), _mlp([4], seed=2)
    sig = teacher_signals(teacher, batch)
    assert sig.class_gram.shape == (K, K)  # width-independent

    def head_grad(m):  # dCE/dW = (softmax(z) - onehot(y))^T h / B
        with torch.no_grad():
            z, f = forward_with_features(m, batch.x)
        p = torch.softmax(z.double(), 1).numpy()
        y = np.eye(K)[batch.y.numpy()]
        return (p - y).T @ f["penultimate"].double().numpy() / len(batch)

    expected = _np_dist(_np_normgram(head_grad(teacher)), _np_normgram(head_grad(student)))
    assert diswot_semantic(student, batch, sig) == pytest.approx(expected, rel=1e-6)
    assert diswot_semantic(teacher, batch, sig) == pytest.approx(0.0, abs=1e-12)


def test_naswot_kernel_is_symmetric_psd_and_counts_units():
    model = _cnn(4, bn=True)
    x = _batch(n=10).x
    k = naswot_kernel(model, x)
    assert torch.allclose(k, k.t())
    assert torch.linalg.eigvalsh(k).min() > -1e-8
    # the diagonal is the number of ReLU units seen per sample (block.act runs twice per block)
    units = []
    hooks = [m.register_forward_hook(lambda m, i, o: units.append(i[0][0].numel()))
             for m in model.modules() if isinstance(m, nn.ReLU)]
    with torch.no_grad():
        model(x[:1])
    for h in hooks:
        h.remove()
    assert torch.all(k.diagonal() == sum(units))


def test_naswot_matches_numpy_on_one_hidden_layer():
    model = _mlp([24], seed=5)
    batch = _batch(n=8, seed=4)
    w, b = model.hidden[0][0].weight.detach().double().numpy(), model.hidden[0][0].bias.detach().double().numpy()
    pre = batch.x.flatten(1).double().numpy() @ w.T + b
    c = (pre > 0).astype(np.float64)
    kh = c @ c.T + (1 - c) @ (1 - c).T
    np.testing.assert_allclose(naswot_kernel(model, batch.x).numpy(), kh)
    assert naswot(model, batch) == pytest.approx(np.linalg.slogdet(kh)[1], rel=1e-9)


def test_synflow_is_positive_input_independent_and_layer_homogeneous():
    model = _cnn(4, bn=True)
    a, b = synflow(model, _batch(seed=1)), synflow(model, _batch(seed=2, n=3))
    assert a > 0 and a == b
    # bias-free linear net: R = 1^T |W2||W1| 1 is degree-1 homogeneous in each layer, so
    # sum |theta * dR/dtheta| = (number of layers) * R
    lin = Linear2(64, 6, K)
    w1, w2 = lin.l1.weight.detach().abs().double().numpy(), lin.head.weight.detach().abs().double().numpy()
    r = (w2 @ w1 @ np.ones(64)).sum()
    assert synflow(lin, _batch()) == pytest.approx(2 * r, rel=1e-9)


def test_snip_and_grad_norm_match_analytic_gradient():
    torch.manual_seed(0)
    lin = nn.Sequential(nn.Flatten(), nn.Linear(64, K, bias=False))
    batch = _batch(n=20, seed=7)
    x = batch.x.flatten(1).double().numpy()
    w = lin[1].weight.detach().double().numpy()
    z = x @ w.T
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    g = (p - np.eye(K)[batch.y.numpy()]).T @ x / len(batch)
    assert snip(lin, batch) == pytest.approx(np.abs(w * g).sum(), rel=1e-5)
    assert grad_norm(lin, batch) == pytest.approx(np.linalg.norm(g), rel=1e-5)


def test_zen_ignores_current_weights_and_grows_with_width():
    batch = _batch()
    a, b = zen(_cnn(4, bn=True, seed=0), batch), zen(_cnn(4, bn=True, seed=9), batch)
    assert a == pytest.approx(b, rel=1e-12)  # re-initialised with Gaussian weights: init-independent
    assert zen(_mlp([64]), batch) > zen(_mlp([4]), batch)  # more expressive, higher score
    assert np.isfinite(a)


def test_baselines_are_params_and_flops():
    model, batch = _cnn(4, bn=True), _batch()
    assert compute_proxy("params", model, batch) == count_params(model)
    assert compute_proxy("flops", model, batch) == count_macs(model, SHAPE)


def test_proxies_leave_the_model_untouched():
    model = _cnn(4, bn=True)
    teacher = _cnn(8, bn=True, seed=3)
    batch = _batch()
    sig = teacher_signals(teacher, batch)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    first = {n: compute_proxy(n, model, batch, sig) for n in PROXIES}
    again = {n: compute_proxy(n, model, batch, sig) for n in reversed(list(PROXIES))}
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # incl. BatchNorm running stats
    assert all(p.grad is None for p in model.parameters())
    assert first == again  # order-independent and deterministic
