"""Logit and label losses against their formulas, written out here independently in float64."""

from __future__ import annotations

import math

import pytest
import torch

from autokd.losses import available, create, get_spec

B, K = 6, 7
DT = torch.float64


def make(seed: int = 0, b: int = B, k: int = K, scale: float = 3.0):
    g = torch.Generator().manual_seed(seed)
    s = (scale * torch.randn(b, k, generator=g, dtype=DT)).requires_grad_(True)
    t = (scale * torch.randn(b, k, generator=g, dtype=DT)).requires_grad_(True)
    y = torch.randint(0, k, (b,), generator=g)
    return s, t, y


# ---------------------------------------------------------------- independent reference formulas


def log_softmax_ref(z: torch.Tensor) -> torch.Tensor:
    return z - torch.logsumexp(z, dim=-1, keepdim=True)


def kl_rows(t_logits: torch.Tensor, s_logits: torch.Tensor) -> torch.Tensor:
    """Σ_k p_t (log p_t − log p_s) per row."""
    lt, ls = log_softmax_ref(t_logits), log_softmax_ref(s_logits)
    return (lt.exp() * (lt - ls)).sum(-1)


def kl_list(p: list[float], q: list[float]) -> float:
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q) if pi > 0)


def probs(z: torch.Tensor) -> list[float]:
    e = [math.exp(v) for v in z.tolist()]
    total = sum(e)
    return [v / total for v in e]


def smoothed_ce_ref(z, y, eps):
    k = z.shape[1]
    q = torch.full_like(z, eps / k)
    q[torch.arange(z.shape[0]), y] += 1 - eps
    return -(q * log_softmax_ref(z)).sum(1).mean()


# ---------------------------------------------------------------- generic properties


LOGIT_METHODS = [n for n in available() if get_spec(n).kind in ("logit", "label")]


@pytest.mark.parametrize("name", LOGIT_METHODS)
def test_gradients_reach_student_never_teacher(name):
    s, t, y = make(1)
    loss = create(name).double()
    out = loss(s, t, y)
    out.backward()
    assert s.grad is not None and torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0
    assert t.grad is None or torch.all(t.grad == 0)


@pytest.mark.parametrize("name", [n for n in LOGIT_METHODS if get_spec(n).needs_teacher])
def test_zero_for_identical_student_and_teacher(name):
    s, _, y = make(2)
    loss = create(name).double()
    out = loss(s, s.detach().clone(), y)
    assert abs(out.item()) < 1e-10


def test_label_loss_accepts_no_teacher():
    s, _, y = make(3)
    assert torch.isfinite(create("ls")(s, None, y))


def test_shape_errors_are_clear():
    s, t, y = make(4)
    with pytest.raises(ValueError, match="teacher logits shape"):
        create("kd")(s, t[:, :3], y)
    with pytest.raises(ValueError, match="targets"):
        create("dkd")(s, t, y[:2])


# ---------------------------------------------------------------- kd


@pytest.mark.parametrize("T", [1.0, 2.5, 4.0])
def test_kd_matches_formula_and_t2_scaling(T):
    s, t, y = make(5)
    value = create("kd", temperature=T)(s, t, y)
    unscaled = kl_rows(t.detach() / T, s.detach() / T).mean()
    assert torch.allclose(value, T**2 * unscaled, atol=1e-12)
    # T² reaches the gradient too: ∂/∂s = T·(p_s − p_t)/B (Hinton et al.), not (p_s − p_t)/(T·B)
    value.backward()
    p_s, p_t = (log_softmax_ref(z.detach() / T).exp() for z in (s, t))
    assert torch.allclose(s.grad, T * (p_s - p_t) / B, atol=1e-12)


# ---------------------------------------------------------------- dkd


def dkd_reference(s, t, y, T, alpha, beta):
    """Per-sample TCKD / NCKD the way the authors compute them (mask by −1000, float64)."""
    s, t = s.detach(), t.detach()
    gt = torch.zeros_like(s).scatter_(1, y[:, None], 1.0)
    ps, pt = torch.softmax(s / T, 1), torch.softmax(t / T, 1)
    bs = torch.stack([(ps * gt).sum(1), (ps * (1 - gt)).sum(1)], 1)
    bt = torch.stack([(pt * gt).sum(1), (pt * (1 - gt)).sum(1)], 1)
    tckd = (bt * (bt.log() - bs.log())).sum(1)
    lt2 = log_softmax_ref(t / T - 1000.0 * gt)
    ls2 = log_softmax_ref(s / T - 1000.0 * gt)
    nckd = (lt2.exp() * (lt2 - ls2) * (1 - gt)).sum(1)
    loss = T**2 * (alpha * tckd.mean() + beta * nckd.mean())
    return tckd, nckd, pt.gather(1, y[:, None]).squeeze(1), loss


def test_dkd_components_and_loss_match_reference():
    s, t, y = make(6)
    loss = create("dkd", temperature=3.0, alpha=0.7, beta=5.0)
    c = loss.components(s, t, y)
    tckd, nckd, p_y, ref = dkd_reference(s, t, y, 3.0, 0.7, 5.0)
    assert torch.allclose(c["tckd"], tckd, atol=1e-10)
    assert torch.allclose(c["nckd"], nckd, atol=1e-10)
    assert torch.allclose(c["p_target_t"], p_y, atol=1e-12)
    assert torch.allclose(loss(s, t, y), ref, atol=1e-10)  # no on_epoch_start yet: factor 1


def test_dkd_identity_kl_equals_tckd_plus_weighted_nckd():
    for seed in range(5):
        s, t, y = make(10 + seed, scale=5.0)
        c = create("dkd", temperature=2.0).components(s, t, y)
        kl = kl_rows(t.detach() / 2.0, s.detach() / 2.0)
        assert torch.allclose(c["kl"], kl, atol=1e-12)
        assert torch.allclose(c["kl"], c["tckd"] + (1 - c["p_target_t"]) * c["nckd"], atol=1e-10, rtol=0)


def test_dkd_warmup_follows_authors_schedule():
    s, t, y = make(7)
    loss = create("dkd", warmup_epochs=20)
    full = loss(s, t, y).item()
    assert loss.warmup_factor == 1.0  # before any on_epoch_start
    for epoch, factor in [(0, 1 / 20), (4, 5 / 20), (18, 19 / 20), (19, 1.0), (50, 1.0)]:
        loss.on_epoch_start(epoch, 100)
        assert loss(s, t, y).item() == pytest.approx(factor * full, rel=1e-12)
    no_warmup = create("dkd", warmup_epochs=0)
    no_warmup.on_epoch_start(0, 10)
    assert no_warmup(s, t, y).item() == pytest.approx(full, rel=1e-12)


# ---------------------------------------------------------------- cakd


def cakd_reference(s, t, y, T, k):
    """Per-sample BCD, SCD, WCD, p_S, p_W and the strong sets, by plain Python loops."""
    out = {"bcd": [], "scd": [], "wcd": [], "p_strong": [], "p_weak": [], "sets": []}
    for b in range(s.shape[0]):
        target = int(y[b])
        ranked = sorted((c for c in range(s.shape[1]) if c != target), key=lambda c: -float(t[b, c].detach()))
        S = [target] + ranked[: k - 1]
        W = [c for c in range(s.shape[1]) if c not in S]
        ps, pt = probs(s[b].detach() / T), probs(t[b].detach() / T)
        pS_s, pS_t = sum(ps[c] for c in S), sum(pt[c] for c in S)
        pW_s, pW_t = sum(ps[c] for c in W), sum(pt[c] for c in W)
        out["bcd"].append(kl_list([pS_t, pW_t], [pS_s, pW_s]))
        out["scd"].append(kl_list([pt[c] / pS_t for c in S], [ps[c] / pS_s for c in S]))
        out["wcd"].append(kl_list([pt[c] / pW_t for c in W], [ps[c] / pW_s for c in W]))
        out["p_strong"].append(pS_t)
        out["p_weak"].append(pW_t)
        out["sets"].append(set(S))
    return {key: (v if key == "sets" else torch.tensor(v, dtype=DT)) for key, v in out.items()}


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_cakd_components_match_reference_and_identity(k):
    s, t, y = make(20 + k, scale=4.0)
    T = 3.0
    loss = create("cakd", temperature=T, strong_k=k)
    c = loss.components(s, t, y)
    ref = cakd_reference(s, t, y, T, k)
    mask = loss.strong_mask(t.detach(), y)
    assert [set(torch.nonzero(row).flatten().tolist()) for row in mask] == ref["sets"]
    assert all(len(S) == k for S in ref["sets"])
    for key in ("bcd", "scd", "wcd", "p_strong", "p_weak"):
        assert torch.allclose(c[key], ref[key], atol=1e-10, rtol=0), key
    kl = kl_rows(t.detach() / T, s.detach() / T)
    assert torch.allclose(kl, c["bcd"] + c["p_strong"] * c["scd"] + c["p_weak"] * c["wcd"], atol=1e-10, rtol=0)
    assert torch.allclose(kl, ref["bcd"] + ref["p_strong"] * ref["scd"] + ref["p_weak"] * ref["wcd"], atol=1e-10)


def test_cakd_strong_set_when_target_is_among_teacher_top():
    t = torch.tensor([[9.0, 8.0, 7.0, 6.0, 5.0, 4.0]], dtype=DT)  # ranking 0 > 1 > 2 > ...
    s = torch.zeros_like(t)
    loss = create("cakd", strong_k=3)
    on_top = loss.strong_mask(t, torch.tensor([0]))  # target is the teacher's top class
    assert torch.nonzero(on_top[0]).flatten().tolist() == [0, 1, 2]
    second = loss.strong_mask(t, torch.tensor([1]))  # target ranked 2nd: next one fills its place
    assert torch.nonzero(second[0]).flatten().tolist() == [0, 1, 2]
    low = loss.strong_mask(t, torch.tensor([5]))  # target ranked last
    assert torch.nonzero(low[0]).flatten().tolist() == [0, 1, 5]
    assert torch.isfinite(loss(s, t, torch.tensor([5])))


def test_cakd_weights_each_part_by_its_parameter():
    s, t, y = make(30, scale=4.0)
    T = 4.0
    ref = cakd_reference(s, t, y, T, 3)
    for wb, ws, ww in [(1, 1, 1), (2.0, 0.0, 0.0), (0.0, 3.0, 0.0), (0.0, 0.0, 0.5), (0.3, 1.7, 4.0)]:
        value = create("cakd", temperature=T, bcd_weight=wb, scd_weight=ws, wcd_weight=ww)(s, t, y)
        expected = T**2 * (wb * ref["bcd"] + ws * ref["p_strong"] * ref["scd"] + ww * ref["p_weak"] * ref["wcd"]).mean()
        assert torch.allclose(value, expected, atol=1e-10), (wb, ws, ww)
    # all weights 1: exactly KD
    assert torch.allclose(create("cakd", temperature=T)(s, t, y), create("kd", temperature=T)(s, t, y), atol=1e-12)


def test_cakd_with_one_strong_class_is_dkd_decomposition():
    s, t, y = make(31)
    c = create("cakd", strong_k=1).components(s, t, y)
    d = create("dkd").components(s, t, y)
    assert torch.allclose(c["bcd"], d["tckd"], atol=1e-12)
    assert torch.allclose(c["wcd"], d["nckd"], atol=1e-12)
    assert torch.allclose(c["scd"], torch.zeros_like(c["scd"]), atol=1e-15)


def test_cakd_rejects_strong_set_covering_all_classes():
    s, t, y = make(32, k=3)
    with pytest.raises(ValueError, match="strong_k"):
        create("cakd", strong_k=3)(s, t, y)


# ---------------------------------------------------------------- normkd / lskd


def test_normkd_matches_formula():
    s, t, y = make(40)
    for t_norm in (1.0, 1.5):
        value = create("normkd", t_norm=t_norm)(s, t, y)
        sd, td = s.detach(), t.detach()
        Ts = t_norm * sd.std(dim=1, unbiased=True, keepdim=True)
        Tt = t_norm * td.std(dim=1, unbiased=True, keepdim=True)
        per = kl_rows(td / Tt, sd / Ts) * Tt.squeeze(1) ** 2
        assert torch.allclose(value, per.mean(), atol=1e-12)


def test_normkd_is_scale_invariant_in_the_logits_up_to_teacher_t2():
    # dividing each side by its own std makes the KL independent of the logit scale;
    # only the teacher-side T² factor scales (quadratically)
    s, t, y = make(41)
    loss = create("normkd")
    assert torch.allclose(loss(3 * s, 2 * t, y), 4 * loss(s, t, y), atol=1e-10)


def test_lskd_matches_formula():
    s, t, y = make(42)
    T = 2.0
    value = create("lskd", temperature=T)(s, t, y)

    def z(x):
        x = x.detach()
        m = x.mean(1, keepdim=True)
        sd = ((x - m) ** 2).sum(1, keepdim=True).div(x.shape[1] - 1).sqrt()
        return (x - m) / (1e-7 + sd)

    assert torch.allclose(value, T**2 * kl_rows(z(t) / T, z(s) / T).mean(), atol=1e-12)
    # standardisation: shifting and rescaling the student logits changes nothing
    assert torch.allclose(create("lskd")(5 * s + 3, t, y), value, atol=1e-6)


# ---------------------------------------------------------------- clkd


def test_clkd_matches_formula():
    s, t, y = make(50, b=8)
    T, wi, wc, wr = 3.0, 0.5, 2.0, 7.0
    loss = create("clkd", temperature=T, instance_weight=wi, class_weight=wc, correlation_weight=wr)
    sd, td = s.detach(), t.detach()
    instance = T**2 * kl_rows(td / T, sd / T).mean()
    class_level = T**2 * kl_rows(td.t() / T, sd.t() / T).mean()  # softmax over the batch for each class
    Cs = torch.corrcoef(torch.softmax(sd / T, 1).t())
    Ct = torch.corrcoef(torch.softmax(td / T, 1).t())
    corr = ((Cs - Ct) ** 2).sum() / K**2
    c = loss.components(s, t)
    assert torch.allclose(c["instance"], instance, atol=1e-12)
    assert torch.allclose(c["class"], class_level, atol=1e-12)
    assert torch.allclose(c["correlation"], corr, atol=1e-10)
    assert torch.allclose(loss(s, t, y), wi * instance + wc * class_level + wr * corr, atol=1e-10)
    assert torch.allclose(create("clkd", class_weight=0, correlation_weight=0)(s, t, y), create("kd")(s, t, y))


def test_clkd_single_sample_batch_is_finite():
    s, t, y = make(51, b=1)
    out = create("clkd")(s, t, y)
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(s.grad).all()


# ---------------------------------------------------------------- ctkd


def ctkd_reference_grad(theta0, s, t, lo, hi):
    """Loss and d loss / d theta without any gradient reversal."""
    theta = torch.tensor([theta0], dtype=DT, requires_grad=True)
    T = lo + (hi - lo) * torch.sigmoid(theta)
    value = (T**2 * kl_rows(t.detach() / T, s.detach() / T).mean()).squeeze()
    (g,) = torch.autograd.grad(value, theta)
    return value.detach(), g


def test_ctkd_value_and_initial_temperature():
    s, t, y = make(60)
    loss = create("ctkd").double()
    assert loss.temperature == pytest.approx(1 + 20 / (1 + math.exp(-1)), rel=1e-12)  # authors' θ₀ = 1
    assert loss.theta.item() == pytest.approx(1.0, abs=1e-9)
    T = loss.temperature
    assert torch.allclose(loss(s, t, y), T**2 * kl_rows(t.detach() / T, s.detach() / T).mean(), atol=1e-10)
    custom = create("ctkd", init_temperature=4.0, min_temperature=2.0, max_temperature=10.0)
    assert custom.temperature == pytest.approx(4.0, rel=1e-6)


def test_ctkd_temperature_is_a_learnable_parameter():
    loss = create("ctkd")
    params = list(loss.parameters())
    assert len(params) == 1 and params[0] is loss.theta and params[0].requires_grad


def test_ctkd_gradient_reversal_flips_temperature_gradient():
    s, t, y = make(61)
    lo, hi = 1.0, 21.0
    loss = create("ctkd", min_temperature=lo, max_temperature=hi).double()
    loss.on_epoch_start(9, 100)  # end of the 10-epoch ramp
    assert loss.grl_lambda == pytest.approx(1.0)
    value = loss(s, t, y)
    value.backward()
    ref_value, ref_grad = ctkd_reference_grad(loss.theta.item(), s, t, lo, hi)
    assert torch.allclose(value.detach(), ref_value, atol=1e-12)
    assert ref_grad.abs().item() > 1e-8
    assert torch.allclose(loss.theta.grad, -ref_grad, atol=1e-12)  # sign flipped, strength 1
    # the student's gradient is not reversed: same as KD at the same temperature
    s2 = s.detach().clone().requires_grad_(True)
    create("kd", temperature=loss.temperature)(s2, t, y).backward()
    assert torch.allclose(s.grad, s2.grad, atol=1e-12)


def test_ctkd_lambda_scales_the_reversed_gradient():
    s, t, y = make(62)
    loss = create("ctkd", lambda_min=0.0, lambda_max=0.5, schedule_epochs=4).double()
    loss.on_epoch_start(1, 10)  # authors' 1-based epoch 2 of 4: ramp (1 − cos(π/2)) / 2 = 0.5
    assert loss.grl_lambda == pytest.approx(0.25)
    loss(s, t, y).backward()
    _, ref_grad = ctkd_reference_grad(loss.theta.item(), s, t, 1.0, 21.0)
    assert torch.allclose(loss.theta.grad, -0.25 * ref_grad, atol=1e-12)


def test_ctkd_cosine_schedule():
    loss = create("ctkd")  # λ: 0 → 1 over 10 epochs
    E = 10
    expected_first = (1 - math.cos(math.pi / E)) / 2
    assert loss.grl_lambda == pytest.approx(expected_first)  # before any call: epoch 0
    values = []
    for epoch in range(15):
        loss.on_epoch_start(epoch, 15)
        values.append(loss.grl_lambda)
        i = min(epoch + 1, E)
        assert loss.grl_lambda == pytest.approx((1 - math.cos(math.pi * i / E)) / 2)
    assert values == sorted(values) and values[-1] == pytest.approx(1.0)


def test_ctkd_temperature_stays_in_range_after_updates():
    s, t, y = make(63)
    loss = create("ctkd", min_temperature=2.0, max_temperature=6.0, init_temperature=4.0).double()
    loss.on_epoch_start(20, 30)
    opt = torch.optim.SGD(loss.parameters(), lr=50.0)
    for _ in range(20):
        opt.zero_grad()
        loss(s, t, y).backward()
        opt.step()
        assert 2.0 <= loss.temperature <= 6.0


# ---------------------------------------------------------------- ls


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_ls_matches_smoothed_cross_entropy(eps):
    s, t, y = make(70)
    value = create("ls", epsilon=eps)(s, t, y)
    assert torch.allclose(value, smoothed_ce_ref(s.detach(), y, eps), atol=1e-12)


def test_ls_ignores_the_teacher():
    s, t, y = make(71)
    loss = create("ls")
    assert torch.equal(loss(s, t, y), loss(s, 10 * t, y))
    assert get_spec("ls").needs_teacher is False
