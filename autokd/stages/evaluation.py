"""The ``evaluate`` stage: test metrics of teacher, baseline and student, plots, the report manifest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from autokd.data.prepare import PreparedData, load_prepared
from autokd.evaluate.metrics import agreement, confusion_matrix, model_metrics, predict_logits
from autokd.lineage.manifest import write_manifest
from autokd.models.artifact import load_model
from autokd.spec.document import dump_spec
from autokd.spec.pipeline import EvaluateSpec, PipelineSpec
from autokd.stages.layout import Layout
from autokd.train.device import configure_threads
from autokd.utils.io import atomic_write_json

ROLES = ("teacher", "baseline", "student")


def test_metrics(
    ev: EvaluateSpec, data: PreparedData, layout: Layout, names: list[str] | tuple[str, ...],
) -> tuple[dict[str, torch.Tensor], dict[str, dict[str, Any]]]:
    """Each named model's test logits and metrics (CPU); every model but the teacher also gets
    its top-1 ``agreement`` with the teacher."""
    cpu = torch.device("cpu")
    models = {n: load_model(layout.model_dir(n)) for n in names}
    logits = {n: predict_logits(m, data.test.x, cpu) for n, m in models.items()}
    metrics = {
        n: model_metrics(m, logits[n], data.test.y, data.input_shape, ece_bins=ev.ece_bins,
                         latency_runs=ev.latency_runs, latency_warmup=ev.latency_warmup, threads=ev.latency_threads,
                         throughput_batch=ev.throughput_batch)
        for n, m in models.items()
    }
    for n in names:
        if n != "teacher":
            metrics[n]["agreement"] = agreement(logits[n], logits["teacher"])
    return logits, metrics


def evaluate(spec: PipelineSpec, layout: Layout, spec_path: str | Path | None = None) -> dict[str, Any]:
    """Test metrics for all three models, the health checks (:mod:`autokd.stages.health`), plots,
    and the report manifest. ``spec_path``: the spec file, for the search a check may suggest."""
    from autokd.evaluate.plots import plot_confusion, plot_curves
    from autokd.stages.health_run import evaluate_health

    configure_threads(spec.runtime)
    data = load_prepared(layout.data)
    y = data.test.y
    logits, per_model = test_metrics(spec.evaluate, data, layout, ROLES)
    metrics: dict[str, Any] = dict(per_model)
    metrics["kd_gain"] = metrics["student"]["accuracy"] - metrics["baseline"]["accuracy"]
    metrics["compression"] = metrics["teacher"]["params"] / metrics["student"]["params"]
    metrics["test_samples"] = len(y)
    selection = layout.model_dir("student") / "selection.json"
    if selection.exists():  # distill.method: auto — the recipe the validation accuracy chose
        metrics["student"]["selected"] = json.loads(selection.read_text())["recipe"]
    health = evaluate_health(spec, layout, metrics, data, spec_path)
    metrics["health"] = [c.as_dict() for c in health]

    reports = layout.reports
    plots = reports / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    atomic_write_json(reports / "metrics.json", metrics)
    cm = confusion_matrix(logits["student"], y, data.num_classes)
    names = [str(c) for c in data.meta["class_names"]] or [str(i) for i in range(data.num_classes)]
    plot_confusion(cm, names, plots / "confusion_student.png", "student (distilled): test confusion")
    pred = logits["student"].argmax(1).tolist()
    rows = [{"actual": names[t], "predicted": names[p]} for t, p in zip(y.tolist(), pred)]
    atomic_write_json(plots / "confusion_student.json", rows)
    histories = {role: json.loads((layout.model_dir(role) / "history.json").read_text()) for role in ROLES}
    plot_curves(histories, plots / "training_curves.png")
    write_manifest(
        reports, kind="evaluation", content=["metrics.json"],
        parents=[layout.data] + [layout.model_dir(r) for r in ROLES],
        spec={"evaluate": dump_spec(spec.evaluate)},
        metrics={"teacher.accuracy": metrics["teacher"]["accuracy"],
                 "baseline.accuracy": metrics["baseline"]["accuracy"],
                 "student.accuracy": metrics["student"]["accuracy"], "kd_gain": metrics["kd_gain"]},
        root=layout.root,
    )
    t, b, s = (metrics[r] for r in ROLES)
    print(
        f"[evaluate] test accuracy: teacher {t['accuracy']:.4f} ({t['params']} params), "
        f"baseline {b['accuracy']:.4f}, student {s['accuracy']:.4f} ({s['params']} params); "
        f"kd_gain {metrics['kd_gain']:+.4f}, compression {metrics['compression']:.1f}x, "
        f"agreement {s['agreement']:.4f}",
        flush=True,
    )
    return metrics
