"""The language-model pipeline's study (issue 9): distilled vs labels-only vs equal-compute
labels-only over seeds, the teacher cache's top-k, each representation-transfer term, and the
distillation weight alpha.

    python benchmarks/lm_study.py [--seeds 0 1 2] [--parts seeds,topk,alpha,representation]
                                  [--source runs/lm] [--set key=value ...] [--out benchmarks/results/lm_study.json]

The teacher is fixed: the pipeline's own (``pipelines/lm.yaml``, seed 0), with its data and its
top-32 cache copied from ``--source`` (``dvc repro pipelines/lm/dvc.yaml`` makes them; built here
when absent, or in a temporary root when ``--set`` changes ``data.*`` or ``teacher.*``). Seeds vary
the student only (initial weights and batch order: ``student.train.seed``). Every variant trains
with the library's stages in a temporary root, so nothing under ``--source`` changes; perplexity
and bits/byte come from ``autokd.evaluate.lm.lm_metrics`` on the validation and test splits.
Results (JSON and a markdown table) are rewritten after every part.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

import yaml

from autokd.stages.layout import Layout
from autokd.stages.lm import cache_teacher, distill, prepare, train_baseline, train_baseline_equal, train_teacher
from autokd.stages.lm_validate import load_lm_spec

PARTS = ("seeds", "topk", "alpha", "representation")
TOPKS = (8, 32, 1024)
ALPHAS = (0.5, 0.7, 0.9)
# Each representation term with the features it needs (docs/language_models.md), default weight 1.
REPRESENTATIONS = {
    "hidden_mse": {"method": "hidden_mse", "features": ["block{}"]},
    "hidden_cos": {"method": "hidden_cos", "features": ["block{}"]},
    "attn_kl": {"method": "attn_kl", "features": ["blocks.{}.attn.probs"]},
    "minilm": {"method": "minilm", "features": ["blocks.{}.attn.q", "blocks.{}.attn.k", "blocks.{}.attn.v"]},
    "ckd_wr": {"method": "ckd_wr", "features": ["block{}"]},
    "ckd_ltr": {"method": "ckd_ltr", "features": ["layers"]},
}
INPUTS = ("data", "teacher", "teacher_outputs")


def log(msg: str) -> None:
    print(msg, flush=True)


def _dir(layout: Layout, what: str) -> Path:
    return layout.model_dir("teacher") if what == "teacher" else getattr(layout, what)


def _cache_matches(layout: Layout, spec) -> bool:
    from autokd.stages.lm_validate import effective_lm_distill

    man = _dir(layout, "teacher_outputs") / "manifest.json"
    if not man.exists():
        return False
    s = json.loads(man.read_text()).get("spec", {})
    t = effective_lm_distill(spec.distill)["params"]["temperature"]
    return s.get("top_k") == spec.distill.top_k and s.get("temperature") == t


class Study:
    def __init__(self, spec_path: str, source: Path, sets: dict, tmp: Path):
        self.spec_path, self.sets, self.tmp = spec_path, sets, tmp
        base = self.spec({})
        rebuild = any(k.split(".")[0] in ("data", "teacher") for k in sets)
        src = Layout(tmp / "inputs") if rebuild else Layout(source)
        if rebuild or not all((_dir(src, w) / "manifest.json").exists() for w in INPUTS):
            log(f"[inputs] building data, teacher and cache under {src.root}")
            prepare(base, src)
            train_teacher(base, src, progress=False)
            cache_teacher(base, src, progress=False)
        self.source = src
        self.n = 0

    def spec(self, overrides: dict):
        return load_lm_spec(self.spec_path, {**self.sets, **overrides})

    def root(self, spec) -> Layout:
        """A fresh root holding copies of the data, the teacher and (when it fits) its cache."""
        self.n += 1
        layout = Layout(self.tmp / f"v{self.n}")
        for what in INPUTS:
            if what == "teacher_outputs" and not _cache_matches(self.source, spec):
                continue
            shutil.copytree(_dir(self.source, what), _dir(layout, what))
        if not (_dir(layout, "teacher_outputs") / "manifest.json").exists():
            cache_teacher(spec, layout, progress=False)
        return layout

    def clean(self, layout: Layout) -> None:
        shutil.rmtree(layout.root, ignore_errors=True)


def metrics(layout: Layout, role: str) -> dict:
    """Validation and test perplexity and bits/byte (no generation metrics)."""
    from autokd.data.text.prepare import load_prepared_text
    from autokd.evaluate.lm import lm_metrics
    from autokd.models.artifact import MODEL_FILE, load_model

    data = load_prepared_text(layout.data)
    model = load_model(layout.model_dir(role) / MODEL_FILE)
    out = {}
    for split in ("val", "test"):
        m = lm_metrics(model, None, getattr(data, split), bytes_per_token=data.meta["bytes_per_token"][split],
                       prompts=1, speed=False)
        out[f"{split}_ppl"], out[f"{split}_bpb"] = m["perplexity"], m["bits_per_byte"]
    return out


def timed(fn, spec, layout: Layout) -> float:
    t0 = time.perf_counter()
    fn(spec, layout, progress=False)
    return time.perf_counter() - t0


def distilled(study: Study, overrides: dict, label: str) -> dict:
    spec = study.spec(overrides)
    t0 = time.perf_counter()
    layout = study.root(spec)
    seconds = timed(distill, spec, layout)
    row = {"variant": label, **metrics(layout, "student"), "distill_seconds": seconds,
           "seconds_per_epoch": seconds / spec.student.train.epochs}
    man = _dir(layout, "teacher_outputs") / "manifest.json"
    row["cache_bytes_per_token"] = json.loads(man.read_text())["metrics"]["bytes_per_token"]
    row["seconds"] = time.perf_counter() - t0
    study.clean(layout)
    log(f"[{label}] val ppl {row['val_ppl']:.2f}  test ppl {row['test_ppl']:.2f}  "
        f"({row['seconds_per_epoch']:.1f} s/epoch, {row['seconds']:.0f} s)")
    return row


def part_seeds(study: Study, seeds: list[int], res: dict) -> None:
    rows = []
    for seed in seeds:
        spec = study.spec({"student.train.seed": seed})
        t0 = time.perf_counter()
        layout = study.root(spec)
        row = {"seed": seed}
        for role, fn in (("baseline", train_baseline), ("baseline_equal", train_baseline_equal),
                         ("student", distill)):
            sec = timed(fn, spec, layout)
            m = metrics(layout, role)
            row[role] = {**m, "seconds": sec}
            log(f"[seeds] seed {seed} {role:14s} val ppl {m['val_ppl']:.2f}  test ppl {m['test_ppl']:.2f}  "
                f"({sec:.0f} s)")
        s, b, e = (row[r]["test_ppl"] for r in ("student", "baseline", "baseline_equal"))
        row["reduction_vs_labels_only"] = 1 - s / b
        row["reduction_vs_equal_compute"] = 1 - s / e
        row["seconds"] = time.perf_counter() - t0
        row["student"]["seconds_per_epoch"] = row["student"]["seconds"] / spec.student.train.epochs
        man = json.loads((_dir(layout, "teacher_outputs") / "manifest.json").read_text())
        row["student"]["cache_bytes_per_token"] = man["metrics"]["bytes_per_token"]
        study.clean(layout)
        rows.append(row)
        log(f"[seeds] seed {seed}: distilled {s:.2f} vs labels-only {b:.2f} ({row['reduction_vs_labels_only']:+.1%}),"
            f" equal compute {e:.2f} ({row['reduction_vs_equal_compute']:+.1%}); {row['seconds']:.0f} s")
    res["seeds"] = rows


def reference(study: Study, res: dict) -> tuple[dict, dict | None]:
    """Seed 0's plain distilled student (fkl, top-32, alpha 0.5) and labels-only baseline."""
    for row in res.get("seeds", []):
        if row["seed"] == 0:
            return {"variant": "default", **row["student"]}, row["baseline"]
    if "_ref" not in res:
        res["_ref"] = distilled(study, {"student.train.seed": 0}, "default")
    return res["_ref"], None


def part_topk(study: Study, res: dict) -> None:
    ref, _ = reference(study, res)
    base_k = study.spec({}).distill.top_k
    rows = []
    for k in TOPKS:
        row = dict(ref) if k == base_k else distilled(study, {"student.train.seed": 0, "distill.top_k": k}, f"top{k}")
        rows.append({**row, "top_k": k, "variant": "dense" if k >= 1024 else f"top-{k}"})
    dense = next(r for r in rows if r["top_k"] >= 1024)["test_ppl"]
    for r in rows:
        r["vs_dense"] = r["test_ppl"] / dense - 1
    res["topk"] = rows


def part_alpha(study: Study, res: dict) -> None:
    ref, _ = reference(study, res)
    base_alpha = study.spec({}).distill.alpha
    rows = [dict(ref) if a == base_alpha
            else distilled(study, {"student.train.seed": 0, "distill.alpha": a}, f"alpha{a}") for a in ALPHAS]
    for a, r in zip(ALPHAS, rows):
        r["alpha"] = a
    res["alpha"] = rows
    res["alpha_chosen_on_val"] = min(rows, key=lambda r: r["val_ppl"])["alpha"]


def part_representation(study: Study, res: dict) -> None:
    ref, baseline = reference(study, res)
    rows = []
    for name, rep in REPRESENTATIONS.items():
        try:
            row = distilled(study, {"student.train.seed": 0, "distill.representation": rep}, name)
            row["vs_fkl"] = row["test_ppl"] / ref["test_ppl"] - 1
            if baseline:
                row["vs_labels_only"] = row["test_ppl"] / baseline["test_ppl"] - 1
        except Exception as exc:  # record and go on: one method's failure must not end the study
            log(f"[{name}] FAILED: {type(exc).__name__}: {exc}\n{traceback.format_exc()}")
            row = {"variant": name, "error": f"{type(exc).__name__}: {exc}"}
        row.update(method=name, features=rep["features"])
        rows.append(row)
    res["representation"] = rows
    res["representation_reference"] = {"fkl_test_ppl": ref["test_ppl"], "fkl_seconds_per_epoch":
                                       ref.get("seconds_per_epoch"),
                                       "labels_only_test_ppl": baseline["test_ppl"] if baseline else None}


def distilled_label(spec) -> str:
    """What the distilled student of ``spec`` is trained with, for the tables."""
    d = spec.distill
    if d.representation is not None:
        return f"{d.method} + {d.representation.method}, live teacher"
    return f"{d.method}, top-{d.top_k} cache" if d.teacher_outputs == "cache" else f"{d.method}, live teacher"


def _f(v, fmt="{:.2f}"):
    return "–" if v is None else fmt.format(v)


def markdown(res: dict) -> str:
    out = [f"`{res['command']}`", "", res["note"], ""]
    if "seeds" in res:
        out += [f"| seed | labels-only | equal-compute labels-only | distilled ({res.get('distilled_label', 'fkl')}) | "
                "ppl reduction vs labels-only | vs equal compute |", "|---|---|---|---|---|---|"]
        for r in res["seeds"]:
            out.append(f"| {r['seed']} | {r['baseline']['test_ppl']:.2f} | {r['baseline_equal']['test_ppl']:.2f} | "
                       f"{r['student']['test_ppl']:.2f} | {r['reduction_vs_labels_only']:+.1%} | "
                       f"{r['reduction_vs_equal_compute']:+.1%} |")
        if len(res["seeds"]) > 1:
            def ms(f):
                v = [f(r) for r in res["seeds"]]
                return f"{statistics.mean(v):.2f} ± {statistics.stdev(v):.2f}"
            red = [r["reduction_vs_labels_only"] for r in res["seeds"]]
            out.append(f"| mean ± std | {ms(lambda r: r['baseline']['test_ppl'])} | "
                       f"{ms(lambda r: r['baseline_equal']['test_ppl'])} | {ms(lambda r: r['student']['test_ppl'])} "
                       f"| {statistics.mean(red):+.1%} | |")
        out += ["", f"Test perplexity. Distilled ≥ 10% lower than labels-only in {res['seeds_goal_met']} seeds.", ""]
    if "topk" in res:
        out += ["| teacher cache | cache bytes/token | val ppl | test ppl | test ppl vs dense |",
                "|---|---|---|---|---|"]
        out += [f"| {r['variant']} | {r['cache_bytes_per_token']:.0f} | {r['val_ppl']:.2f} | {r['test_ppl']:.2f} | "
                f"{r['vs_dense']:+.2%} |" for r in res["topk"]]
        out += ["", "Seed 0; dense = top_k ≥ vocabulary (1024): every token, no tail.", ""]
    if "alpha" in res:
        out += ["| distill.alpha | val ppl | test ppl |", "|---|---|---|"]
        out += [f"| {r['alpha']} | {r['val_ppl']:.2f} | {r['test_ppl']:.2f} |" for r in res["alpha"]]
        out += ["", f"Seed 0; chosen on validation: alpha = {res['alpha_chosen_on_val']}.", ""]
    if "representation" in res:
        ref = res["representation_reference"]
        out += ["| + representation term (weight 1) | features | test ppl | ppl change vs fkl only | "
                "vs labels-only | s/epoch |", "|---|---|---|---|---|---|"]
        out.append(f"| none (fkl, cached top-32) | – | {ref['fkl_test_ppl']:.2f} | – | – | "
                   f"{_f(ref['fkl_seconds_per_epoch'], '{:.1f}')} |")
        for r in res["representation"]:
            feats = ", ".join(f"`{f}`" for f in r["features"])
            if "error" in r:
                out.append(f"| {r['method']} | {feats} | failed: {r['error']} | | | |")
                continue
            out.append(f"| {r['method']} | {feats} | {r['test_ppl']:.2f} | {r['vs_fkl']:+.1%} | "
                       f"{_f(r.get('vs_labels_only'), '{:+.1%}')} | {r['seconds_per_epoch']:.1f} |")
        out += ["", "Seed 0, untuned: the term added to the default fkl objective (alpha 0.5) with its default "
                "weight; the teacher runs live (no cache), hence the time per epoch.", ""]
    return "\n".join(out)


def write(res: dict, out: Path) -> None:
    from autokd.utils.io import atomic_write_json, atomic_write_text

    if "seeds" in res:
        res["seeds_goal_met"] = (f"{sum(r['reduction_vs_labels_only'] >= 0.10 for r in res['seeds'])} of "
                                 f"{len(res['seeds'])}")
    atomic_write_json(out, {k: v for k, v in res.items() if not k.startswith("_")})
    atomic_write_text(out.with_suffix(".md"), markdown(res) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec", default="pipelines/lm.yaml")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--parts", default=",".join(PARTS), help="comma-separated, run in this order: " + ",".join(PARTS))
    ap.add_argument("--source", default="runs/lm", help="root holding artifacts/{data,teacher,teacher_outputs}")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra spec override")
    ap.add_argument("--out", default="benchmarks/results/lm_study.json")
    args = ap.parse_args()
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    if bad := [p for p in parts if p not in PARTS]:
        ap.error(f"unknown part(s) {bad}; choose from {', '.join(PARTS)}")
    sets = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            ap.error(f"--set expects KEY=VALUE, got {item!r}")
        sets[key] = yaml.safe_load(value)
    command = "python benchmarks/lm_study.py " + " ".join(
        [f"--seeds {' '.join(map(str, args.seeds))}", f"--parts {','.join(parts)}", f"--source {args.source}"]
        + [f"--set {shlex.quote(s)}" for s in args.set]
        + ([f"--out {args.out}"] if args.out != ap.get_default("out") else []))
    note = ("The teacher is fixed (the pipeline's, seed 0, with its top-k cache); seeds vary the student only "
            "(initial weights and batch order: student.train.seed). Perplexity on the pipeline's test split "
            "(validation where marked).")
    log(f"command: {command}\n{note}")
    res: dict = {"command": command, "note": note, "spec": args.spec, "overrides": sets,
                 "distilled_label": distilled_label(load_lm_spec(args.spec, sets))}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lm_study_") as tmp:
        study = Study(args.spec, Path(args.source), sets, Path(tmp))
        for part in [p for p in PARTS if p in parts]:
            t0 = time.perf_counter()
            log(f"== part {part}")
            {"seeds": lambda: part_seeds(study, args.seeds, res), "topk": lambda: part_topk(study, res),
             "alpha": lambda: part_alpha(study, res), "representation": lambda: part_representation(study, res)}[part]()
            res.setdefault("part_seconds", {})[part] = time.perf_counter() - t0
            res["total_seconds"] = time.perf_counter() - t_all
            write(res, out)
            log(f"== part {part}: {res['part_seconds'][part]:.0f} s; wrote {out} and {out.with_suffix('.md')}")
    print(markdown(res))
    print(f"total {res['total_seconds']:.0f} s\ncommand: {command}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
