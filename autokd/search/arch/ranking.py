"""Ranking types and how proxies combine into one score (higher is better).

A search produces :class:`Scored` candidates (admitted: their measurement and every proxy's
value) and :class:`Rejected` ones (over a budget, never scored); :func:`rank_results` turns
them into a :class:`SearchResult`, best first.

Combination (higher is better):
- ``rank``: mean over proxies of (n − rank) / (n − 1), rank 1 the best of n candidates;
- ``zscore``: mean over proxies of the z-score of the oriented value (log first for
  heavy-tailed proxies: synflow, snip, grad_norm, params, flops).
Distances (DisWOT terms) are negated before either (:func:`oriented`), so "higher is
better" holds for all. The baselines (params, flops) may be combined like any proxy. Equal
combined scores are ordered by candidate key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np
from scipy.stats import rankdata

from autokd.search.arch.constraints import Measurement
from autokd.search.arch.families import Candidate
from autokd.search.arch.proxies import PROXIES
from autokd.search.arch.space import ArchSpaceSpec


@dataclass
class Scored:
    """An admitted candidate: its measurement, every proxy's value and the milliseconds spent."""

    candidate: Candidate
    measurement: Measurement
    values: dict[str, float]
    ms: dict[str, float]
    rss_mb: float


@dataclass
class Rejected:
    """A candidate over a budget (never scored) and why."""

    candidate: Candidate
    measurement: Measurement
    reason: str
    ms: float


@dataclass
class SearchResult:
    spec: ArchSpaceSpec
    ranked: list[Scored]  # best first
    combined: list[float]  # aligned with ranked
    ranks: dict[str, list[float]]  # per proxy, aligned with ranked (1 = best)
    rejected: list[Rejected]
    proxies: list[str]  # every proxy computed (the space's plus the baselines)
    meta: dict[str, Any] = field(default_factory=dict)

    def top(self, k: int) -> list[Scored]:
        return self.ranked[:k]


def oriented(name: str, values: Iterable[float], log: bool = False) -> np.ndarray:
    """Values of proxy ``name`` turned so that higher is better (non-finite -> nan)."""
    proxy = PROXIES[name]
    v = np.asarray(list(values), dtype=np.float64)
    if log and proxy.log_scale:
        with np.errstate(divide="ignore", invalid="ignore"):
            v = np.where(v > 0, np.log(v), np.nan)
    v = np.where(np.isfinite(v), v, np.nan)
    return v if proxy.higher_is_better else -v


def proxy_ranks(name: str, values: Iterable[float]) -> np.ndarray:
    """Rank 1 = best; ties share the average rank; non-finite values rank last."""
    v = oriented(name, values)
    v = np.where(np.isnan(v), -np.inf, v)
    return rankdata(-v, method="average")


def combine(table: dict[str, list[float]], names: list[str], method: str) -> np.ndarray:
    """One score per candidate from the proxies ``names`` (higher is better)."""
    n = len(next(iter(table.values()))) if table else 0
    if n == 0:
        return np.zeros(0)
    if method == "rank":
        if n == 1:
            return np.ones(1)
        # n − rank is a multiple of 1/2, so these sums are exact: equal scores stay exactly
        # equal (and fall to the key), whatever order the terms come in
        total = np.sum([n - proxy_ranks(name, table[name]) for name in names], axis=0)
        return total / (len(names) * (n - 1))
    parts = []
    for name in names:
        if method == "zscore":
            v = oriented(name, table[name], log=True)
            finite = v[~np.isnan(v)]
            if finite.size == 0:
                parts.append(np.zeros(n))
                continue
            sd = finite.std()
            z = (v - finite.mean()) / sd if sd > 0 else np.zeros(n)
            parts.append(np.where(np.isnan(z), np.nanmin(z) if sd > 0 else 0.0, z))
        else:
            raise ValueError(f"unknown combination {method!r}; use rank or zscore")
    return np.mean(parts, axis=0)


def value_table(scored: list[Scored], names: list[str]) -> dict[str, list[float]]:
    """``{proxy: [value per candidate]}`` in the order of ``scored``."""
    return {name: [s.values[name] for s in scored] for name in names}


def combined_scores(spec: ArchSpaceSpec, scored: list[Scored], proxies: list[str]) -> np.ndarray:
    """The space's combination of its combined proxies, one score per candidate of ``scored``."""
    return combine(value_table(scored, proxies), spec.combined_proxies, spec.combine.method)


def rank_results(spec: ArchSpaceSpec, scored: list[Scored], rejected: list[Rejected], proxies: list[str],
                 meta: dict[str, Any]) -> SearchResult:
    """Sort by the combined score (ties by key) and attach per-proxy ranks."""
    table = value_table(scored, proxies)
    combined = combine(table, spec.combined_proxies, spec.combine.method)
    order = sorted(range(len(scored)), key=lambda i: (-combined[i], scored[i].candidate.key))
    ranks = {name: proxy_ranks(name, table[name]) for name in proxies}
    return SearchResult(
        spec=spec,
        ranked=[scored[i] for i in order],
        combined=[float(combined[i]) for i in order],
        ranks={name: [float(r[i]) for i in order] for name, r in ranks.items()},
        rejected=rejected,
        proxies=proxies,
        meta=meta,
    )
