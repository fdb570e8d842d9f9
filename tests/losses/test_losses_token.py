"""Token-level LM divergences against independent float64 formulas (numpy), masks, chunking."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from autokd.losses import create, get_spec

B, T, V = 3, 5, 11


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def _kl(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(np.where(a > 0, a * (np.log(a) - np.log(b)), 0.0), axis=-1)


def ref_per_token(name: str, zs: np.ndarray, zt: np.ndarray, temp: float, **kw) -> np.ndarray:
    """Independent float64 definitions, written from the papers' formulas."""
    q, p = _softmax(zs / temp), _softmax(zt / temp)
    if name == "fkl":
        return _kl(p, q)
    if name == "rkl":
        return _kl(q, p)
    if name == "tvd":
        return 0.5 * np.abs(p - q).sum(-1)
    if name == "jsd":
        beta = kw["beta"]
        if beta == 0:
            return _kl(p, q)
        if beta == 1:
            return _kl(q, p)
        m = beta * p + (1 - beta) * q
        return beta * _kl(p, m) + (1 - beta) * _kl(q, m)
    if name == "skl":
        a = kw["alpha"]
        return _kl(p, a * p + (1 - a) * q)
    if name == "srkl":
        a = kw["alpha"]
        return _kl(q, (1 - a) * p + a * q)
    if name == "akl":
        mu = kw["mu"]
        out = np.empty(p.shape[:-1])
        for idx in np.ndindex(*p.shape[:-1]):
            order = np.argsort(-p[idx], kind="stable")
            ps, qs = p[idx][order], q[idx][order]
            head = np.zeros(len(ps), dtype=bool)
            cum = 0.0
            for i in range(len(ps)):  # the top token always; then each while the mass up to it is ≤ μ
                cum += ps[i]
                head[i] = i == 0 or cum <= mu
            err = np.abs(ps - qs)
            gh, gt = err[head].sum(), err[~head].sum()
            out[idx] = gh / (gh + gt) * _kl(p[idx], q[idx]) + gt / (gh + gt) * _kl(q[idx], p[idx])
        return out
    raise KeyError(name)


CASES = [
    ("fkl", {}), ("rkl", {}), ("tvd", {}), ("jsd", {"beta": 0.0}), ("jsd", {"beta": 0.5}), ("jsd", {"beta": 1.0}),
    ("jsd", {"beta": 0.2}), ("skl", {"alpha": 0.1}), ("srkl", {"alpha": 0.1}), ("skl", {"alpha": 0.6}),
    ("akl", {"mu": 0.5}), ("akl", {"mu": 0.2}),
]


@pytest.fixture
def logits():
    g = torch.Generator().manual_seed(0)
    zs = torch.randn(B, T, V, generator=g, dtype=torch.float64) * 2
    zt = torch.randn(B, T, V, generator=g, dtype=torch.float64) * 3
    mask = torch.rand(B, T, generator=g) > 0.3
    mask[0, 0] = True
    return zs, zt, mask


@pytest.mark.parametrize("name,kw", CASES)
@pytest.mark.parametrize("temp", [1.0, 2.5])
def test_token_loss_matches_float64_formula(logits, name, kw, temp):
    zs, zt, mask = logits
    loss = create(name, temperature=temp, chunk_tokens=4, **kw)
    got = loss(zs, zt, mask).item()
    per = ref_per_token(name, zs.numpy(), zt.numpy(), temp, **kw)
    want = per[mask.numpy()].mean()
    assert got == pytest.approx(want, rel=1e-5, abs=1e-7)


def test_jsd_ends_are_exact_kls_and_middle_is_symmetric_at_half(logits):
    zs, zt, mask = logits
    assert create("jsd", beta=0.0)(zs, zt, mask).item() == pytest.approx(create("fkl")(zs, zt, mask).item(), rel=1e-12)
    assert create("jsd", beta=1.0)(zs, zt, mask).item() == pytest.approx(create("rkl")(zs, zt, mask).item(), rel=1e-12)
    # JSD(0.5) is symmetric in its two arguments; the mixture form tends to 0 near the ends (TRL's note)
    half = create("jsd", beta=0.5)
    assert half(zs, zt, mask).item() == pytest.approx(half(zt, zs, mask).item(), rel=1e-9)
    assert create("jsd", beta=1e-6)(zs, zt, mask).item() < 1e-4


@pytest.mark.parametrize("name,kw", CASES)
def test_padding_changes_nothing(logits, name, kw):
    """Positions outside the mask never reach the divergence, even when they hold NaN/inf."""
    zs, zt, mask = logits
    loss = create(name, **kw)
    clean = loss(zs, zt, mask)
    zs2, zt2 = zs.clone(), zt.clone()
    zs2[~mask] = float("nan")
    zt2[~mask] = float("inf")
    assert torch.equal(loss(zs2, zt2, mask), clean)


@pytest.mark.parametrize("name,kw", CASES)
def test_chunking_gives_the_same_value_and_gradient(logits, name, kw):
    zs, zt, mask = logits
    grads, values = [], []
    for chunk in (0, 1, 3, 1000):
        x = zs.clone().requires_grad_(True)
        value = create(name, chunk_tokens=chunk, **kw)(x, zt, mask)
        value.backward()
        values.append(value.item())
        grads.append(x.grad)
    for v, g in zip(values[1:], grads[1:]):
        assert v == pytest.approx(values[0], rel=1e-12, abs=1e-15)
        torch.testing.assert_close(g, grads[0], rtol=1e-10, atol=1e-14)


def test_gradient_flows_only_to_student(logits):
    zs, zt, mask = logits
    s, t = zs.clone().requires_grad_(True), zt.clone().requires_grad_(True)
    create("fkl")(s, t, mask).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None
    assert torch.all(s.grad[~mask] == 0)


def test_zero_when_distributions_match_and_empty_mask(logits):
    zs, _, mask = logits
    for name, kw in CASES:
        assert create(name, **kw)(zs, zs.clone(), mask).item() == pytest.approx(0.0, abs=1e-12)
    empty = torch.zeros_like(mask)
    x = zs.clone().requires_grad_(True)
    out = create("rkl")(x, zs, empty)
    out.backward()
    assert out.item() == 0.0 and x.grad is not None


def test_vocabulary_mismatch_is_a_clear_error(logits):
    zs, zt, mask = logits
    with pytest.raises(ValueError, match="share the vocabulary"):
        create("fkl")(zs, zt[..., :-1], mask)


def test_registry_kind_and_params():
    for name in ("fkl", "rkl", "jsd", "tvd", "skl", "srkl", "akl"):
        spec = get_spec(name)
        assert spec.kind == "token" and spec.needs_teacher
        assert spec.defaults()["temperature"] == 1.0
    assert get_spec("jsd").defaults()["beta"] == 0.5
    with pytest.raises(ValueError, match="beta"):
        create("jsd", beta=1.5)


def test_divergence_is_abstract_and_unit_temperature_matches_the_formula(logits):
    from autokd.losses.token import TokenDivergence

    with pytest.raises(TypeError, match="abstract"):
        TokenDivergence()
    # T = 1 takes the path without the division: value and gradient are still the formula's
    zs, zt, _ = logits
    zs = zs.detach().requires_grad_(True)
    loss = create("fkl")(zs, zt)
    (g,) = torch.autograd.grad(loss, zs)
    z2 = zs.detach().requires_grad_(True)
    log_q, log_p = torch.log_softmax(z2 / 1.0, -1), torch.log_softmax(zt / 1.0, -1)
    ref = (log_p.exp() * (log_p - log_q)).sum(-1).mean()
    (g2,) = torch.autograd.grad(ref, z2)
    torch.testing.assert_close(loss, ref)
    torch.testing.assert_close(g, g2)


# ----------------------------------------------------------------------------- cached top-k teacher

from autokd.losses.token import topk_teacher  # noqa: E402


def ref_collapsed(name: str, zs: np.ndarray, zt: np.ndarray, k: int, temp: float, **kw) -> np.ndarray:
    """float64: both distributions over the teacher's top k plus one tail outcome, then the divergence."""
    q, p = _softmax(zs / temp), _softmax(zt / temp)
    top = np.argsort(-p, axis=-1, kind="stable")[..., :k]
    pk, qk = np.take_along_axis(p, top, -1), np.take_along_axis(q, top, -1)
    pc = np.concatenate([pk, 1 - pk.sum(-1, keepdims=True)], -1)
    qc = np.concatenate([qk, 1 - qk.sum(-1, keepdims=True)], -1)
    big = 60.0  # logits whose softmax is pc / qc exactly
    return ref_per_token(name, np.log(qc) + big, np.log(pc) + big, 1.0, **kw)


@pytest.mark.parametrize("name,kw", CASES)
def test_cached_topk_matches_the_collapsed_float64_formula(logits, name, kw):
    zs, zt, mask = logits
    got = create(name, temperature=2.0, chunk_tokens=3, **kw)(zs, topk_teacher(zt, 4, 2.0), mask).item()
    want = ref_collapsed(name, zs.numpy(), zt.numpy(), 4, 2.0, **kw)[mask.numpy()].mean()
    assert got == pytest.approx(want, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("name,kw", CASES)
def test_cached_full_vocabulary_equals_the_dense_loss(logits, name, kw):
    zs, zt, mask = logits
    loss = create(name, **kw)
    assert loss(zs, topk_teacher(zt, V), mask).item() == pytest.approx(loss(zs, zt, mask).item(), rel=1e-9, abs=1e-12)


def test_cached_forward_kl_drops_only_the_within_tail_term(logits):
    zs, zt, mask = logits
    dense = create("fkl")(zs, zt, mask).item()
    by_k = [create("fkl")(zs, topk_teacher(zt, k), mask).item() for k in (1, 3, 6, V)]
    assert all(a <= b + 1e-12 for a, b in zip(by_k, by_k[1:]))  # more cached tokens, closer from below
    assert by_k[-1] == pytest.approx(dense, rel=1e-9)


def test_cached_teacher_checks_temperature_and_vocabulary(logits):
    zs, zt, mask = logits
    with pytest.raises(ValueError, match="computed at temperature 1.0"):
        create("fkl", temperature=2.0)(zs, topk_teacher(zt, 4, 1.0), mask)
    with pytest.raises(ValueError, match="share the vocabulary"):
        create("fkl")(zs[..., :5], topk_teacher(zt, 4), mask)


def test_cached_teacher_gradient_and_chunks(logits):
    zs, zt, mask = logits
    teacher = topk_teacher(zt, 5)
    grads = []
    for chunk in (0, 2):
        x = zs.clone().requires_grad_(True)
        create("jsd", chunk_tokens=chunk)(x, teacher, mask).backward()
        grads.append(x.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-10, atol=1e-14)
    assert torch.all(grads[0][~mask] == 0) and grads[0].abs().sum() > 0
