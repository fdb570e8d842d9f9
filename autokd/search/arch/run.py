"""Run a search: score candidates one at a time, rank them, write the reports.

Candidates are built, checked against the constraints, scored and freed one at a time (the
teacher's signals are computed once, before the loop), so memory stays flat however large
the space. Each candidate's weights are initialised with a torch seed derived from the
search seed and the candidate's key, so a candidate gets the same score whatever order it is
visited in: same seed, same ranking. How scores combine into the ranking is
:mod:`autokd.search.arch.ranking`.

Algorithms: ``exhaustive`` enumerates the space; regularized evolution (Real et al., AAAI
2019) keeps a population of ``population`` admitted candidates; each cycle samples
``sample`` of them, mutates the fittest (one gene) and adds the child, removing the oldest.
Fitness is the combined score over every candidate scored so far. It stops after ``budget``
distinct admitted candidates (or when the space runs out).
"""

from __future__ import annotations

import gc
import os
import random
import resource
import statistics
import time
import zlib
from pathlib import Path
from typing import Any, Callable

import torch

from autokd.models.registry import build_model
from autokd.search.arch.constraints import check
from autokd.search.arch.context import ArchSearchError, build_context, proxy_batch, signals
from autokd.search.arch.families import Candidate
from autokd.search.arch.proxies import BASELINES, ProxyBatch, TeacherSignals, compute_proxy
from autokd.search.arch.ranking import Rejected, Scored, SearchResult, combined_scores, rank_results
from autokd.search.arch.report import write_ranking, write_search_manifest, write_validation
from autokd.search.arch.space import ArchSpaceSpec, load_space
from autokd.search.arch.validate import validate_ranking


def candidate_seed(seed: int, key: str) -> int:
    """The torch seed a candidate is initialised with (independent of visiting order)."""
    return zlib.crc32(f"{seed}:{key}".encode())


def rss_mb() -> float:
    """Current resident set size of this process in MiB (Linux /proc; peak elsewhere)."""
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        return peak_rss_mb()


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------------------- scoring


class Scorer:
    """Build, constrain, score and free one candidate."""

    def __init__(self, spec: ArchSpaceSpec, batch: ProxyBatch, teacher: TeacherSignals | None,
                 input_shape: tuple[int, ...], num_classes: int, input_dtype: torch.dtype = torch.float32):
        self.spec, self.batch, self.teacher, self.input_dtype = spec, batch, teacher, input_dtype
        self.input_shape, self.num_classes = tuple(input_shape), int(num_classes)
        self.proxies = list(spec.proxies) + [b for b in BASELINES if b not in spec.proxies]

    def __call__(self, cand: Candidate) -> Scored | Rejected:
        t0 = time.perf_counter()
        torch.manual_seed(candidate_seed(self.spec.search.seed, cand.key))
        model = build_model(cand.family, cand.params, self.input_shape, self.num_classes)
        t_build = time.perf_counter()
        verdict = check(model, self.input_shape, self.spec.constraints, dtype=self.input_dtype)
        t_check = time.perf_counter()
        if not verdict.admitted:
            del model
            return Rejected(cand, verdict.measurement, verdict.reason or "", (t_check - t0) * 1000)
        values, ms = {}, {"build": (t_build - t0) * 1000, "constraints": (t_check - t_build) * 1000}
        for name in self.proxies:
            t = time.perf_counter()
            values[name] = compute_proxy(name, model, self.batch, self.teacher)
            ms[name] = (time.perf_counter() - t) * 1000
        ms["total"] = (time.perf_counter() - t0) * 1000
        del model
        return Scored(cand, verdict.measurement, values, ms, rss_mb())


# ------------------------------------------------------------------------ algorithms

Evaluate = Callable[[Candidate], "Scored | Rejected"]


def exhaustive(spec: ArchSpaceSpec, evaluate: Evaluate, on_result=None) -> tuple[list[Scored], list[Rejected]]:
    """Every candidate of the space, in enumeration order."""
    scored, rejected = [], []
    for i, cand in enumerate(spec.space.candidates()):
        res = evaluate(cand)
        (scored if isinstance(res, Scored) else rejected).append(res)
        if on_result:
            on_result(i, res)
        if i % 64 == 63:
            gc.collect()
    return scored, rejected


def regularized_evolution(spec: ArchSpaceSpec, evaluate: Evaluate, proxies: list[str],
                          on_result=None) -> tuple[list[Scored], list[Rejected]]:
    """Regularized (aging) evolution over genomes, seeded by ``spec.search.seed``."""
    cfg, space = spec.search, spec.space
    rng = random.Random(cfg.seed)
    seen: dict[tuple[int, ...], Scored | Rejected] = {}
    history: list[Scored] = []
    rejected: list[Rejected] = []
    size = space.size
    max_visits = max(20 * cfg.budget, 200)
    visits = 0

    def visit(genome) -> Scored | None:
        nonlocal visits
        visits += 1
        if genome in seen:
            res = seen[genome]
            return res if isinstance(res, Scored) else None
        res = evaluate(space.decode(genome))
        seen[genome] = res
        if isinstance(res, Scored):
            history.append(res)
        else:
            rejected.append(res)
        if on_result:
            on_result(len(seen) - 1, res)
        if len(seen) % 64 == 0:
            gc.collect()
        return res if isinstance(res, Scored) else None

    def done() -> bool:
        return len(history) >= cfg.budget or len(seen) >= size or visits >= max_visits

    population: list[Scored] = []
    while len(population) < cfg.population and not done():
        s = visit(space.random_genome(rng))
        if s is not None:
            population.append(s)
    while not done() and population:
        fitness = dict(zip((h.candidate.genome for h in history), combined_scores(spec, history, proxies)))
        tournament = rng.sample(population, min(cfg.sample, len(population)))
        parent = max(tournament, key=lambda s: (fitness[s.candidate.genome], s.candidate.key))
        child = visit(space.mutate(parent.candidate.genome, rng))
        if child is not None:
            population.append(child)
            population.pop(0)
    return history, rejected


def choose_algorithm(spec: ArchSpaceSpec) -> str:
    if spec.search.algorithm != "auto":
        return spec.search.algorithm
    return "exhaustive" if spec.space.size <= spec.search.exhaustive_limit else "evolution"


def run_search(spec: ArchSpaceSpec, batch: ProxyBatch, teacher: TeacherSignals | None,
               input_shape: tuple[int, ...], num_classes: int, progress: bool = False,
               input_dtype: torch.dtype = torch.float32) -> SearchResult:
    """Score the space's candidates and rank them (``input_dtype``: ``torch.long`` for token ids)."""
    scorer = Scorer(spec, batch, teacher, input_shape, num_classes, input_dtype)
    algorithm = choose_algorithm(spec)
    rss_start = rss_mb()
    t0 = time.perf_counter()

    def on_result(i, res):
        if progress and (i < 3 or i % 25 == 24):
            what = f"{res.ms['total']:.0f} ms" if isinstance(res, Scored) else f"rejected ({res.reason})"
            print(f"[arch] {i + 1}: {res.candidate.key} {what}", flush=True)

    if algorithm == "exhaustive":
        scored, rejected = exhaustive(spec, scorer, on_result)
    else:
        scored, rejected = regularized_evolution(spec, scorer, scorer.proxies, on_result)
    seconds = time.perf_counter() - t0
    if not scored:
        reasons = sorted({r.reason for r in rejected})[:3]
        raise ArchSearchError(f"no candidate passed the constraints ({len(rejected)} rejected: {'; '.join(reasons)})")
    per_cand = [s.ms["total"] / 1000 for s in scored]
    meta = {
        "algorithm": algorithm,
        "seed": spec.search.seed,
        "space_size": spec.space.size,
        "visited": len(scored) + len(rejected),
        "admitted": len(scored),
        "rejected": len(rejected),
        "seconds": seconds,
        "median_s_per_candidate": statistics.median(per_cand),
        "max_s_per_candidate": max(per_cand),
        "rss_mb_start": rss_start,
        "rss_mb_first_candidate": scored[0].rss_mb,
        "rss_mb_last_candidate": scored[-1].rss_mb,
        "peak_rss_mb": peak_rss_mb(),
    }
    return rank_results(spec, scored, rejected, scorer.proxies, meta)


# ----------------------------------------------------------------------- entry point


def run_arch_search(
    space: str | Path | ArchSpaceSpec,
    out: str | Path = "searches",
    top_k: int | None = None,
    validate: int = 0,
    root: str | Path | None = None,
    validate_epochs: int | None = None,
    seed: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Load a space, score and rank it, write ``<out>/<name>/ranking.{json,csv,md}`` and
    ``shortlist.yaml``; with ``validate > 0`` distill that many candidates and correlate.

    Returns a summary: the output folder, the files written, the search meta and (with
    ``validate``) the correlation table.
    """
    spec = load_space(space) if not isinstance(space, ArchSpaceSpec) else space
    if seed is not None:
        spec.search.seed = seed
    if top_k is not None:
        spec.top_k = top_k
    if validate_epochs is not None:
        spec.validation.epochs = validate_epochs
    ctx = build_context(spec, root=root, need_teacher_outputs=validate > 0, progress=progress)
    batch = proxy_batch(ctx.data, spec.batch, ctx.task)
    t_teacher = time.perf_counter()
    teacher = signals(ctx, batch)
    teacher_ms = (time.perf_counter() - t_teacher) * 1000
    result = run_search(spec, batch, teacher, ctx.input_shape, ctx.num_classes, progress=progress,
                        input_dtype=ctx.task.input_dtype)
    result.meta["teacher_ms"] = teacher_ms
    out_dir = Path(out) / spec.name
    files = write_ranking(result, ctx, out_dir)
    summary: dict[str, Any] = {"out_dir": str(out_dir), "files": files, "meta": result.meta,
                               "top": [s.candidate.key for s in result.top(spec.top_k)]}
    if validate > 0:
        validation = validate_ranking(result, ctx, validate, out_dir, progress=progress)
        summary["files"] += write_validation(validation, out_dir)
        summary["validation"] = validation["correlations"]
    write_search_manifest(out_dir, ctx, result, summary["files"])
    return summary
