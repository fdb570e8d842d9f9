"""Transformer representation transfer against independent float64 formulas (numpy loops), layer maps."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from autokd.losses import create, get_spec
from autokd.losses.layer_map import layer_pairs

G = torch.Generator().manual_seed(0)


def rnd(*shape):
    return torch.randn(*shape, generator=G, dtype=torch.float64)


def _softmax(z, axis=-1):
    z = z - z.max(axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis, keepdims=True)


def _huber(a, b):
    d = np.abs(a - b)
    return np.where(d <= 1, 0.5 * d**2, d - 0.5).mean()


def _cos(u, v):
    nu, nv = np.linalg.norm(u), np.linalg.norm(v)
    return 0.0 if nu == 0 or nv == 0 else float(u @ v / (nu * nv))


def test_hidden_mse_and_cosine():
    s, t = rnd(2, 5, 6), rnd(2, 5, 6)
    want_mse = ((s.numpy() - t.numpy()) ** 2).mean()
    assert create("hidden_mse")(s, t).item() == pytest.approx(want_mse, rel=1e-12)
    cos = [[_cos(s[b, i].numpy(), t[b, i].numpy()) for i in range(5)] for b in range(2)]
    assert create("hidden_cos")(s, t).item() == pytest.approx(1 - np.mean(cos), rel=1e-12)


def test_attention_kl_equal_and_unequal_heads():
    s = torch.softmax(rnd(2, 4, 5, 5), -1)
    t = torch.softmax(rnd(2, 4, 5, 5), -1)
    ps, pt = s.numpy(), t.numpy()
    want = np.mean(np.sum(pt * (np.log(pt) - np.log(ps)), -1))
    assert create("attn_kl")(s, t).item() == pytest.approx(want, rel=1e-10)
    t2 = torch.softmax(rnd(2, 2, 5, 5), -1)  # two teacher heads: head-averaged distributions
    ms, mt = ps.mean(1), t2.numpy().mean(1)
    want2 = np.mean(np.sum(mt * (np.log(mt) - np.log(ms)), -1))
    assert create("attn_kl")(s, t2).item() == pytest.approx(want2, rel=1e-10)
    assert create("attn_kl")(t, t).item() == pytest.approx(0.0, abs=1e-12)


def _relation_ref(x: np.ndarray, heads: int) -> np.ndarray:
    """MiniLMv2 relations of (B, T, d) vectors, written from the paper: split d into A heads."""
    b, t, d = x.shape
    dr = d // heads
    out = np.empty((b, heads, t, t))
    for bi, a in itertools.product(range(b), range(heads)):
        xa = x[bi, :, a * dr:(a + 1) * dr]
        out[bi, a] = _softmax(xa @ xa.T / math.sqrt(dr))
    return out


@pytest.mark.parametrize("heads", [1, 2, 4])
def test_minilm_relation_across_widths_and_head_counts(heads):
    s = rnd(2, 2, 6, 4)  # student: 2 heads of 4 -> width 8
    t = rnd(2, 4, 6, 4)  # teacher: 4 heads of 4 -> width 16
    s_flat = s.transpose(1, 2).reshape(2, 6, 8).numpy()
    t_flat = t.transpose(1, 2).reshape(2, 6, 16).numpy()
    rs, rt = _relation_ref(s_flat, heads), _relation_ref(t_flat, heads)
    want = np.mean(np.sum(rt * (np.log(rt) - np.log(rs)), -1))
    assert create("minilm", relation_heads=heads)(s, t).item() == pytest.approx(want, rel=1e-10)
    with pytest.raises(ValueError, match="multiple of relation_heads"):
        create("minilm", relation_heads=3)(s, t)


def _wr_ref(x: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Pair cosines (B, T, T) and windowed angles (B, S, w, w, w), in loops."""
    b, n, _ = x.shape
    pairs = np.array([[[_cos(x[bi, i], x[bi, j]) for j in range(n)] for i in range(n)] for bi in range(b)])
    w = min(window, n)
    angles = np.zeros((b, n - w + 1, w, w, w))
    for bi, st in itertools.product(range(b), range(n - w + 1)):
        seg = x[bi, st:st + w]
        for j, i, k in itertools.product(range(w), repeat=3):
            angles[bi, st, j, i, k] = _cos(seg[i] - seg[j], seg[k] - seg[j])
    return pairs, angles


def test_ckd_word_relation():
    s, t = rnd(2, 7, 5), rnd(2, 7, 9)  # widths differ: relations are within each model
    ps, as_ = _wr_ref(s.numpy(), 4)
    pt, at = _wr_ref(t.numpy(), 4)
    want = 0.5 * _huber(ps, pt) + 2.0 * _huber(as_, at)
    got = create("ckd_wr", pair_weight=0.5, triple_weight=2.0, window=4)(s, t).item()
    assert got == pytest.approx(want, rel=1e-10)
    assert create("ckd_wr")(s, s.clone()).item() == pytest.approx(0.0, abs=1e-12)


def test_ckd_layer_transforming_relation_with_depth_mismatch():
    s = rnd(2, 3, 5, 4)  # student: embeddings + 2 layers
    t = rnd(2, 5, 5, 6)  # teacher: embeddings + 4 layers
    pairs = layer_pairs("uniform", 2, 4, embeddings=True)
    assert pairs == [(0, 0), (1, 2), (2, 4)]
    sm = s.numpy()[:, [p[0] for p in pairs]].transpose(0, 2, 1, 3).reshape(10, 3, 4)  # (B·T, M, d)
    tm = t.numpy()[:, [p[1] for p in pairs]].transpose(0, 2, 1, 3).reshape(10, 3, 6)
    ps, as_ = _wr_ref(sm, 8)
    pt, at = _wr_ref(tm, 8)
    want = _huber(ps, pt) + _huber(as_, at)
    assert create("ckd_ltr")(s, t).item() == pytest.approx(want, rel=1e-10)


def test_layer_maps():
    assert layer_pairs("uniform", 2, 4) == [(1, 2), (2, 4)]
    assert layer_pairs("uniform", 3, 4) == [(1, 2), (2, 3), (3, 4)]
    assert layer_pairs("uniform", 4, 2) == [(1, 1), (2, 1), (3, 2), (4, 2)]  # deeper student
    assert layer_pairs("last", 2, 6) == [(2, 6)]
    assert layer_pairs("explicit", 2, 4, explicit=[[1, 1], [2, 3]]) == [(1, 1), (2, 3)]
    with pytest.raises(ValueError, match="outside"):
        layer_pairs("explicit", 2, 4, explicit=[[3, 1]])
    with pytest.raises(ValueError, match="expected 'uniform'"):
        layer_pairs("nearest", 2, 4)


def test_gradients_reach_only_the_student():
    s, t = rnd(2, 6, 8).requires_grad_(True), rnd(2, 6, 8).requires_grad_(True)
    for name in ("hidden_mse", "hidden_cos", "ckd_wr"):
        create(name)(s, t).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0 and t.grad is None


def test_language_model_methods_are_marked():
    for name in ("hidden_mse", "hidden_cos", "attn_kl", "minilm", "ckd_wr", "ckd_ltr", "fkl", "akl"):
        assert get_spec(name).task == "lm"
    assert get_spec("kd").task == "classify" and get_spec("rkd").task == "classify"
