"""Ranking: combination, determinism (same seed, same ranking), evolution, the teacher pass."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from autokd.models import build_model
from autokd.search.arch.proxies import ProxyBatch, teacher_signals
from autokd.search.arch.ranking import combine, oriented, proxy_ranks, rank_results
from autokd.search.arch.run import candidate_seed, run_search
from autokd.search.arch.space import validate_space

SHAPE = (1, 8, 8)
STUDENT = {"family": "cnn", "stem_width": [2, 4], "depth": [[1, 2], [1]], "width": [[2, 4], [4]]}
PROXIES = ["diswot_relation", "diswot_semantic", "naswot", "synflow", "snip", "grad_norm", "zen"]
DISTANCES = {"diswot_relation", "diswot_semantic"}  # smaller is better (DisWOT); every other proxy: larger


# ------------------------------------------------------------- independent expectations


def _better(name: str, v: float) -> float:
    """A proxy value turned so that larger is better; non-finite values are the worst."""
    if not math.isfinite(v):
        return -math.inf
    return -v if name in DISTANCES else v


def _expected_ranks(name: str, values: list[float]) -> list[Fraction]:
    """Rank 1 = best, ties share the average rank, by counting: 1 + #better + #tied/2."""
    b = [_better(name, v) for v in values]
    return [1 + Fraction(sum(o > x for o in b)) + Fraction(sum(o == x for o in b) - 1, 2) for x in b]


def _expected_order(values: dict[str, dict[str, float]], names: list[str]) -> list[str]:
    """Candidate keys best first by the mean over ``names`` of (n − rank)/(n − 1), exactly;
    equal scores by key."""
    keys = list(values)
    n = len(keys)
    score = {k: Fraction(0) for k in keys}
    for name in names:
        for k, r in zip(keys, _expected_ranks(name, [values[k][name] for k in keys])):
            score[k] += (n - r) / (n - 1) / len(names)
    return sorted(keys, key=lambda k: (-score[k], k))


@pytest.fixture(scope="module")
def setup():
    g = torch.Generator().manual_seed(0)
    batch = ProxyBatch(torch.randn(12, *SHAPE, generator=g), torch.arange(12) % 10, 10)
    torch.manual_seed(0)
    teacher = build_model("cnn", {"stem_width": 8, "depths": [1, 1], "widths": [8, 16]}, SHAPE, 10).eval()
    return batch, teacher


def _spec(**kw):
    data = {"student": STUDENT, "proxies": PROXIES, "constraints": {"latency": {"runs": 1, "warmup": 0}}}
    data.update(kw)
    return validate_space(data)


def _run(spec, setup):
    batch, teacher = setup
    return run_search(spec, batch, teacher_signals(teacher, batch), SHAPE, 10)


@pytest.fixture(scope="module")
def exhaustive_result(setup):
    return _run(_spec(), setup)


def test_orientation_and_ranks():
    assert list(oriented("diswot_relation", [0.1, 0.3])) == [-0.1, -0.3]
    assert list(proxy_ranks("diswot_relation", [0.3, 0.1, 0.2])) == [3, 1, 2]  # smaller distance is better
    assert list(proxy_ranks("naswot", [1.0, float("-inf"), 5.0, 5.0])) == [3, 4, 1.5, 1.5]  # ties average


def test_rank_and_zscore_combination():
    table = {"naswot": [1.0, 2.0, 3.0], "diswot_relation": [0.3, 0.2, 0.1], "synflow": [1e2, 1e4, 1e3]}
    r = combine(table, ["naswot", "diswot_relation"], "rank")
    np.testing.assert_allclose(r, [0.0, 0.5, 1.0])
    # synflow is z-scored on log10-spaced values: equal steps, not dominated by the 1e4
    z = combine(table, ["synflow"], "zscore")
    np.testing.assert_allclose(z, [-np.sqrt(1.5), np.sqrt(1.5), 0.0], atol=1e-12)
    with pytest.raises(ValueError):
        combine(table, ["naswot"], "sum")


def test_same_seed_same_ranking(setup, exhaustive_result):
    a, b = exhaustive_result, _run(_spec(), setup)
    assert [s.candidate.key for s in a.ranked] == [s.candidate.key for s in b.ranked]
    assert [s.values for s in a.ranked] == [s.values for s in b.ranked]
    assert a.combined == b.combined
    assert a.meta["algorithm"] == "exhaustive" and len(a.ranked) == 8


def test_scores_do_not_depend_on_visiting_order(setup, exhaustive_result):
    evo = _run(_spec(search={"algorithm": "evolution", "budget": 4, "population": 3, "sample": 2}), setup)
    by_key = {s.candidate.key: s.values for s in exhaustive_result.ranked}
    assert len(evo.ranked) == 4 and len({s.candidate.key for s in evo.ranked}) == 4
    for s in evo.ranked:
        assert s.values == by_key[s.candidate.key]
    assert candidate_seed(0, "x") == candidate_seed(0, "x") != candidate_seed(1, "x")


def test_evolution_is_seeded(setup):
    spec = lambda seed: _spec(proxies=["naswot", "synflow"], search={  # noqa: E731
        "algorithm": "evolution", "budget": 5, "population": 3, "sample": 2, "seed": seed})
    a, b = _run(spec(3), setup), _run(spec(3), setup)
    assert [s.candidate.key for s in a.ranked] == [s.candidate.key for s in b.ranked]
    assert a.meta["algorithm"] == "evolution"


def test_evolution_on_a_large_space_stays_within_budget(setup):
    big = {"family": "cnn", "stem_width": [2, 3, 4], "depth": [[1, 2], [1, 2]], "width": [[2, 3, 4], [4, 5]],
           "kernel_size": [1, 3]}
    spec = validate_space({"student": big, "proxies": ["naswot", "synflow"], "search": {"exhaustive_limit": 50,
                           "budget": 10, "population": 4, "sample": 2}, "constraints": {"latency": {"runs": 1}}})
    assert spec.space.size == 144
    res = _run(spec, setup)
    assert res.meta["algorithm"] == "evolution" and len(res.ranked) == 10


def test_the_teacher_runs_once_per_batch(setup):
    batch, teacher = setup
    calls = []
    h = teacher.register_forward_hook(lambda *a: calls.append(1))
    try:
        sig = teacher_signals(teacher, batch)
        after_signals = len(calls)
        run_search(_spec(proxies=["diswot_relation", "diswot_semantic"]), batch, sig, SHAPE, 10)
    finally:
        h.remove()
    assert after_signals == 2  # one forward for features, one for the CE gradient
    assert len(calls) == after_signals  # scoring 8 candidates never ran the teacher again


def test_ranks_and_combined_are_reported_for_every_proxy_and_baseline(exhaustive_result):
    res = exhaustive_result
    assert res.proxies == PROXIES + ["params", "flops"]
    assert all(set(s.values) == set(res.proxies) for s in res.ranked)
    assert res.combined == sorted(res.combined, reverse=True)
    for name in res.proxies:  # each proxy's ranks belong to the candidate on the same row
        assert res.ranks[name] == [float(r) for r in _expected_ranks(name, [s.values[name] for s in res.ranked])]
    assert all(s.ms["total"] > 0 for s in res.ranked)


def test_candidates_are_in_the_order_their_proxy_scores_give(exhaustive_result):
    """The ranking's order of candidates, against the order computed here from the proxy values."""
    res = exhaustive_result
    values = {s.candidate.key: s.values for s in res.ranked}
    order = [s.candidate.key for s in res.ranked]
    assert len(set(order)) == len(order) == 8
    assert order == _expected_order(values, PROXIES)
    # one proxy alone: a distance ranks ascending, a score descending, whatever the combination
    for method in ("rank", "zscore"):
        for name in ("diswot_relation", "naswot", "synflow"):
            spec = _spec(combine={"method": method, "proxies": [name]})
            again = rank_results(spec, list(reversed(res.ranked)), [], res.proxies, {})
            expected = sorted(values, key=lambda k: (-_better(name, values[k][name]), k))
            assert [s.candidate.key for s in again.ranked] == expected, (method, name)


def test_equal_rank_scores_are_exactly_equal():
    """Equal combined rank scores are exactly equal (not float noise), so the key decides."""
    table = {"naswot": [5.0, 2.0, 3.0, 4.0, 6.0, 1.0], "synflow": [6.0, 5.0, 2.0, 1.0, 3.0, 4.0]}
    score = combine(table, list(table), "rank")
    # candidates 2 and 3: ranks (4, 5) and (3, 6), both 3/10; averaging 2/5 and 1/5 in float gives
    # 0.30000000000000004, averaging 3/5 and 0 gives 0.3
    assert score[2] == score[3] == 0.3
