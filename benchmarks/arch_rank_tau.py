"""How well do training-free rankings predict distilled accuracy on digits? Kendall τ of every
proxy, the default combination, the few-shot calibrated ranking and the parameter count, over
all validated candidates and inside the ±10% parameter band, on candidates *held out* from any
choice or fit.

1. Scores every admitted candidate of the space with every registered proxy (the latency
   budget is dropped so the admitted set does not depend on machine load; ``--keep-latency``).
2. Picks 2·N candidates in (params, key) order, independent of any ranking, as ``--validate``
   does (half inside the densest ±band window, the rest spread over the whole range), and
   splits them alternately into a *selection* half A and a *held-out* half B.
3. Distills each with the pipeline's recipe and the space's short schedule
   (:func:`autokd.search.arch.validate.distill_candidate`); accuracies are cached by the
   distill stage's fingerprint under ``searches/arch_rank_tau/`` so a rerun does not train.
4. On A only: chooses the best combination (rank mean or z-score mean) of 1–3 proxies
   (parameter count and FLOPs included), by the mean of τ(all) and τ(band) (the evidence
   for the default).
5. On B only: reports τ of every proxy, of the configured default combination (the space's
   ``combine``), of the combination chosen on A, of the calibrated ranking (ridge on proxies +
   log params) fitted on A and of its leave-one-out version within B, and of the parameter count.

    python benchmarks/arch_rank_tau.py [--n 24] [--space search_spaces/students.yaml]

Writes benchmarks/results/arch_rank_tau.json.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from autokd.search.arch.calibrate import Observation, fit_calibration, loo_predictions, predict_held_out
from autokd.search.arch.context import build_context, proxy_batch, signals
from autokd.search.arch.families import Candidate
from autokd.search.arch.proxies import BASELINES, PROXIES
from autokd.search.arch.ranking import combine, oriented
from autokd.search.arch.run import run_search
from autokd.search.arch.space import load_space
from autokd.search.arch.validate import (
    band_limits,
    candidate_spec,
    densest_budget,
    distill_candidate,
    run_fingerprint,
    select_for_validation,
    tau_rho,
    teacher_sha256,
)
from autokd.utils.io import atomic_write_json

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results" / "arch_rank_tau.json"


def proxies_digest() -> str:
    h = hashlib.sha256()
    for p in sorted((REPO / "autokd" / "search" / "arch" / "proxies").glob("*.py")):
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def score_all(spec, ctx, cache: Path, rescore: bool) -> tuple[list[dict], float]:
    """Every admitted candidate: key, params, raw proxy values (cached by proxy code + batch + data)."""
    tag = {"digest": proxies_digest(), "data": ctx.data.sha256, "batch": spec.batch.model_dump(),
           "seed": spec.search.seed, "constraints": spec.constraints.model_dump(), "teacher": ctx.teacher_sha256}
    if cache.exists() and not rescore:
        doc = json.loads(cache.read_text())
        if doc.get("tag") == tag:
            return doc["rows"], doc["seconds"]
    batch = proxy_batch(ctx.data, spec.batch)
    teacher = signals(ctx, batch)
    t0 = time.perf_counter()
    result = run_search(spec, batch, teacher, ctx.input_shape, ctx.num_classes, progress=True)
    rows = [{"key": s.candidate.key, "model": s.candidate.model, "params": s.measurement.params,
             "values": {k: (v if np.isfinite(v) else None) for k, v in s.values.items()}} for s in result.ranked]
    seconds = time.perf_counter() - t0
    atomic_write_json(cache, {"tag": tag, "rows": rows, "seconds": seconds})
    return rows, seconds


def distill_all(spec, ctx, rows: list[dict], cache: Path) -> None:
    done = json.loads(cache.read_text()) if cache.exists() else {}
    teacher = teacher_sha256(ctx)
    for j, r in enumerate(rows):
        cand = Candidate(family=r["model"]["name"], params=r["model"]["params"], key=r["key"], genome=())
        cspec = candidate_spec(ctx, cand, spec.validation.epochs)
        fp = run_fingerprint(ctx, cspec, teacher)
        rec = done.get(r["key"])
        if rec is None or rec.get("fingerprint") != fp:
            with tempfile.TemporaryDirectory() as d:
                rec = distill_candidate(ctx, cspec, fp, r["key"], Path(d))
            done[r["key"]] = rec
            atomic_write_json(cache, done)
            print(f"[distill] {j + 1}/{len(rows)} {r['key']} ({r['params']} params): {rec['accuracy']:.4f} "
                  f"in {rec['seconds']:.1f} s", flush=True)
        r["accuracy"] = rec["accuracy"]


def taus(scores, rows) -> dict:
    acc = [r["accuracy"] for r in rows]
    band = [i for i, r in enumerate(rows) if r["in_band"]]
    return {"all": tau_rho(list(scores), acc),
            "band": tau_rho([scores[i] for i in band], [acc[i] for i in band])}


def t(d, part="all"):
    v = d[part]["tau"]
    return float("nan") if v is None else v


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--space", default="search_spaces/students.yaml")
    ap.add_argument("--root", default=None, help="pipeline root (default: the space's)")
    ap.add_argument("--n", type=int, default=24, help="held-out candidates (as many again for selection)")
    ap.add_argument("--max-combo", type=int, default=3)
    ap.add_argument("--keep-latency", action="store_true")
    ap.add_argument("--rescore", action="store_true")
    ap.add_argument("--cache-dir", default="searches/arch_rank_tau")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    command = "python " + " ".join(sys.argv)
    print("command:", command, flush=True)

    spec = load_space(args.space)
    default_combo = list(spec.combined_proxies)
    default_method = spec.combine.method
    spec.proxies = [p for p in PROXIES if p not in BASELINES]
    spec.combine.proxies = None
    if not args.keep_latency:
        spec.constraints.max_latency_ms = None
    cache = Path(args.cache_dir)
    ctx = build_context(spec, root=args.root, need_teacher_outputs=True)
    admitted, score_s = score_all(spec, ctx, cache / "scores.json", args.rescore)
    names = [p for p in PROXIES if all(p in r["values"] for r in admitted)]
    table = {n: [r["values"][n] if r["values"][n] is not None else float("nan") for r in admitted] for n in names}

    pool = sorted(range(len(admitted)), key=lambda i: (admitted[i]["params"], admitted[i]["key"]))
    params_sorted = [admitted[i]["params"] for i in pool]
    budget = densest_budget(params_sorted, spec.validation.band)
    lo, hi = band_limits(budget, spec.validation.band)
    chosen = select_for_validation(params_sorted, 2 * args.n, budget, spec.validation.band,
                                   spec.validation.band_share)
    chosen_idx = [pool[p] for p in chosen]
    for i in chosen_idx:
        admitted[i]["in_band"] = bool(lo <= admitted[i]["params"] <= hi)
    inside = [i for i in chosen_idx if admitted[i]["in_band"]]
    outside = [i for i in chosen_idx if not admitted[i]["in_band"]]
    halves = sorted([inside[0::2] + outside[0::2], inside[1::2] + outside[1::2]], key=len)
    a_idx, b_idx = halves  # the held-out half B is the larger one when 2N is odd after the band split
    assert not set(a_idx) & set(b_idx)
    distill_all(spec, ctx, [admitted[i] for i in chosen_idx], cache / "distilled.json")
    A, B = [admitted[i] for i in a_idx], [admitted[i] for i in b_idx]

    def combo_scores(combo, method="rank"):
        return combine(table, list(combo), method)  # over every admitted candidate, as a search ranks

    def on(idx, scores):
        return taus([scores[i] for i in idx], [admitted[i] for i in idx])

    # 4. choose the combination on A
    def choose(idx):
        trials = []
        for k in range(1, args.max_combo + 1):
            for combo in itertools.combinations(names, k):
                for method in (("rank", "zscore") if k > 1 else ("rank",)):
                    ta = on(idx, combo_scores(combo, method))
                    trials.append({"proxies": list(combo), "method": method, "on_selection": ta,
                                   "objective": (t(ta) + t(ta, "band")) / 2})
        trials = [x for x in trials if np.isfinite(x["objective"])]
        trials.sort(key=lambda x: (-x["objective"], len(x["proxies"]), x["method"] != "rank", x["proxies"]))
        return trials

    trials = choose(a_idx)
    best = trials[0]
    best["A"] = best["on_selection"]
    # the same procedure the other way round (choose on B, score on A): how stable is the choice?
    reverse = choose(b_idx)[0]
    reverse["A"] = on(a_idx, combo_scores(reverse["proxies"], reverse["method"]))

    # 5. held-out figures on B
    per_proxy = {n: {"A": on(a_idx, oriented(n, table[n])), "B": on(b_idx, oriented(n, table[n])),
                     "A_and_B": on(a_idx + b_idx, oriented(n, table[n]))} for n in names}
    default_s = combine(table, default_combo, default_method)
    chosen_s = combo_scores(best["proxies"], best["method"])
    obs = {i: Observation(admitted[i]["key"], {n: table[n][i] for n in names}, admitted[i]["accuracy"])
           for i in chosen_idx}
    feature_sets = {"all proxies + params": names,
                    "default combination + params": sorted(set(default_combo) | {"params"}, key=names.index),
                    "older default (7 proxies) + params": ["diswot_relation", "diswot_semantic", "naswot", "synflow",
                                                           "snip", "grad_norm", "zen", "params"],
                    "chosen-on-A + params": sorted(set(best["proxies"]) | {"params"}, key=names.index)}
    calibrated = {}
    for label, feats in feature_sets.items():
        cal = fit_calibration([obs[i] for i in a_idx], feats)
        pred_b = predict_held_out(cal, [obs[i] for i in b_idx])
        loo_b = loo_predictions([obs[i] for i in b_idx], feats)
        loo_ab = loo_predictions([obs[i] for i in a_idx + b_idx], feats)
        calibrated[label] = {
            "features": list(feats), "alpha_fit_on_A": cal.alpha, "coefficients_fit_on_A": cal.coefficients,
            "fit_A_scored_B": taus(list(pred_b), B),
            "loo_within_B": taus(list(loo_b), B),
            "loo_within_A_and_B": taus(list(loo_ab), A + B),
        }
    doc = {
        "command": command,
        "space": args.space,
        "epochs": spec.validation.epochs,
        "method": ctx.pipeline.distill.method,
        "latency_constraint_dropped": not args.keep_latency,
        "admitted": len(admitted),
        "scoring_seconds": score_s,
        "band": {"budget": budget, "rel": spec.validation.band, "lo": lo, "hi": hi,
                 "n_A": sum(r["in_band"] for r in A), "n_B": sum(r["in_band"] for r in B)},
        "n_A": len(A), "n_B": len(B),
        "default": {"proxies": default_combo, "method": default_method, "A": on(a_idx, default_s),
                    "B": on(b_idx, default_s)},
        "chosen_on_A": {"proxies": best["proxies"], "method": best["method"], "A": best["A"], "B": on(b_idx, chosen_s)},
        "top_combinations_on_A": trials[:15],
        "reverse_fold_chosen_on_B_scored_on_A": reverse,
        "params_on_A": per_proxy["params"]["A"],
        "proxies": per_proxy,
        "calibrated": calibrated,
        "candidates": [{"key": r["key"], "params": r["params"], "in_band": r["in_band"], "accuracy": r["accuracy"],
                        "set": "A" if r in A else "B", "values": r["values"]} for r in A + B],
    }
    pb = per_proxy["params"]["B"]
    d = doc["default"]["B"]
    doc["goal"] = {"default_tau_B_all_ge_0.7": t(d) >= 0.7, "default_tau_B_band_gt_params": t(d, "band") > t(pb, "band")}
    atomic_write_json(Path(args.out), doc)

    print(f"\n{len(admitted)} admitted; A = {len(A)} ({doc['band']['n_A']} in band), B = {len(B)} "
          f"({doc['band']['n_B']} in band); band {budget} ± {spec.validation.band:.0%}; {spec.validation.epochs} epochs")
    print(f"combination chosen on A: {best['method']} of {best['proxies']} (A: τ all {t(best['A']):.3f}, band {t(best['A'], 'band'):.3f})")
    print(f"reverse fold: chosen on B {reverse['method']} of {reverse['proxies']}, on A: τ all {t(reverse['A']):.3f}, "
          f"band {t(reverse['A'], 'band'):.3f} (params on A: {t(per_proxy['params']['A']):.3f} / "
          f"{t(per_proxy['params']['A'], 'band'):.3f})")
    print("\n                           held-out B      | all 48 (descriptive)")
    print("                           τ all   τ band  | τ all   τ band")
    for n in names:
        p = per_proxy[n]
        print(f"  {n:24s} {t(p['B']):7.3f}  {t(p['B'], 'band'):7.3f} | {t(p['A_and_B']):7.3f}  "
              f"{t(p['A_and_B'], 'band'):7.3f}")
    print(f"  {'default ' + '+'.join(default_combo):24s} {t(d):7.3f}  {t(d, 'band'):7.3f}")
    cb = doc["chosen_on_A"]["B"]
    print(f"  {'chosen-on-A':24s} {t(cb):7.3f}  {t(cb, 'band'):7.3f}")
    for label, c in calibrated.items():
        for what in ("fit_A_scored_B", "loo_within_B"):
            print(f"  calibrated[{label}] {what}: {t(c[what]):.3f} / {t(c[what], 'band'):.3f}")
        print(f"  calibrated[{label}] loo_within_A_and_B (n={len(A) + len(B)}): "
              f"{t(c['loo_within_A_and_B']):.3f} / {t(c['loo_within_A_and_B'], 'band'):.3f}")
    print(f"\ngoal: {doc['goal']}\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
