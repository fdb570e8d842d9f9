"""Which distillation default pays out of the box? A search per dataset, then candidate
defaults over several seeds, each against the labels-only student of the same seed.

    python benchmarks/defaults_study.py [--work DIR] [--trials 14] [--seeds 0 1 2] [--jobs 2]

Datasets: the built-in digits (``pipelines/default.yaml`` as shipped: CNN teacher and student)
and three scikit-learn tables written as CSV and read by the ``csv`` reader as a user would
(wine 178x13x3, the reported case; breast_cancer 569x30x2; a generated 3000x40x6 table), each
with a large MLP teacher (~70-80k params) and a tiny MLP student.

1. Search (the library's ``run_search``, Optuna backend, TPE, no pruning) over the method
   (kd, lskd, normkd, dkd, cakd), lambda and T (when the method has one) on seed 0. Trials
   are ranked on VALIDATION accuracy only.
2. Candidates = the shipped default (kd, T 4, lambda 0.9), each dataset's best trial and a few
   fixed ones. Each candidate is trained on every dataset for every seed (data split, teacher
   and student seed all = s), next to the labels-only baseline of that seed; validation and
   test accuracy are recorded for both.
3. Pick: the candidate with the best worst-case VALIDATION gain (then mean) over
   dataset x seed; the test table is reported for every candidate, honestly.

Writes ``benchmarks/results/defaults_study.json`` and ``benchmarks/results/defaults_study.md``.
``--auto-only`` instead runs the shipped default (``distill.method: auto``) against labels-only
on every dataset and seed (``--out benchmarks/results/defaults_auto.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
METHODS = ["kd", "lskd", "normkd", "dkd", "cakd"]
#: cakd's strong set (target + 2 others) needs more than 3 classes
FEW_CLASS_METHODS = [m for m in METHODS if m != "cakd"]
FEW_CLASSES = {"wine", "breast_cancer"}

#: fixed candidates beside the searched ones: (label, distill section)
FIXED_CANDIDATES: list[tuple[str, dict[str, Any]]] = [
    ("kd T4 a0.9 (old default)", {"method": "kd", "temperature": 4.0, "alpha": 0.9, "params": {}}),
    ("kd T4 a0.5", {"method": "kd", "temperature": 4.0, "alpha": 0.5, "params": {}}),
    ("kd T2 a0.5", {"method": "kd", "temperature": 2.0, "alpha": 0.5, "params": {}}),
    ("lskd T2 a0.5", {"method": "lskd", "temperature": 2.0, "alpha": 0.5, "params": {}}),
    ("normkd a0.5", {"method": "normkd", "temperature": None, "alpha": 0.5, "params": {}}),
    ("dkd T4 a0.5", {"method": "dkd", "temperature": 4.0, "alpha": 0.5, "params": {}}),
]


def _mlp(hidden: list[int]) -> dict[str, Any]:
    return {"name": "mlp", "params": {"hidden": hidden}}


def _train(epochs: int = 40) -> dict[str, Any]:
    return {"optimizer": "adamw", "lr": 0.003, "weight_decay": 0.0005, "schedule": "cosine",
            "epochs": epochs, "batch_size": 64, "seed": 0}


def _write_csv(path: Path, x, y) -> None:
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    header = ",".join([f"f{i}" for i in range(x.shape[1])] + ["label"])
    rows = [",".join(f"{v:.8g}" for v in row) + f",{int(t)}" for row, t in zip(np.asarray(x), np.asarray(y))]
    path.write_text(header + "\n" + "\n".join(rows) + "\n")


def make_pipelines(work: Path) -> dict[str, Path]:
    """Write each dataset's CSV and pipeline spec under ``work``; return name -> pipeline file."""
    from sklearn.datasets import load_breast_cancer, load_wine, make_classification

    out: dict[str, Path] = {}
    digits = yaml.safe_load((REPO / "pipelines/default.yaml").read_text())
    digits["runtime"]["num_threads"] = 1
    digits["distill"] = {"method": "kd", "alpha": 0.9, "params": {}}
    tables = {
        # name: (x, y, teacher hidden, student hidden, student epochs)
        # the reported case: 100 epochs; seed 0 gives labels-only 0.972, kd T4 a0.9 0.667
        "wine": (*load_wine(return_X_y=True), [256, 256], [4], 100),            # student 71 params
        "breast_cancer": (*load_breast_cancer(return_X_y=True), [256, 256], [4], 40),  # student 134 params
        "synth6": (*make_classification(n_samples=3000, n_features=40, n_informative=12, n_redundant=8,
                                        n_classes=6, n_clusters_per_class=2, class_sep=1.0, random_state=0),
                   [256, 256], [8], 40),                                           # student 382 params
    }
    specs = {"digits": digits}
    for name, (x, y, t_hidden, s_hidden, s_epochs) in tables.items():
        csv = work / name / "data.csv"
        _write_csv(csv, x, y)
        specs[name] = {
            "name": name,
            "data": {"source": "csv", "path": str(csv), "options": {"label_column": "label"},
                     "split": {"train": 0.6, "val": 0.2, "test": 0.2}, "seed": 0, "normalize": True},
            "teacher": {"model": _mlp(t_hidden), "train": _train()},
            "student": {"model": _mlp(s_hidden), "train": _train(s_epochs)},
            "distill": {"method": "kd", "alpha": 0.9, "params": {}},
            "runtime": {"device": "cpu", "num_threads": 1},
        }
    for name, spec in specs.items():
        f = work / name / "pipeline.yaml"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(yaml.safe_dump(spec, sort_keys=False))
        out[name] = f
    return out


def search_spec(name: str, pipeline: Path, root: Path, trials: int) -> dict[str, Any]:
    return {
        "name": f"defaults_{name}", "pipeline": str(pipeline), "root": str(root),
        "objectives": {"student.accuracy": "max"},           # validation accuracy
        "space": {
            "distill.method": {"type": "choice", "values": FEW_CLASS_METHODS if name in FEW_CLASSES else METHODS},
            "distill.temperature": {"type": "loguniform", "low": 1.0, "high": 16.0},
            "distill.alpha": {"type": "uniform", "low": 0.1, "high": 1.0},
        },
        "budget": {"trials": trials, "max_concurrent": 1, "resources": {"cpu": 1, "gpu": 0}},
        "scheduler": {"type": "fifo"},
        "sampler": {"type": "tpe", "seed": 0, "n_startup_trials": 6},
    }


def _reuse_search(wd: Path, name: str) -> dict[str, Any]:
    """An earlier run's search of ``name`` under the same work folder (``--reuse-searches``)."""
    recs = json.loads((wd / "search" / "trials.json").read_text())
    best = yaml.safe_load((wd / "search" / "best.yaml").read_text())
    trials_out = [{"trial": r["trial"], "status": r["status"], "params": r["params"],
                   "val_accuracy": r["final"].get("val_accuracy"), "test_accuracy": r["final"].get("test_accuracy")}
                  for r in recs]
    return {"dataset": name, "seconds": None, "reused": True, "trials": trials_out,
            "best": {"params": best["params"], "patch": best["patch"], "val_accuracy": best["metrics"]["val_accuracy"],
                     "test_accuracy": best["metrics"]["test_accuracy"]}}


def run_one_search(name: str, pipeline: str, work: str, trials: int, reuse: bool = False) -> dict[str, Any]:
    """Phase 1 for one dataset (its own process): the search on seed 0."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from autokd.search.hparams.run import run_search

    wd = Path(work) / name
    if reuse:  # a finished search, or none (that dataset gets only the fixed candidates)
        if (wd / "search" / "best.yaml").exists():
            return _reuse_search(wd, name)
        return {"dataset": name, "seconds": None, "skipped": True, "trials": [], "best": None}
    f = wd / "search.yaml"
    f.write_text(yaml.safe_dump(search_spec(name, Path(pipeline), wd / "root", trials), sort_keys=False))
    t0 = time.perf_counter()
    lines: list[str] = []
    outcome = run_search(f, backend="optuna", out_dir=wd / "search", base_dir=wd, overwrite=True, live=False,
                         log=lines.append)
    trials_out = [{"trial": r.trial, "status": r.status, "params": r.params,
                   "val_accuracy": r.final.get("val_accuracy"), "test_accuracy": r.final.get("test_accuracy")}
                  for r in outcome.records]
    best = outcome.best
    return {"dataset": name, "seconds": time.perf_counter() - t0, "trials": trials_out,
            "best": None if best is None else {"params": best.params, "patch": best.patch,
                                               "val_accuracy": best.final.get("val_accuracy"),
                                               "test_accuracy": best.final.get("test_accuracy")}}


def _accuracy(layout, role: str, data) -> tuple[float, float]:
    import torch

    from autokd.evaluate.metrics import predict_logits
    from autokd.models.artifact import load_model

    model = load_model(layout.model_dir(role))
    cpu = torch.device("cpu")
    out = []
    for split in (data.val, data.test):
        pred = predict_logits(model, split.x, cpu).argmax(1)
        out.append(float((pred == split.y).float().mean()))
    return out[0], out[1]


def run_one_seed(name: str, pipeline: str, work: str, seed: int, candidates: list[dict[str, Any]]) -> dict[str, Any]:
    """Phase 2 for one (dataset, seed): teacher, labels-only baseline, every candidate."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from autokd.data.prepare import load_prepared
    from autokd.spec.document import apply_overrides, load_yaml
    from autokd.stages import Layout, distill, prepare, train_baseline, train_teacher, validate_pipeline

    base = apply_overrides(load_yaml(pipeline), {"data.seed": seed, "teacher.train.seed": seed,
                                                 "student.train.seed": seed})
    layout = Layout(Path(work) / name / f"seed{seed}")
    t0 = time.perf_counter()
    spec = validate_pipeline(base, file=pipeline, root=layout.root)
    prepare(spec, layout)
    train_teacher(spec, layout, progress=False)
    train_baseline(spec, layout, progress=False)
    data = load_prepared(layout.data)
    row: dict[str, Any] = {"dataset": name, "seed": seed}
    row["teacher_val"], row["teacher_test"] = _accuracy(layout, "teacher", data)
    row["baseline_val"], row["baseline_test"] = _accuracy(layout, "baseline", data)
    row["candidates"] = {}
    for cand in candidates:
        c0 = time.perf_counter()
        d = dict(base)
        d["distill"] = {**base.get("distill", {}), **cand["distill"]}
        if d["distill"].get("temperature") is None:
            d["distill"].pop("temperature", None)
        cspec = validate_pipeline(d, file=pipeline, root=layout.root)
        distill(cspec, layout, progress=False)
        val, test = _accuracy(layout, "student", data)
        row["candidates"][cand["label"]] = {"val": val, "test": test, "seconds": time.perf_counter() - c0}
        sel = layout.model_dir("student") / "selection.json"
        if cspec.distill.method == "auto" and sel.exists():  # what auto chose, on validation
            row["candidates"][cand["label"]]["selection"] = json.loads(sel.read_text())
    row["seconds"] = time.perf_counter() - t0
    return row


def _cand_from_best(name: str, best: dict[str, Any]) -> dict[str, Any]:
    p = best["patch"]
    dist = {"method": p.get("distill.method", "kd"), "temperature": p.get("distill.temperature"),
            "alpha": round(float(p.get("distill.alpha", 0.9)), 2), "params": p.get("distill.params", {}) or {}}
    if dist["temperature"] is not None:
        dist["temperature"] = round(float(dist["temperature"]), 1)
    t = f" T{dist['temperature']:g}" if dist["temperature"] is not None else ""
    return {"label": f"{dist['method']}{t} a{dist['alpha']:g} (best on {name})", "distill": dist}


def summarise(rows: list[dict[str, Any]], labels: list[str]) -> dict[str, Any]:
    out = {}
    datasets = sorted({r["dataset"] for r in rows}, key=lambda n: (n != "digits", n))
    for lab in labels:
        per = {}
        for ds in datasets:
            rs = [r for r in rows if r["dataset"] == ds and lab in r["candidates"]]
            if not rs:
                continue
            gv = [r["candidates"][lab]["val"] - r["baseline_val"] for r in rs]
            gt = [r["candidates"][lab]["test"] - r["baseline_test"] for r in rs]
            per[ds] = {"val_gain_mean": statistics.mean(gv), "val_gain_min": min(gv),
                       "test_gain_mean": statistics.mean(gt), "test_gain_min": min(gt),
                       "test_wins": sum(g >= 0 for g in gt), "seeds": len(gt)}
        mine = [r for r in rows if lab in r["candidates"]]
        all_v = [r["candidates"][lab]["val"] - r["baseline_val"] for r in mine]
        all_t = [r["candidates"][lab]["test"] - r["baseline_test"] for r in mine]
        complete = len(per) == len(datasets)
        goal = complete and all(p["test_wins"] == p["seeds"] for p in per.values()) and per.get(
            "digits", {}).get("test_gain_mean", 0) >= 0.01
        out[lab] = {"per_dataset": per, "complete": complete, "val_gain_min": min(all_v),
                    "val_gain_mean": statistics.mean(all_v), "test_gain_min": min(all_t),
                    "test_gain_mean": statistics.mean(all_t), "goal_met_on_test": goal}
    return out


def markdown(rows, summary, labels, pick, command) -> str:
    datasets = sorted({r["dataset"] for r in rows}, key=lambda n: (n != "digits", n))
    lines = [f"Command: `{command}`", "",
             "Gain = distilled − labels-only test accuracy (pt), same split, teacher and student seed. "
             "Cells: mean gain (worst seed), seeds with gain ≥ 0. Goal: ≥ 0 on every seed of every dataset "
             "and ≥ +1.0 pt mean on digits.", ""]
    lines.append("| candidate | " + " | ".join(datasets) + " | min val gain | goal (test) |")
    lines.append("|---" * (len(datasets) + 3) + "|")
    for lab in labels:
        s = summary[lab]
        cells = []
        for ds in datasets:
            p = s["per_dataset"].get(ds)
            cells.append("–" if p is None else
                         f"{p['test_gain_mean'] * 100:+.1f} ({p['test_gain_min'] * 100:+.1f}), {p['test_wins']}/{p['seeds']}")
        mark = " **(picked)**" if lab == pick else ""
        lines.append(f"| {lab}{mark} | " + " | ".join(cells) + f" | {s['val_gain_min'] * 100:+.1f} | "
                     f"{'met' if s['goal_met_on_test'] else 'missed'} |")
    old = FIXED_CANDIDATES[0][0]
    lines += ["", f"Per seed (test accuracy): labels-only, the picked candidate `{pick}` and the old default:", "",
              "| dataset | seed | teacher | labels-only | picked | gain (pt) | old default | gain (pt) |",
              "|---|---|---|---|---|---|---|---|"]

    def cell(r, lab):
        c = r["candidates"].get(lab)
        return ("–", "–") if c is None else (f"{c['test']:.4f}", f"{(c['test'] - r['baseline_test']) * 100:+.1f}")

    for r in rows:
        (p, pg), (o, og) = cell(r, pick), cell(r, old)
        lines.append(f"| {r['dataset']} | {r['seed']} | {r['teacher_test']:.4f} | {r['baseline_test']:.4f} | {p} | "
                     f"{pg} | {o} | {og} |")
    return "\n".join(lines) + "\n"


def auto_only(args, pipelines, work: Path, command: str, t0: float) -> int:
    """The shipped default (``method: auto``, its built-in candidates, alpha 0.5) vs labels-only."""
    from autokd.utils.io import atomic_write_json, atomic_write_text

    cand = [{"label": "auto (default)", "distill": {"method": "auto", "temperature": None, "alpha": 0.5, "params": {}}}]
    with ProcessPoolExecutor(max_workers=args.jobs) as ex:
        futs = [ex.submit(run_one_seed, n, str(p), str(work), seed, cand) for n, p in pipelines.items()
                for seed in args.seeds]
        rows = [f.result() for f in futs]
    summary = summarise(rows, ["auto (default)"])
    lines = [f"Command: `{command}`", "", "| dataset | seed | teacher | labels-only | auto | gain (pt) | auto chose |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        c = r["candidates"]["auto (default)"]
        sel = c.get("selection", {})
        chose = sel.get("candidates", [{}])[sel.get("selected", 0)].get("recipe", "?") if sel else "?"
        lines.append(f"| {r['dataset']} | {r['seed']} | {r['teacher_test']:.4f} | {r['baseline_test']:.4f} | "
                     f"{c['test']:.4f} | {(c['test'] - r['baseline_test']) * 100:+.1f} | {chose} |")
    s = summary["auto (default)"]
    lines += ["", "| dataset | mean gain (pt) | worst seed (pt) | seeds ≥ 0 |", "|---|---|---|---|"]
    for ds, p in s["per_dataset"].items():
        lines.append(f"| {ds} | {p['test_gain_mean'] * 100:+.2f} | {p['test_gain_min'] * 100:+.1f} | "
                     f"{p['test_wins']}/{p['seeds']} |")
    lines.append(f"\ngoal (≥ 0 on every seed, digits ≥ +1.0 pt mean): {'met' if s['goal_met_on_test'] else 'missed'}")
    out = Path(args.out)
    atomic_write_json(out, {"command": command, "rows": rows, "summary": summary,
                            "seconds": time.perf_counter() - t0})
    atomic_write_text(out.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default=None, help="work folder (default: a fresh temp folder)")
    ap.add_argument("--trials", type=int, default=14)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--jobs", type=int, default=2, help="processes (one torch thread each)")
    ap.add_argument("--reuse-searches", action="store_true", help="reuse finished searches under --work; run no new one")
    ap.add_argument("--digits-candidates", nargs="+", default=None,
                    help="labels (prefixes) of the candidates also run on digits (default: all; digits is the slow one)")
    ap.add_argument("--auto-only", action="store_true",
                    help="no search: evaluate the shipped default (distill.method auto) against labels-only")
    ap.add_argument("--search-only", action="store_true", help="stop after the searches")
    ap.add_argument("--datasets", nargs="+", default=["digits", "wine", "breast_cancer", "synth6"])
    ap.add_argument("--out", default=str(REPO / "benchmarks/results/defaults_study.json"))
    args = ap.parse_args()
    command = "python benchmarks/defaults_study.py " + " ".join(sys.argv[1:])
    import tempfile

    work = Path(args.work or tempfile.mkdtemp(prefix="autokd_defaults_")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TMPDIR", str(work))
    pipelines = {k: v for k, v in make_pipelines(work).items() if k in args.datasets}
    t0 = time.perf_counter()
    if args.auto_only:
        return auto_only(args, pipelines, work, command, t0)
    with ProcessPoolExecutor(max_workers=args.jobs) as ex:
        futs = [ex.submit(run_one_search, n, str(p), str(work), args.trials, args.reuse_searches)
                for n, p in pipelines.items()]
        searches = [f.result() for f in futs]
    for s in searches:
        b = s["best"]
        took = "reused" if s.get("reused") else "skipped" if s.get("skipped") else f"in {s['seconds']:.0f}s"
        print(f"[search] {s['dataset']}: {len(s['trials'])} trials {took}; best val "
              f"{b and b['val_accuracy']}: {b and b['params']}", flush=True)
    t_search = time.perf_counter() - t0
    if args.search_only:
        return 0
    candidates = [{"label": lab, "distill": d} for lab, d in FIXED_CANDIDATES]
    seen = {json.dumps(c["distill"], sort_keys=True) for c in candidates}
    for s in searches:
        if s["best"]:
            c = _cand_from_best(s["dataset"], s["best"])
            key = json.dumps(c["distill"], sort_keys=True)
            if key not in seen:
                seen.add(key)
                candidates.append(c)
    with ProcessPoolExecutor(max_workers=args.jobs) as ex:
        def cands_for(n):
            if n != "digits" or not args.digits_candidates:
                return candidates
            return [c for c in candidates if any(c["label"].startswith(pre) for pre in args.digits_candidates)]

        futs = [ex.submit(run_one_seed, n, str(p), str(work), seed, cands_for(n))
                for n, p in pipelines.items() for seed in args.seeds]
        rows = [f.result() for f in futs]
    labels = [c["label"] for c in candidates]
    summary = summarise(rows, labels)
    # pick on VALIDATION: best worst-case gain over dataset x seed, then the best mean
    pick = max([lab for lab in labels if summary[lab]["complete"]] or labels, key=lambda lab: (round(summary[lab]["val_gain_min"], 6), summary[lab]["val_gain_mean"]))
    result = {"command": command, "work": str(work), "seconds": {"search": t_search,
                                                                  "total": time.perf_counter() - t0},
              "searches": searches, "candidates": candidates, "rows": rows, "summary": summary,
              "picked_by_validation": pick}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    from autokd.utils.io import atomic_write_json, atomic_write_text

    atomic_write_json(out, result)
    md = markdown(rows, summary, labels, pick, command)
    atomic_write_text(out.with_suffix(".md"), md)
    print(md)
    print(f"total {time.perf_counter() - t0:.0f}s (search {t_search:.0f}s); wrote {out} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
