"""--validate helpers: candidate selection over the ranking and the parameter band, τ and ρ."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import kendalltau, spearmanr

from autokd.search.arch.validate import band_limits, densest_budget, select_for_validation, spread, tau_rho


def test_tau_rho_match_scipy_and_handle_degenerate_input():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=15), rng.normal(size=15)
    out = tau_rho(list(x), list(y))
    assert out["n"] == 15
    assert out["tau"] == pytest.approx(kendalltau(x, y).statistic)
    assert out["rho"] == pytest.approx(spearmanr(x, y).statistic)
    assert tau_rho([1, 2, 3], [1, 2, 3])["tau"] == pytest.approx(1.0)
    assert tau_rho([1, 2], [2, 1])["tau"] is None  # n < 3
    assert tau_rho([1, 1, 1], [1, 2, 3])["tau"] is None  # constant
    assert tau_rho([None, 1, 2, 3], [5, 1, 2, 3])["n"] == 3  # missing values are dropped


def test_spread_is_even_and_keeps_ends():
    items = list(range(100, 110))
    assert spread(items, 3) == [100, 104, 109]  # positions round(linspace(0, 9, 3)), half to even
    assert spread(items, 20) == items
    assert spread(items, 0) == [] and spread([], 3) == []


def test_densest_budget_and_band():
    params = [100, 1000, 1010, 1020, 1090, 5000, 5600]
    b = densest_budget(params, 0.1)
    lo, hi = band_limits(b, 0.1)
    assert sum(lo <= p <= hi for p in params) == 4
    assert b in params


def test_selection_mixes_band_and_whole_ranking():
    rng = np.random.default_rng(1)
    params = list(rng.integers(1000, 20000, size=120))  # ranking order
    budget = 10000
    chosen = select_for_validation(params, 24, budget, 0.1, 0.5)
    lo, hi = band_limits(budget, 0.1)
    inside = [i for i in chosen if lo <= params[i] <= hi]
    assert len(chosen) == 24 == len(set(chosen)) and chosen == sorted(chosen)
    assert len(inside) >= 12
    assert chosen[0] == 0 or lo <= params[0] <= hi or 0 in chosen  # the top of the ranking is covered
    assert max(chosen) >= 110  # ... and its bottom
    assert len(select_for_validation(params[:10], 24, budget, 0.1, 0.5)) == 10  # never more than exist
