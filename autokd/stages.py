"""The DVC stage entry points: spec section in, artifacts out.

``dvc.yaml`` runs ``autokd stage <name> <spec>`` for each of ``prepare``, ``train_teacher``,
``train_baseline``, ``distill`` and ``evaluate``; ``autokd run <spec>`` runs them in order
without DVC. Every artifact folder gets a lineage manifest.

Layout under the output root (the repo root under ``dvc repro``)::

    artifacts/data/              prepared splits + meta.json + manifest.json
    artifacts/teacher/           model.safetensors, history.json, manifest.json
    artifacts/teacher_outputs/   train_logits.safetensors (the teacher-output cache)
    artifacts/baseline/          the student trained on labels alone
    artifacts/student/           the distilled student
    checkpoints/<role>/          per-epoch checkpoints (persisted across runs, for resume)
    dvclive/<role>/              per-epoch metrics (DVC plots)
    reports/metrics.json         test metrics of all three models (DVC metrics)
    reports/plots/               confusion matrix and training curves (PNG + CSV)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from autokd.data.prepare import PreparedData, load_prepared, prepare_data
from autokd.evaluate.metrics import agreement, confusion_matrix, model_metrics, predict_logits
from autokd.lineage.manifest import file_sha256, write_manifest
from autokd.models.artifact import MODEL_FILE, load_model, save_model
from autokd.models.registry import build_model, feature_names
from autokd.spec.load import dump_spec, load_pipeline_spec, method_params
from autokd.spec.pipeline import PipelineSpec, RoleSpec
from autokd.train.device import configure_threads, resolve_device, seed_everything, use_amp
from autokd.train.distill import DistillObjective
from autokd.train.teacher_cache import (
    CACHE_NAME,
    TeacherOutputs,
    compute_teacher_logits,
    load_teacher_outputs,
    save_teacher_outputs,
)
from autokd.train.trainer import CrossEntropyObjective, TrainResult, fingerprint, train
from autokd.utils.io import atomic_write_json

STAGES = ("prepare", "train_teacher", "train_baseline", "distill", "evaluate")
ROLES = ("teacher", "baseline", "student")


@dataclass(frozen=True)
class Layout:
    """Where each stage reads and writes, under one root."""

    root: Path = Path(".")

    @property
    def data(self) -> Path:
        return self.root / "artifacts" / "data"

    def model_dir(self, role: str) -> Path:
        return self.root / "artifacts" / role

    @property
    def teacher_outputs(self) -> Path:
        return self.root / "artifacts" / "teacher_outputs"

    def checkpoints(self, role: str) -> Path:
        return self.root / "checkpoints" / role

    def live(self, role: str) -> Path:
        return self.root / "dvclive" / role

    @property
    def reports(self) -> Path:
        return self.root / "reports"


class LiveLogger:
    """Per-epoch metrics through DVCLive (plots declared in dvc.yaml)."""

    KEYS = {"train_loss": "train/loss", "train_accuracy": "train/accuracy", "val_loss": "val/loss",
            "val_accuracy": "val/accuracy", "lr": "lr"}

    def __init__(self, directory: Path):
        from dvclive import Live

        self.live = Live(str(directory), save_dvc_exp=False, dvcyaml=None)

    def log(self, rec: dict[str, float], *_: Any) -> None:
        for key, name in self.KEYS.items():
            if key in rec:
                self.live.log_metric(name, rec[key])
        self.live.next_step()

    def close(self) -> None:
        self.live.end()


def _setup(spec: PipelineSpec) -> tuple[torch.device, bool]:
    configure_threads(spec.runtime)
    device = resolve_device(spec.runtime)
    return device, use_amp(spec.runtime, device)


def _train_role(
    spec: PipelineSpec,
    role: str,
    role_spec: RoleSpec,
    data: PreparedData,
    layout: Layout,
    make_objective: Callable[[torch.nn.Module], torch.nn.Module],
    extra_fingerprint: Any,
    device: torch.device,
    amp: bool,
    progress: bool = True,
) -> tuple[torch.nn.Module, TrainResult]:
    seed_everything(role_spec.train.seed)
    model = build_model(role_spec.model.name, role_spec.model.params, data.input_shape, data.num_classes)
    objective = make_objective(model)
    fp = fingerprint(role, dump_spec(role_spec), dump_spec(spec.runtime), data.sha256, extra_fingerprint)
    live = LiveLogger(layout.live(role))
    try:
        result = train(
            model, data.train, data.val, role_spec.train, objective,
            device=device, amp=amp, checkpoint_dir=layout.checkpoints(role), run_fingerprint=fp,
            name=role, on_epoch=live.log, replay=live.log, progress=progress,
        )
    finally:
        live.close()
    return model, result


def _save_role(
    layout: Layout, role: str, model: torch.nn.Module, role_spec: RoleSpec, data: PreparedData,
    result: TrainResult, parents: list[Path], spec_section: dict[str, Any],
) -> dict[str, Any]:
    out = layout.model_dir(role)
    out.mkdir(parents=True, exist_ok=True)
    save_model(out / MODEL_FILE, model.cpu(), role_spec.model.name, role_spec.model.params,
               data.input_shape, data.num_classes)
    atomic_write_json(out / "history.json", result.history)
    final = {k: v for k, v in result.final.items() if k.startswith("val_") or k.startswith("train_")}
    return write_manifest(out, kind=role, content=[MODEL_FILE], parents=parents, spec=spec_section,
                          metrics=final, root=layout.root)


# ---------------------------------------------------------------------------------- stages


def prepare(spec: PipelineSpec, layout: Layout) -> PreparedData:
    """Read the source, split it, normalise it, hash it."""
    data = prepare_data(spec.data, layout.data, root=layout.root)
    files = [f"{s}.safetensors" for s in ("train", "val", "test")] + ["meta.json"]
    write_manifest(layout.data, kind="dataset", content=files, spec={"data": dump_spec(spec.data)},
                   metrics={"n_" + k: v for k, v in data.meta["counts"].items()},
                   extra={"data_sha256": data.sha256}, root=layout.root)
    print(f"[prepare] {data.meta['source']}: {data.meta['counts']} samples, {data.num_classes} classes, "
          f"input {tuple(data.input_shape)}, sha256 {data.sha256[:12]}", flush=True)
    return data


def train_teacher(spec: PipelineSpec, layout: Layout, progress: bool = True) -> None:
    """Train the teacher on labels, then cache its logits on the training split."""
    device, amp = _setup(spec)
    data = load_prepared(layout.data)
    model, result = _train_role(spec, "teacher", spec.teacher, data, layout,
                                lambda m: CrossEntropyObjective(), None, device, amp, progress)
    _save_role(layout, "teacher", model, spec.teacher, data, result, [layout.data],
               {"teacher": dump_spec(spec.teacher)})
    teacher_sha = file_sha256(layout.model_dir("teacher") / MODEL_FILE)
    logits = compute_teacher_logits(model.to(device), data.train, device)
    layout.teacher_outputs.mkdir(parents=True, exist_ok=True)
    save_teacher_outputs(layout.teacher_outputs / CACHE_NAME,
                         TeacherOutputs(logits=logits, data_sha256=data.sha256, teacher_sha256=teacher_sha))
    write_manifest(layout.teacher_outputs, kind="teacher_outputs", content=[CACHE_NAME],
                   parents=[layout.data, layout.model_dir("teacher")], spec={}, root=layout.root)


def train_baseline(spec: PipelineSpec, layout: Layout, progress: bool = True) -> None:
    """Train the student architecture on labels alone (the comparison point for KD)."""
    device, amp = _setup(spec)
    data = load_prepared(layout.data)
    model, result = _train_role(spec, "baseline", spec.student, data, layout,
                                lambda m: CrossEntropyObjective(), None, device, amp, progress)
    _save_role(layout, "baseline", model, spec.student, data, result, [layout.data],
               {"student": dump_spec(spec.student)})


def teacher_mode(spec: PipelineSpec) -> str:
    """``cache`` or ``live``: whether distillation reads cached teacher logits."""
    from autokd.losses import get_spec as get_loss_spec

    kind = get_loss_spec(spec.distill.method).kind
    requested = spec.distill.teacher_outputs
    needs_live = spec.student.train.augment.enabled or kind in ("feature", "relation")
    if requested == "cache" and needs_live:
        why = "augmentation changes the inputs" if spec.student.train.augment.enabled else f"{kind} methods need features"
        raise ValueError(f"distill.teacher_outputs is 'cache' but {why}; use 'auto' or 'live'")
    if requested == "live" or needs_live:
        return "live"
    return "cache"


def build_distill_objective(
    spec: PipelineSpec, student: torch.nn.Module, data: PreparedData, layout: Layout, device: torch.device
) -> DistillObjective:
    """The distillation objective for ``spec``, reading the teacher-output cache when it can."""
    from autokd.losses import get_spec as get_loss_spec

    kind = get_loss_spec(spec.distill.method).kind
    mode = teacher_mode(spec)
    teacher_path = layout.model_dir("teacher") / MODEL_FILE
    cache = None
    if kind == "logit":
        cache = load_teacher_outputs(layout.teacher_outputs / CACHE_NAME)
        cache.check(data.sha256, len(data.train), file_sha256(teacher_path))
    teacher = None
    need_teacher = kind in ("feature", "relation") or (kind == "logit" and mode == "live")
    if need_teacher:
        teacher = load_model(teacher_path).to(device)
    pairs = [(p.student, p.teacher, p.weight) for p in spec.distill.features]
    s_shapes = t_shapes = None
    if kind in ("feature", "relation"):
        s_shapes = feature_names(student, data.input_shape)
        t_shapes = feature_names(teacher.cpu(), data.input_shape)
        teacher.to(device)
    return DistillObjective(
        spec.distill.method, method_params(spec), spec.distill.alpha, teacher=teacher,
        cache=cache if mode == "cache" else None, feature_pairs=pairs,
        student_shapes=s_shapes, teacher_shapes=t_shapes,
    )


def distill(spec: PipelineSpec, layout: Layout, progress: bool = True) -> None:
    """Train the student with the distillation objective (same init and batches as the baseline)."""
    device, amp = _setup(spec)
    data = load_prepared(layout.data)
    teacher_sha = file_sha256(layout.model_dir("teacher") / MODEL_FILE)
    model, result = _train_role(
        spec, "student", spec.student, data, layout,
        lambda m: build_distill_objective(spec, m, data, layout, device),
        {"distill": dump_spec(spec.distill), "teacher": teacher_sha}, device, amp, progress,
    )
    _save_role(layout, "student", model, spec.student, data, result,
               [layout.data, layout.model_dir("teacher")],
               {"student": dump_spec(spec.student), "distill": dump_spec(spec.distill)})


def evaluate(spec: PipelineSpec, layout: Layout) -> dict[str, Any]:
    """Test metrics for all three models, plots, and the report manifest."""
    from autokd.evaluate.plots import plot_confusion, plot_curves

    configure_threads(spec.runtime)
    cpu = torch.device("cpu")
    data = load_prepared(layout.data)
    ev = spec.evaluate
    x, y = data.test.x, data.test.y
    models = {role: load_model(layout.model_dir(role)) for role in ROLES}
    logits = {role: predict_logits(m, x, cpu) for role, m in models.items()}
    metrics: dict[str, Any] = {}
    for role, model in models.items():
        metrics[role] = model_metrics(
            model, logits[role], y, data.input_shape, ece_bins=ev.ece_bins, latency_runs=ev.latency_runs,
            latency_warmup=ev.latency_warmup, threads=ev.latency_threads, throughput_batch=ev.throughput_batch,
        )
    metrics["student"]["agreement"] = agreement(logits["student"], logits["teacher"])
    metrics["baseline"]["agreement"] = agreement(logits["baseline"], logits["teacher"])
    metrics["kd_gain"] = metrics["student"]["accuracy"] - metrics["baseline"]["accuracy"]
    metrics["compression"] = metrics["teacher"]["params"] / metrics["student"]["params"]
    metrics["test_samples"] = len(y)

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


def run_stage(name: str, spec_path: str | Path, root: str | Path = ".", progress: bool = True) -> Any:
    """Load and validate ``spec_path``, then run stage ``name`` under ``root``."""
    if name not in STAGES:
        raise ValueError(f"unknown stage {name!r}; stages: {', '.join(STAGES)}")
    layout = Layout(Path(root))
    spec = load_pipeline_spec(spec_path, root=layout.root)
    if name == "prepare":
        return prepare(spec, layout)
    if name == "evaluate":
        return evaluate(spec, layout)
    return {"train_teacher": train_teacher, "train_baseline": train_baseline, "distill": distill}[name](
        spec, layout, progress=progress
    )
