"""Constraints are applied before scoring and never admit an over-budget candidate."""

from __future__ import annotations

import random

import pytest
import torch

from autokd.evaluate.flops import count_macs
from autokd.models import build_model, count_params
from autokd.search.arch import run as run_mod
from autokd.search.arch.constraints import check, measure_latency
from autokd.search.arch.context import ArchSearchError
from autokd.search.arch.proxies import ProxyBatch
from autokd.search.arch.space import ConstraintSpec, LatencySpec, validate_space

SHAPE = (1, 8, 8)
SPACE = {"family": "cnn", "stem_width": [2, 4], "depth": [[1, 2], [1]], "width": [[2, 4], [4, 8]],
         "kernel_size": [1, 3]}


def _models():
    spec = validate_space({"student": SPACE})
    for c in spec.space.candidates():
        yield c, build_model(c.family, c.params, SHAPE, 10)


def test_random_budgets_never_admit_over_budget_candidates():
    models = list(_models())
    sizes = [(count_params(m), count_macs(m, SHAPE)) for _, m in models]
    rng = random.Random(0)
    lo_p, hi_p = min(s[0] for s in sizes), max(s[0] for s in sizes)
    lo_f, hi_f = min(s[1] for s in sizes), max(s[1] for s in sizes)
    for _ in range(12):
        cs = ConstraintSpec(max_params=rng.randint(lo_p, hi_p), max_flops=rng.randint(lo_f, hi_f))
        for (_, m), (p, f) in zip(models, sizes):
            v = check(m, SHAPE, cs, measure_all=False)
            assert v.admitted == (p <= cs.max_params and f <= cs.max_flops)
            if v.admitted:
                assert v.measurement.params <= cs.max_params and v.measurement.flops <= cs.max_flops
            else:
                assert v.reason and ("max_params" in v.reason or "max_flops" in v.reason)


def test_params_are_checked_first_and_stop_the_measurement():
    _, m = next(_models())
    v = check(m, SHAPE, ConstraintSpec(max_params=1, max_flops=1, max_latency_ms=1e-9))
    assert not v.admitted and v.reasons == [f"params {count_params(m)} > max_params 1"]
    assert v.measurement.flops is None and v.measurement.latency_ms is None


def test_latency_budget():
    _, m = next(_models())
    lat = LatencySpec(runs=3, warmup=1)
    assert not check(m, SHAPE, ConstraintSpec(max_latency_ms=1e-6, latency=lat)).admitted
    v = check(m, SHAPE, ConstraintSpec(max_latency_ms=1e6, latency=lat))
    assert v.admitted and 0 < v.measurement.latency_ms < 1e6
    threads = torch.get_num_threads()
    assert measure_latency(m, SHAPE, LatencySpec(threads=1, runs=2, batch_size=4)) > 0
    assert torch.get_num_threads() == threads  # restored


def test_the_search_never_scores_a_rejected_candidate(monkeypatch):
    budget = 400
    spec = validate_space({"student": SPACE, "proxies": ["naswot"],
                           "constraints": {"max_params": budget, "latency": {"runs": 1, "warmup": 0}}})
    scored_sizes = []
    real = run_mod.compute_proxy

    def spy(name, model, batch, teacher=None):
        scored_sizes.append(count_params(model))
        return real(name, model, batch, teacher)

    monkeypatch.setattr(run_mod, "compute_proxy", spy)
    batch = ProxyBatch(torch.randn(8, *SHAPE), torch.arange(8), 10)
    res = run_mod.run_search(spec, batch, None, SHAPE, 10)
    assert res.rejected and res.ranked
    assert max(scored_sizes) <= budget
    assert all(s.measurement.params <= budget for s in res.ranked)
    assert all(r.measurement.params > budget for r in res.rejected)
    assert len(res.ranked) + len(res.rejected) == spec.space.size


def test_nothing_admitted_is_an_error():
    spec = validate_space({"student": SPACE, "proxies": ["naswot"], "constraints": {"max_params": 1}})
    with pytest.raises(ArchSearchError, match="no candidate passed the constraints"):
        run_mod.run_search(spec, ProxyBatch(torch.randn(4, *SHAPE), torch.arange(4), 10), None, SHAPE, 10)
