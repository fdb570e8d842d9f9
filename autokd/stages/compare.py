"""The method comparison: every single-stage method vs the labels-only baseline, over seeds.

``pipelines/compare/dvc.yaml`` runs, for each (method, seed) of ``pipelines/compare/methods.yaml``,
one ``distill`` stage of the default pipeline (its prepared data, teacher and teacher-output
cache under the root ``artifacts/``; only ``student.train.seed`` changes) and the labels-only
baseline per seed, each into ``runs/compare/<method>/<seed>/``::

    student/        model.safetensors, history.json, manifest.json (parents: data, teacher)
    dvclive/        per-epoch metrics
    metrics.json    test accuracy, nll, ece, agreement with the teacher

and its epoch wall times to ``reports/timings/compare/<method>/<seed>.json`` (not cached: a
cached output must be the same bytes when rerun).

Checkpoints go to ``checkpoints/compare/<method>/<seed>/`` (an interrupted run resumes).
``aggregate`` then writes ``reports/methods.json`` (per method: mean and std over seeds of
test accuracy, of kd_gain = accuracy - the same seed's baseline accuracy, and of seconds per
epoch) and ``reports/methods.png``.

Seconds per epoch is the median over a run's epochs (one epoch = the training pass and the
validation pass); the median ignores the spikes a shared machine adds to single epochs.
Standard deviations are sample standard deviations (ddof = 1) over the seeds.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from autokd.data.prepare import load_prepared
from autokd.lineage.manifest import file_sha256
from autokd.models.artifact import MODEL_FILE, load_model
from autokd.spec.compare import BASELINE, CompareSpec
from autokd.spec.document import dump_spec
from autokd.stages.compare_spec import load_compare_spec, run_pipeline_spec
from autokd.stages.layout import Layout
from autokd.stages.recipe import build_distill_objective, distill_extra, save_role, setup, train_role
from autokd.stages.validate import effective_distill
from autokd.train.trainer import CrossEntropyObjective
from autokd.utils.io import atomic_write_json

DEFAULT_SPEC = "pipelines/compare/methods.yaml"
REPORT_JSON = Path("reports") / "methods.json"
REPORT_PNG = Path("reports") / "methods.png"


def run_dir(root: str | Path, method: str, seed: int, group: str = "compare") -> Path:
    """``group``: ``compare`` (untuned runs) or ``compare_tuned`` (:mod:`autokd.stages.compare_tuned`)."""
    return Path(root) / "runs" / group / method / str(seed)


def timing_path(root: str | Path, method: str, seed: int, group: str = "compare") -> Path:
    """A run's wall times: kept out of its cached folder (a DVC output must be the same bytes on a rerun)."""
    return Path(root) / "reports" / "timings" / group / method / f"{seed}.json"


def checkpoint_dir(root: str | Path, method: str, seed: int, group: str = "compare") -> Path:
    return Path(root) / "checkpoints" / group / method / str(seed)


@dataclass(frozen=True)
class RunLayout(Layout):
    """Reads the data, teacher and teacher outputs under ``root``; writes one run under ``out``."""

    out: Path = Path("runs")
    ckpt: Path = Path("checkpoints")

    def model_dir(self, role: str) -> Path:
        return super().model_dir(role) if role == "teacher" else self.out / role

    def checkpoints(self, role: str) -> Path:
        return self.ckpt

    def live(self, role: str) -> Path:
        return self.out / "dvclive"


def run_layout(root: str | Path, method: str, seed: int, group: str = "compare") -> RunLayout:
    return RunLayout(Path(root), out=run_dir(root, method, seed, group), ckpt=checkpoint_dir(root, method, seed, group))


def run_one(spec: CompareSpec, method: str, seed: int, root: str | Path = ".", progress: bool = True,
            group: str = "compare") -> dict[str, Any]:
    """Train the student of run (method, seed), save it, and write its test metrics (under ``runs/<group>/``)."""
    from autokd.evaluate.metrics import accuracy, agreement, ece, nll, predict_logits

    root = Path(root)
    pspec = run_pipeline_spec(spec, method, seed, root)
    layout = run_layout(root, method, seed, group)
    device, amp = setup(pspec)
    data = load_prepared(layout.data)
    teacher_dir = layout.model_dir("teacher")
    if method == BASELINE:
        make, extra, parents = (lambda m: CrossEntropyObjective()), None, [layout.data]
        section = {"student": dump_spec(pspec.student)}
    else:
        make = lambda m: build_distill_objective(pspec, m, data, layout, device)  # noqa: E731
        extra = distill_extra(pspec, file_sha256(teacher_dir / MODEL_FILE))
        parents = [layout.data, teacher_dir]
        section = {"student": dump_spec(pspec.student), "distill": effective_distill(pspec.distill)}
    model, result = train_role(pspec, "student", pspec.student, data, layout, make, extra, device, amp, progress)
    save_role(layout, "student", model, pspec.student, data, result, parents, section)

    cpu = torch.device("cpu")
    x, y = data.test.x, data.test.y
    logits = predict_logits(model.cpu(), x, cpu)
    t_logits = predict_logits(load_model(teacher_dir), x, cpu)
    epoch_s = result.epoch_seconds  # wall times stay out of the cached history.json
    metrics = {
        "method": method, "seed": seed,
        "kind": "baseline" if method == BASELINE else _kind(method),
        "accuracy": accuracy(logits, y), "nll": nll(logits, y), "ece": ece(logits, y, pspec.evaluate.ece_bins),
        "agreement": agreement(logits, t_logits), "teacher_accuracy": accuracy(t_logits, y),
        "epochs": len(result.history), "val_accuracy": result.final.get("val_accuracy"), "test_samples": len(y),
    }
    atomic_write_json(layout.out / "metrics.json", metrics)
    timing = {"seconds_per_epoch": statistics.median(epoch_s), "seconds_per_epoch_mean": statistics.fmean(epoch_s),
              "epoch_seconds": epoch_s}
    atomic_write_json(timing_path(root, method, seed, group), timing)
    if progress:
        print(f"[{group}] {method} seed {seed}: test accuracy {metrics['accuracy']:.4f}, "
              f"{timing['seconds_per_epoch']:.3f} s/epoch (median)", flush=True)
    return {**metrics, **{k: timing[k] for k in ("seconds_per_epoch", "seconds_per_epoch_mean")}}


def _kind(method: str) -> str:
    from autokd.losses import get_spec

    return get_spec(method).kind


def _mean_std(values: list[float]) -> tuple[float, float]:
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return mean, std


def aggregate(spec: CompareSpec, root: str | Path = ".", plot: bool = True) -> dict[str, Any]:
    """Read every run's metrics, write ``reports/methods.json`` (and the bar chart)."""
    root = Path(root)
    runs: dict[str, dict[int, dict[str, Any]]] = {}
    missing = []
    for name in spec.names():
        for seed in spec.seeds:
            path, timing = run_dir(root, name, seed) / "metrics.json", timing_path(root, name, seed)
            if not path.exists() or not timing.exists():
                missing.append(f"{name}/{seed}")
                continue
            runs.setdefault(name, {})[seed] = {**json.loads(path.read_text()), **json.loads(timing.read_text())}
    if missing:
        raise FileNotFoundError(f"no metrics for run(s) {', '.join(missing)} under {root / 'runs' / 'compare'}; "
                                "run them first (dvc repro pipelines/compare/dvc.yaml)")
    base = {s: runs[BASELINE][s]["accuracy"] for s in spec.seeds}
    methods: dict[str, Any] = {}
    for name in spec.names():
        per_seed = {}
        for seed in spec.seeds:
            m = runs[name][seed]
            per_seed[str(seed)] = {"accuracy": m["accuracy"], "kd_gain": m["accuracy"] - base[seed],
                                   "seconds_per_epoch": m["seconds_per_epoch"], "nll": m["nll"], "ece": m["ece"],
                                   "agreement": m["agreement"]}
        row: dict[str, Any] = {"kind": runs[name][spec.seeds[0]]["kind"]}
        for key in ("accuracy", "kd_gain", "seconds_per_epoch", "nll", "ece", "agreement"):
            mean, std = _mean_std([per_seed[str(s)][key] for s in spec.seeds])
            row[f"{key}_mean"], row[f"{key}_std"] = mean, std
        row["per_seed"] = per_seed
        methods[name] = row
    first = runs[BASELINE][spec.seeds[0]]
    report = {
        "pipeline": spec.pipeline, "seeds": spec.seeds, "overrides": spec.overrides,
        "epochs": first["epochs"], "test_samples": first["test_samples"],
        "teacher_accuracy": first["teacher_accuracy"],
        "notes": "one teacher (the pipeline's, seed 0); only the student seed varies. kd_gain = accuracy - the "
                 "same seed's labels-only baseline accuracy. std: sample std (ddof=1) over seeds. "
                 "seconds_per_epoch: median epoch time of a run (training + validation pass).",
        "methods": methods,
    }
    atomic_write_json(root / REPORT_JSON, report)
    if plot:
        plot_methods(report, root / REPORT_PNG)
    return report


def plot_methods(report: dict[str, Any], path: str | Path) -> None:
    """Bar chart: test accuracy (mean ± std over seeds) and kd_gain per method."""
    from autokd.evaluate.plots import _save, plt

    colors = {"baseline": "0.55", "logit": "tab:blue", "label": "tab:olive", "feature": "tab:orange",
              "relation": "tab:green"}
    names = list(report["methods"])
    rows = [report["methods"][n] for n in names]
    fig, axes = plt.subplots(2, 1, figsize=(max(7.0, 0.55 * len(names) + 2), 6.4), sharex=True)
    xs = range(len(names))
    c = [colors.get(r["kind"], "tab:gray") for r in rows]
    axes[0].bar(xs, [r["accuracy_mean"] for r in rows], yerr=[r["accuracy_std"] for r in rows], color=c, capsize=3)
    base = report["methods"]["baseline"]["accuracy_mean"]
    axes[0].axhline(base, color="0.3", ls="--", lw=1, label=f"labels only {base:.3f}")
    axes[0].axhline(report["teacher_accuracy"], color="tab:red", ls=":", lw=1,
                    label=f"teacher {report['teacher_accuracy']:.3f}")
    lo = min(r["accuracy_mean"] - r["accuracy_std"] for r in rows)
    axes[0].set_ylim(max(0.0, lo - 0.03), min(1.0, max(report["teacher_accuracy"], base) + 0.015))
    axes[0].set_ylabel("student test accuracy")
    axes[0].legend(loc="lower right", fontsize=8)
    n_seeds = len(report["seeds"])
    axes[0].set_title(f"methods on {report['pipeline']}: mean ± std over {n_seeds} student seeds, "
                      f"{report['epochs']} epochs")
    axes[1].bar(xs, [100 * r["kd_gain_mean"] for r in rows], yerr=[100 * r["kd_gain_std"] for r in rows], color=c,
                capsize=3)
    axes[1].axhline(0, color="0.3", lw=1)
    axes[1].set_ylabel("kd_gain (points)")
    axes[1].set_xticks(list(xs), names, rotation=45, ha="right")
    for ax in axes:
        ax.grid(axis="y", alpha=0.3)
    from matplotlib.patches import Patch

    kinds = list(dict.fromkeys(r["kind"] for r in rows))
    axes[1].legend(handles=[Patch(color=colors.get(k, "tab:gray"), label=k) for k in kinds], fontsize=8, ncol=len(kinds))
    _save(fig, Path(path))


def markdown_table(report: dict[str, Any]) -> str:
    """The README table: one row per method."""
    n = len(report["seeds"])
    lines = [
        f"| method | kind | test accuracy (mean ± std, {n} seeds) | kd_gain (points) | s/epoch |",
        "|---|---|---|---|---|",
    ]
    for name, r in report["methods"].items():
        gain = "–" if name == BASELINE else f"{100 * r['kd_gain_mean']:+.2f} ± {100 * r['kd_gain_std']:.2f}"
        lines.append(f"| {name} | {r['kind']} | {r['accuracy_mean']:.4f} ± {r['accuracy_std']:.4f} | {gain} | "
                     f"{r['seconds_per_epoch_mean']:.3f} |")
    return "\n".join(lines)


def run_all(spec: CompareSpec, root: str | Path = ".", progress: bool = True) -> dict[str, Any]:
    """Every run, then the aggregate, without DVC (needs the root pipeline's data and teacher)."""
    for name in spec.names():
        for seed in spec.seeds:
            run_one(spec, name, seed, root, progress)
    return aggregate(spec, root)


def load(spec_path: str | Path = DEFAULT_SPEC, root: str | Path = ".") -> CompareSpec:
    return load_compare_spec(spec_path, root=root)


__all__ = ["RunLayout", "aggregate", "load", "markdown_table", "plot_methods", "run_all", "run_dir", "run_one"]
