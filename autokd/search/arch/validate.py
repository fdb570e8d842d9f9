"""``--validate N``: does the ranking predict the distilled student's quality on *this* data?

N candidates are chosen over the ranking — half of them (``validation.band_share``) spread
over the candidates inside a parameter band (budget ± ``validation.band``; default budget:
the densest such window), the rest spread evenly over the whole ranking — and each is
distilled with the pipeline's own recipe: the pipeline spec with ``student.model`` set to the
candidate and ``student.train.epochs`` set to the short schedule, set up
(:func:`~autokd.stages.setup`), and built and tested by the hyperparameter search's trial task
of the pipeline's task (:mod:`autokd.search.hparams.tasks`: the ``distill`` stage's student,
objective and checkpoint fingerprint, the ``evaluate`` stage's test metric), trained by the one
training loop (:func:`autokd.train.train`, per-epoch checkpoints, so an interrupted validation
resumes). The target (:attr:`autokd.search.arch.tasks.ArchTask.target`) is the test accuracy of a
classifier or the test perplexity of a language model; each row holds it under that name.

Reported per proxy (oriented so higher is better), for the combined score and for the
parameter count and FLOPs: Kendall τ-b and Spearman ρ against the target oriented so higher is
better (accuracy; −perplexity) over all validated candidates, and the same inside the band,
where the parameter count cannot help. With at least 5 candidates, also the few-shot calibrated
ranking (``calibrated_loo``: each candidate scored by a model fitted on the others, on every
computed proxy and log params, :mod:`autokd.search.arch.calibrate`) and the undistilled
candidates it ranks best.
"""

from __future__ import annotations

import bisect
import json
import math
import shutil
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from scipy.stats import kendalltau, spearmanr

from autokd.search.arch.calibrate import Observation, calibrated_report
from autokd.search.arch.context import SearchContext
from autokd.search.arch.families import Candidate
from autokd.search.arch.ranking import SearchResult, oriented
from autokd.stages import setup
from autokd.train.device import resolve_device
from autokd.train.trainer import train
from autokd.utils.io import atomic_write_json

PARTIAL = "validation.partial.json"


def densest_budget(params: Sequence[int], rel: float) -> int:
    """The parameter count b (one of ``params``) whose window [b(1−rel), b(1+rel)] holds the
    most candidates (ties: the smaller b)."""
    xs = sorted(params)
    best, best_n = xs[0], -1
    for b in xs:
        n = bisect.bisect_right(xs, b * (1 + rel)) - bisect.bisect_left(xs, b * (1 - rel))
        if n > best_n:
            best, best_n = b, n
    return int(best)


def band_limits(budget: int, rel: float) -> tuple[float, float]:
    return budget * (1 - rel), budget * (1 + rel)


def spread(items: Sequence[int], m: int) -> list[int]:
    """``m`` items evenly spaced over ``items`` (first and last included), in order."""
    if m <= 0 or not items:
        return []
    if m >= len(items):
        return list(items)
    if m == 1:
        return [items[0]]
    pos = sorted({int(round(p)) for p in np.linspace(0, len(items) - 1, m)})
    return [items[p] for p in pos]


def select_for_validation(params: Sequence[int], n: int, budget: int, rel: float, share: float) -> list[int]:
    """Ranking positions to distill: ``round(n·share)`` spread inside the band, the rest
    spread over the positions not chosen yet. ``params`` is in ranking order."""
    lo, hi = band_limits(budget, rel)
    inside = [i for i, p in enumerate(params) if lo <= p <= hi]
    chosen = spread(inside, min(len(inside), int(round(n * share))))
    rest = [i for i in range(len(params)) if i not in set(chosen)]
    chosen += spread(rest, min(len(rest), n - len(chosen)))
    return sorted(chosen)


def tau_rho(x: Sequence[float], y: Sequence[float]) -> dict[str, Any]:
    """Kendall τ-b and Spearman ρ of paired values (None when undefined: n < 3 or constant)."""
    pairs = [(a, b) for a, b in zip(x, y) if a is not None and b is not None and math.isfinite(a)]
    out: dict[str, Any] = {"tau": None, "rho": None, "n": len(pairs)}
    if len(pairs) < 3:
        return out
    xa, ya = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    if np.ptp(xa) == 0 or np.ptp(ya) == 0:
        return out
    out["tau"] = float(kendalltau(xa, ya).statistic)
    out["rho"] = float(spearmanr(xa, ya).statistic)
    return out


def candidate_spec(ctx: SearchContext, cand: Candidate, epochs: int):
    """The pipeline spec with ``student.model`` set to ``cand`` and the short schedule."""
    return ctx.student_spec(cand.model, {"student.train.epochs": epochs})


def distill_candidate(ctx: SearchContext, spec, inputs, name: str, checkpoint_dir: Path | None) -> dict[str, Any]:
    """Distill ``spec``'s student (a candidate) as the pipeline's ``distill`` stage does and test
    it as its ``evaluate`` stage does (the trial task's build and test metrics)."""
    task = ctx.task.search_task()
    device, amp = setup(spec)
    parts = task.build(spec, ctx.layout.root, inputs, device)
    t0 = time.perf_counter()
    res = train(parts.model, parts.data.train, parts.data.val, spec.student.train, parts.objective, device=device,
                amp=amp, checkpoint_dir=checkpoint_dir, run_fingerprint=parts.fingerprint, name=name, progress=False)
    test = task.test_metrics(parts, spec, device)
    key = ctx.task.target.key
    final = {**res.final, **task.epoch_metrics(res.final)}
    return {key: test[f"test_{key}"], f"val_{key}": final.get(task.val_key),
            "seconds": time.perf_counter() - t0, "fingerprint": parts.fingerprint}


def _scores(result: SearchResult, i: int) -> dict[str, float | None]:
    out: dict[str, float | None] = {"combined": result.combined[i]}
    for name in result.proxies:
        v = float(oriented(name, [result.ranked[i].values[name]])[0])
        out[name] = None if math.isnan(v) else v
    return out


def validate_ranking(result: SearchResult, ctx: SearchContext, n: int, out_dir: str | Path,
                     progress: bool = True) -> dict[str, Any]:
    """Distill ``n`` candidates spread over the ranking and correlate proxies with accuracy."""
    cfg = result.spec.validation
    out_dir = Path(out_dir)
    target = ctx.task.target
    key = target.key
    params = [s.measurement.params for s in result.ranked]
    budget = cfg.param_budget or densest_budget(params, cfg.band)
    lo, hi = band_limits(budget, cfg.band)
    chosen = select_for_validation(params, n, budget, cfg.band, cfg.band_share)
    partial_path = out_dir / PARTIAL
    done: dict[str, Any] = json.loads(partial_path.read_text()) if partial_path.exists() else {}
    inputs = ctx.task.search_task().shared_inputs(ctx.pipeline, ctx.layout.root, ctx.pipeline_file,
                                                 log=print if progress else (lambda _m: None))
    t0 = time.perf_counter()
    rows = []
    for j, i in enumerate(chosen):
        s = result.ranked[i]
        name = s.candidate.key
        ckpt = out_dir / "validate_checkpoints" / name
        spec = candidate_spec(ctx, s.candidate, cfg.epochs)
        prev = done.get(name)
        rec = prev if prev is not None and key in prev else None
        if rec is None or rec.get("fingerprint") != ctx.task.search_task().fingerprint(spec, ctx.data.sha256, inputs):
            rec = distill_candidate(ctx, spec, inputs, name, ckpt)
        done[name] = rec
        atomic_write_json(partial_path, done)
        shutil.rmtree(ckpt, ignore_errors=True)
        rows.append({
            "ranking_rank": i + 1, "key": name, "model": s.candidate.model, "params": s.measurement.params,
            "in_band": bool(lo <= s.measurement.params <= hi), key: rec[key],
            f"val_{key}": rec.get(f"val_{key}"), "seconds": rec["seconds"], "fingerprint": rec["fingerprint"],
            "scores": _scores(result, i),
        })
        if progress:
            print(f"[arch validate] {j + 1}/{len(chosen)} {name} ({s.measurement.params} params, rank {i + 1}): "
                  f"{target.label} {rec[key]:.4f} in {rec['seconds']:.1f} s", flush=True)
    calibrated = calibrate(result, chosen, rows, target)
    names = ["combined"] + list(result.proxies) + (["calibrated_loo"] if "loo" in calibrated else [])
    quality = [target.quality(r[key]) for r in rows]
    band_rows = [r for r in rows if r["in_band"]]
    correlations = {
        name: {
            "all": tau_rho([r["scores"][name] for r in rows], quality),
            "band": tau_rho([r["scores"][name] for r in band_rows], [target.quality(r[key]) for r in band_rows]),
        }
        for name in names
    }
    shutil.rmtree(out_dir / "validate_checkpoints", ignore_errors=True)
    partial_path.unlink(missing_ok=True)
    return {
        "name": result.spec.name,
        "epochs": cfg.epochs,
        "method": ctx.pipeline.distill.method,
        "metric": f"{target.label} of the distilled student",
        "target": {"key": key, "label": target.label, "higher_is_better": target.higher_is_better},
        "device": str(resolve_device(ctx.pipeline.runtime)),
        "threads": torch.get_num_threads(),
        "band": {"budget": budget, "rel": cfg.band, "lo": math.ceil(lo), "hi": math.floor(hi), "n": len(band_rows),
                 "admitted_in_band": sum(lo <= p <= hi for p in params)},
        "seconds": time.perf_counter() - t0,
        "candidates": rows,
        "correlations": correlations,
        "calibrated": calibrated,
    }


CALIBRATED = "calibrated_loo"


def calibrate(result: SearchResult, chosen: Sequence[int], rows: list[dict[str, Any]], target=None) -> dict[str, Any]:
    """Few-shot calibration (:mod:`autokd.search.arch.calibrate`) on the distilled candidates:
    ridge of the target (oriented: accuracy, −perplexity) on every computed proxy (baselines
    included). Each row gets its leave-one-out prediction as the score ``calibrated_loo`` (never a
    prediction of a model fitted on it); the undistilled candidates are re-ranked by the fit on all
    distilled ones."""
    key, quality = (target.key, target.quality) if target is not None else ("accuracy", float)
    features = list(result.proxies)
    validated = [Observation(r["key"], result.ranked[i].values, quality(r[key])) for i, r in zip(chosen, rows)]
    taken = set(chosen)
    rest = [Observation(s.candidate.key, s.values) for i, s in enumerate(result.ranked) if i not in taken]
    report = calibrated_report(validated, rest, features, top=result.spec.top_k)
    if target is not None and not target.higher_is_better:  # the fit predicts −perplexity: say perplexity
        for c in report.get("top_unvalidated", []):
            c[f"predicted_{key}"] = -c.pop("predicted_accuracy")
    for r in rows:
        if "loo" in report:
            r["scores"][CALIBRATED] = report["loo"][r["key"]]
    return report
