"""The tuned method comparison: each method's chosen configuration trained over the seeds.

``autokd compare tune <method>`` (:mod:`autokd.search.tuned_compare`, the search layer) searches
each method with the same budget (``tuning`` in ``pipelines/compare/methods.yaml``) on the
validation split and writes ``runs/compare_tuned/<method>/chosen.json``. This module, below the
search, reads that file only:

- :func:`tuned_spec`: the comparison spec with the method's entry set to its chosen
  configuration (λ, T where the method has one, its searched knobs; everything else as the
  untuned entry has it);
- :func:`run_tuned`: one (method, seed) run of that configuration, exactly as an untuned run
  is trained and evaluated (:func:`autokd.stages.compare.run_one`), into
  ``runs/compare_tuned/<method>/<seed>/`` (wall times in ``reports/timings/compare_tuned/``);
- :func:`aggregate_tuned`: ``reports/methods_tuned.json``, every method's untuned and tuned test
  accuracy (mean ± std over the seeds), kd_gain against the same seed's labels-only baseline
  of the untuned comparison, and the chosen configuration; :func:`tuned_table` its markdown.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from autokd.spec.compare import BASELINE, CompareSpec, MethodEntry
from autokd.stages.compare import run_dir, run_one
from autokd.utils.io import atomic_write_json

GROUP = "compare_tuned"
REPORT_JSON = Path("reports") / "methods_tuned.json"
PARAMS_PREFIX = "distill.params."


def chosen_path(root: str | Path, method: str) -> Path:
    """The tune stage's output: the method's chosen configuration (validation-selected)."""
    return Path(root) / "runs" / GROUP / method / "chosen.json"


def read_chosen(root: str | Path, method: str) -> dict[str, Any]:
    path = chosen_path(root, method)
    if not path.exists():
        raise FileNotFoundError(f"no {path}: tune the method first (autokd compare tune {method}, or "
                                "dvc repro pipelines/compare/dvc.yaml)")
    return json.loads(path.read_text())


def tuned_entry(entry: MethodEntry, patch: dict[str, Any]) -> MethodEntry:
    """The untuned ``entry`` with a tuning patch (``distill.alpha``, ``distill.temperature``,
    ``distill.params.<knob>``) applied; features and knobs the patch lacks stay as they are."""
    params = dict(entry.params)
    update: dict[str, Any] = {}
    for path, value in patch.items():
        if path.startswith(PARAMS_PREFIX):
            params[path[len(PARAMS_PREFIX):]] = value
        elif path in ("distill.alpha", "distill.temperature"):
            update[path.split(".")[1]] = value
        else:
            raise ValueError(f"a tuning patch sets distill.alpha, distill.temperature or distill.params.*, "
                             f"found {path!r}")
    return entry.model_copy(update={**update, "params": params})


def tuned_spec(spec: CompareSpec, method: str, root: str | Path = ".") -> CompareSpec:
    """The comparison spec whose ``method`` entry is the chosen configuration."""
    chosen = read_chosen(root, method)
    if chosen.get("method") != method:
        raise ValueError(f"{chosen_path(root, method)} holds method {chosen.get('method')!r}, not {method!r}")
    methods = dict(spec.methods)
    methods[method] = tuned_entry(spec.methods[method], chosen["patch"])
    return spec.model_copy(update={"methods": methods})


def run_tuned(spec: CompareSpec, method: str, seed: int, root: str | Path = ".", progress: bool = True) -> dict[str, Any]:
    """Train and evaluate the chosen configuration of ``method`` at ``seed``."""
    if method == BASELINE:
        raise ValueError("the baseline has nothing to tune: its runs are the untuned comparison's")
    return run_one(tuned_spec(spec, method, root), method, seed, root, progress, group=GROUP)


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _metrics(root: Path, method: str, seed: int, group: str, missing: list[str]) -> dict[str, Any] | None:
    path = run_dir(root, method, seed, group) / "metrics.json"
    if not path.exists():
        missing.append(f"runs/{group}/{method}/{seed}")
        return None
    return json.loads(path.read_text())


def aggregate_tuned(spec: CompareSpec, root: str | Path = ".") -> dict[str, Any]:
    """Untuned beside tuned, per method: write and return ``reports/methods_tuned.json``."""
    root = Path(root)
    missing: list[str] = []
    runs: dict[tuple[str, str, int], dict[str, Any]] = {}
    for seed in spec.seeds:
        m = _metrics(root, BASELINE, seed, "compare", missing)
        if m:
            runs["compare", BASELINE, seed] = m
        for name in spec.methods:
            for group in ("compare", GROUP):
                m = _metrics(root, name, seed, group, missing)
                if m:
                    runs[group, name, seed] = m
    chosen = {}
    for name in spec.methods:
        if chosen_path(root, name).exists():
            chosen[name] = read_chosen(root, name)
        else:
            missing.append(str(chosen_path(root, name).relative_to(root)))
    if missing:
        raise FileNotFoundError(f"missing: {', '.join(missing)}; run them first (dvc repro pipelines/compare/dvc.yaml)")
    base = {s: runs["compare", BASELINE, s]["accuracy"] for s in spec.seeds}

    def summary(group: str, name: str) -> dict[str, Any]:
        accs = [runs[group, name, s]["accuracy"] for s in spec.seeds]
        gains = [a - base[s] for a, s in zip(accs, spec.seeds)]
        (am, asd), (gm, gsd) = _mean_std(accs), _mean_std(gains)
        return {"accuracy_mean": am, "accuracy_std": asd, "kd_gain_mean": gm, "kd_gain_std": gsd,
                "per_seed": {str(s): {"accuracy": a, "kd_gain": g} for s, a, g in zip(spec.seeds, accs, gains)}}

    methods = {}
    for name in spec.methods:
        c = chosen[name]
        methods[name] = {"kind": runs["compare", name, spec.seeds[0]]["kind"], "untuned": summary("compare", name),
                         "tuned": summary(GROUP, name), "chosen": c["patch"], "searched": c["searched"],
                         "chosen_val_accuracy": c.get("val_accuracy"), "trials_completed": c.get("completed")}
    bm, bsd = _mean_std(list(base.values()))
    report = {
        "pipeline": spec.pipeline, "seeds": spec.seeds, "tuning": spec.tuning.model_dump(mode="json"),
        "tuning_seed": spec.tuning_seed, "epochs": runs["compare", BASELINE, spec.seeds[0]]["epochs"],
        "baseline": {"accuracy_mean": bm, "accuracy_std": bsd},
        "notes": "tuned: each method searched with the same budget (trials, epochs, sampler seed) over its own "
                 "knobs, lambda and T where it has one, chosen on validation accuracy only, then trained over the "
                 "seeds and evaluated on test. kd_gain = accuracy - the same seed's labels-only baseline "
                 "(untuned comparison). std: sample std (ddof=1) over seeds.",
        "methods": methods,
    }
    atomic_write_json(root / REPORT_JSON, report)
    return report


def _short(path: str) -> str:
    return {"distill.alpha": "λ", "distill.temperature": "T"}.get(path, path.removeprefix(PARAMS_PREFIX))


def describe_patch(patch: dict[str, Any], searched: list[str] | None = None) -> str:
    """``λ=0.72 T=3.1 beta=4.2`` (only the searched knobs, when given)."""
    keys = [k for k in patch if searched is None or k in searched]
    parts = []
    for k in keys:
        v = patch[k]
        parts.append(f"{_short(k)}={v:.3g}" if isinstance(v, float) else f"{_short(k)}={v}")
    return " ".join(parts) or "–"


def tuned_table(report: dict[str, Any]) -> str:
    """The README table: untuned beside tuned, per method."""
    n = len(report["seeds"])
    b = report["baseline"]
    lines = [
        f"| method | kind | untuned test acc. (mean ± sd, {n} seeds) | tuned test acc. | kd_gain untuned → tuned (points) "
        f"| chosen (val acc.) |",
        "|---|---|---|---|---|---|",
        f"| baseline | baseline | {b['accuracy_mean']:.4f} ± {b['accuracy_std']:.4f} | – | – | – |",
    ]
    for name, r in report["methods"].items():
        u, t = r["untuned"], r["tuned"]
        val = r.get("chosen_val_accuracy")
        chosen = describe_patch(r["chosen"], r.get("searched")) + (f" ({val:.4f})" if val is not None else "")
        lines.append(f"| {name} | {r['kind']} | {u['accuracy_mean']:.4f} ± {u['accuracy_std']:.4f} | "
                     f"{t['accuracy_mean']:.4f} ± {t['accuracy_std']:.4f} | "
                     f"{100 * u['kd_gain_mean']:+.2f} ± {100 * u['kd_gain_std']:.2f} → "
                     f"{100 * t['kd_gain_mean']:+.2f} ± {100 * t['kd_gain_std']:.2f} | "
                     f"{chosen} |")
    return "\n".join(lines)


__all__ = ["GROUP", "REPORT_JSON", "aggregate_tuned", "chosen_path", "describe_patch", "read_chosen", "run_tuned",
           "tuned_entry", "tuned_spec", "tuned_table"]
