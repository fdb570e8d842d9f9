"""The default pipeline's DVC stages: spec section in, artifacts out.

``dvc.yaml`` runs ``autokd stage <name> <spec>`` for each of ``prepare``, ``train_teacher``,
``train_baseline``, ``distill`` and ``evaluate``; ``autokd run <spec>`` runs them in order
without DVC. Every artifact folder gets a lineage manifest; the layout is
:class:`autokd.stages.layout.Layout`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from autokd.data.prepare import PreparedData, load_prepared, prepare_data
from autokd.lineage.manifest import file_sha256, write_manifest
from autokd.models.artifact import MODEL_FILE
from autokd.spec.document import dump_spec
from autokd.spec.pipeline import PipelineSpec, RoleSpec
from autokd.stages.auto import distill_auto
from autokd.stages.auto_spec import is_auto
from autokd.stages.evaluation import evaluate
from autokd.stages.health_run import distill_health
from autokd.stages.layout import Layout
from autokd.stages.recipe import build_distill_objective, distill_extra, save_role, setup, train_role
from autokd.stages.validate import effective_distill, load_pipeline_spec
from autokd.train.teacher_cache import CACHE_NAME, TeacherOutputs, compute_teacher_logits, save_teacher_outputs
from autokd.train.trainer import CrossEntropyObjective

STAGES = ("prepare", "train_teacher", "train_baseline", "distill", "evaluate")


def prepare(spec: PipelineSpec, layout: Layout, data_root: str | Path | None = None) -> PreparedData:
    """Read the source, split it, normalise it, hash it.

    A relative ``data.path`` resolves against ``data_root`` (default: the current directory,
    the repo root), as ``autokd validate`` resolves it, never against the output root.
    """
    data = prepare_data(spec.data, layout.data, root=Path(data_root) if data_root else Path.cwd())
    files = [f"{s}.safetensors" for s in ("train", "val", "test")] + ["meta.json"]
    write_manifest(layout.data, kind="dataset", content=files, spec={"data": dump_spec(spec.data)},
                   metrics={"n_" + k: v for k, v in data.meta["counts"].items()},
                   extra={"data_sha256": data.sha256}, root=layout.root)
    print(f"[prepare] {data.meta['source']}: {data.meta['counts']} samples, {data.num_classes} classes, "
          f"input {tuple(data.input_shape)}, sha256 {data.sha256[:12]}", flush=True)
    return data


def _train_on_labels(spec: PipelineSpec, layout: Layout, role: str, role_spec: RoleSpec, section: str,
                     progress: bool) -> tuple[torch.nn.Module, PreparedData, torch.device]:
    """Train ``role`` on labels alone and save it (the teacher, and the labels-only baseline)."""
    device, amp = setup(spec)
    data = load_prepared(layout.data)
    model, result = train_role(spec, role, role_spec, data, layout, lambda m: CrossEntropyObjective(), None,
                               device, amp, progress)
    save_role(layout, role, model, role_spec, data, result, [layout.data], {section: dump_spec(role_spec)})
    return model.to(device), data, device


def train_teacher(spec: PipelineSpec, layout: Layout, progress: bool = True) -> None:
    """Train the teacher on labels, then cache its logits on the training split."""
    model, data, device = _train_on_labels(spec, layout, "teacher", spec.teacher, "teacher", progress)
    teacher_sha = file_sha256(layout.model_dir("teacher") / MODEL_FILE)
    logits = compute_teacher_logits(model, data.train, device)
    layout.teacher_outputs.mkdir(parents=True, exist_ok=True)
    save_teacher_outputs(layout.teacher_outputs / CACHE_NAME,
                         TeacherOutputs(logits=logits, data_sha256=data.sha256, teacher_sha256=teacher_sha))
    write_manifest(layout.teacher_outputs, kind="teacher_outputs", content=[CACHE_NAME],
                   parents=[layout.data, layout.model_dir("teacher")], spec={}, root=layout.root)


def train_baseline(spec: PipelineSpec, layout: Layout, progress: bool = True) -> None:
    """Train the student architecture on labels alone (the comparison point for KD)."""
    _train_on_labels(spec, layout, "baseline", spec.student, "student", progress)


def distill(spec: PipelineSpec, layout: Layout, progress: bool = True) -> None:
    """Train the student with the distillation objective (same init and batches as the baseline)."""
    if is_auto(spec.distill):  # candidates trained, the best by validation accuracy kept
        distill_auto(spec, layout, progress)
        return
    device, amp = setup(spec)
    data = load_prepared(layout.data)
    teacher_sha = file_sha256(layout.model_dir("teacher") / MODEL_FILE)
    model, result = train_role(
        spec, "student", spec.student, data, layout,
        lambda m: build_distill_objective(spec, m, data, layout, device),
        distill_extra(spec, teacher_sha), device, amp, progress,
    )
    save_role(layout, "student", model, spec.student, data, result,
              [layout.data, layout.model_dir("teacher")],
              {"student": dump_spec(spec.student), "distill": effective_distill(spec.distill)})
    distill_health(spec, layout, model, data, device)  # target entropy, capacity gap, gradient balance


#: stage name -> function(spec, layout, progress)
STAGE_FUNCTIONS = {
    "prepare": lambda spec, layout, progress: prepare(spec, layout),
    "train_teacher": train_teacher,
    "train_baseline": train_baseline,
    "distill": distill,
    "evaluate": lambda spec, layout, progress: evaluate(spec, layout),
}


def run_stage(name: str, spec_path: str | Path, root: str | Path = ".", progress: bool = True) -> Any:
    """Load and validate ``spec_path``, then run stage ``name`` under ``root``."""
    if name not in STAGE_FUNCTIONS:
        raise ValueError(f"unknown stage {name!r}; stages: {', '.join(STAGES)}")
    layout = Layout(Path(root))
    spec = load_pipeline_spec(spec_path)  # relative data paths: the working directory, as `validate`
    if name == "evaluate":  # its kd_gain health check names a search of this spec file
        return evaluate(spec, layout, spec_path=spec_path)
    return STAGE_FUNCTIONS[name](spec, layout, progress)
