"""Feature and relation losses against their formulas, written out here independently in float64."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from autokd.losses import available, create, get_spec

DT = torch.float64


def rand(*shape, seed=0, requires_grad=True):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=DT).requires_grad_(requires_grad)


def pair(name, seed=0):
    """A (student, teacher) pair shaped for ``name``'s kind; relation pairs differ in shape."""
    kind = get_spec(name).kind
    if name == "at":
        return rand(5, 3, 4, 4, seed=seed), rand(5, 6, 4, 4, seed=seed + 100)
    if kind == "relation":
        return rand(5, 8, seed=seed), rand(5, 3, 2, 2, seed=seed + 100)
    return rand(5, 4, 3, 3, seed=seed), rand(5, 4, 3, 3, seed=seed + 100)


FEATURE_METHODS = [n for n in available() if get_spec(n).kind in ("feature", "relation") and get_spec(n).task == "classify"]


@pytest.mark.parametrize("name", FEATURE_METHODS)
def test_gradients_reach_student_never_teacher(name):
    s, t = pair(name, seed=1)
    out = create(name)(s, t)
    assert out.dim() == 0
    out.backward()
    assert s.grad is not None and torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0
    assert t.grad is None or torch.all(t.grad == 0)


@pytest.mark.parametrize("name", FEATURE_METHODS)
def test_zero_for_identical_student_and_teacher(name):
    s, _ = pair(name, seed=2)
    assert abs(create(name)(s, s.detach().clone()).item()) < 1e-10


@pytest.mark.parametrize("name", ["fitnet", "nd"])
def test_feature_losses_require_same_shapes(name):
    with pytest.raises(ValueError, match="adapt"):
        create(name)(rand(4, 3, 2, 2), rand(4, 5, 2, 2))


@pytest.mark.parametrize("name", FEATURE_METHODS)
def test_batch_sizes_must_agree(name):
    with pytest.raises(ValueError, match="batch"):
        create(name)(rand(4, 3, 2, 2), rand(5, 3, 2, 2))


# ---------------------------------------------------------------- fitnet


def test_fitnet_is_mean_squared_error_over_all_elements():
    s, t = pair("fitnet", seed=3)
    diff = s.detach() - t.detach()
    assert torch.allclose(create("fitnet")(s, t), (diff**2).sum() / diff.numel(), atol=1e-12)


# ---------------------------------------------------------------- at


def at_ref(x):
    a = (x.detach() ** 2).mean(1).reshape(x.shape[0], -1)
    return a / a.norm(dim=1, keepdim=True)


def test_at_matches_authors_formula_with_different_channels():
    s, t = pair("at", seed=4)
    assert s.shape[1] != t.shape[1]
    expected = ((at_ref(s) - at_ref(t)) ** 2).mean()
    assert torch.allclose(create("at")(s, t), expected, atol=1e-12)


def test_at_rejects_different_spatial_sizes():
    with pytest.raises(ValueError, match="spatial"):
        create("at")(rand(2, 3, 4, 4), rand(2, 3, 2, 2))


# ---------------------------------------------------------------- nd


def test_nd_matches_formula():
    s, t = pair("nd", seed=5)
    vs, vt = s.detach().mean(dim=(2, 3)), t.detach().mean(dim=(2, 3))
    ns, nt = vs.norm(dim=1), vt.norm(dim=1)
    norm_term = (1 - ns / torch.maximum(ns, nt)).mean()
    cos = (vs * vt).sum(1) / (ns * nt)
    direction = (1 - cos).mean()
    for wn, wd in [(1.0, 1.0), (2.0, 0.0), (0.0, 3.0)]:
        value = create("nd", norm_weight=wn, direction_weight=wd)(s, t)
        assert torch.allclose(value, wn * norm_term + wd * direction, atol=1e-12)


def test_nd_norm_term_only_pushes_up_to_the_larger_norm():
    t = rand(4, 6, seed=6, requires_grad=False)
    loss = create("nd", norm_weight=1.0, direction_weight=0.0)
    assert loss(3.0 * t, t).item() == pytest.approx(0.0, abs=1e-12)  # same direction, larger norm: no penalty
    assert loss(0.5 * t, t).item() == pytest.approx(0.5, abs=1e-12)  # half the norm: 1 − 1/2


# ---------------------------------------------------------------- rkd


def smooth_l1(a, b):
    d = (a - b).abs()
    return torch.where(d < 1, 0.5 * d**2, d - 0.5).mean()


def rkd_ref(s, t, wd, wa):
    def dist(e):
        e = e.detach().reshape(e.shape[0], -1)
        n = e.shape[0]
        d = torch.zeros(n, n, dtype=DT)
        for i, j in itertools.product(range(n), repeat=2):
            if i != j:
                d[i, j] = (e[i] - e[j]).norm()
        return d / d[d > 0].mean()

    def angles(e):
        e = e.detach().reshape(e.shape[0], -1)
        n = e.shape[0]
        out = []
        for j, i, k in itertools.product(range(n), repeat=3):
            u, v = e[i] - e[j], e[k] - e[j]
            nu, nv = u.norm(), v.norm()
            out.append(0.0 if nu == 0 or nv == 0 else float(u @ v / (nu * nv)))
        return torch.tensor(out, dtype=DT)

    return wd * smooth_l1(dist(s), dist(t)) + wa * smooth_l1(angles(s), angles(t))


def test_rkd_matches_formula_on_different_shapes():
    s, t = pair("rkd", seed=7)
    for wd, wa in [(25.0, 50.0), (1.0, 0.0), (0.0, 1.0)]:
        value = create("rkd", distance_weight=wd, angle_weight=wa)(s, t)
        assert torch.allclose(value, rkd_ref(s, t, wd, wa), atol=1e-10)


def test_rkd_is_invariant_to_scaling_and_translation():
    s, t = pair("rkd", seed=8)
    loss = create("rkd")
    assert torch.allclose(loss(4.0 * s + 1.5, t), loss(s, t), atol=1e-10)


# ---------------------------------------------------------------- pkt


def test_pkt_matches_authors_formula():
    s, t = pair("pkt", seed=9)
    eps = 1e-7

    def cond(e):
        e = e.detach().reshape(e.shape[0], -1)
        n = e.shape[0]
        unit = [e[i] / (e[i].norm() + eps) for i in range(n)]
        k = torch.tensor([[(float(unit[i] @ unit[j]) + 1) / 2 for j in range(n)] for i in range(n)], dtype=DT)
        return k / k.sum(1, keepdim=True)

    ps, pt = cond(s), cond(t)
    expected = sum(
        float(pt[i, j]) * math.log((float(pt[i, j]) + eps) / (float(ps[i, j]) + eps))
        for i in range(5)
        for j in range(5)
    ) / 25
    assert create("pkt")(s, t).item() == pytest.approx(expected, abs=1e-12)


# ---------------------------------------------------------------- sp


def test_sp_matches_formula():
    s, t = pair("sp", seed=10)

    def gram(e):
        e = e.detach().reshape(e.shape[0], -1)
        g = e @ e.t()
        return g / g.norm(dim=1, keepdim=True)

    b = s.shape[0]
    expected = ((gram(s) - gram(t)) ** 2).sum() / b**2
    assert torch.allclose(create("sp")(s, t), expected, atol=1e-12)
