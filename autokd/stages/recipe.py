"""The public recipe every run is made of: set up, build, train a role, save it.

The default pipeline's stages, the chains, the method comparison, hyperparameter-search
trials and the architecture search's validation all call these functions, so a given spec
builds the same initial weights, sees the same batches and resumes from the same checkpoint
fingerprint whichever of them runs it (on the CPU: the same bytes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch

from autokd.data.prepare import PreparedData
from autokd.lineage.manifest import file_sha256, write_manifest
from autokd.models.artifact import MODEL_FILE, load_model, save_model
from autokd.models.features import feature_shapes
from autokd.models.registry import build_model
from autokd.spec.document import dump_spec
from autokd.spec.errors import SpecError
from autokd.spec.pipeline import PLACEMENT_KEYS, PipelineSpec, RoleSpec
from autokd.stages.auto_spec import candidate_distills, is_auto
from autokd.stages.layout import Layout, LiveLogger
from autokd.stages.validate import effective_distill, feature_pair_issues, method_params
from autokd.train.device import autocast_dtype, configure_threads, resolve_device, seed_everything, teacher_dtype
from autokd.train.distill import DistillObjective
from autokd.train.teacher_cache import CACHE_NAME, load_teacher_outputs
from autokd.train.trainer import TrainResult, fingerprint, train
from autokd.utils.code import training_code_digest


def setup(spec: PipelineSpec) -> tuple[torch.device, torch.dtype | None]:
    """Torch threads, the device and the autocast dtype (None: fp32), from ``spec.runtime``."""
    configure_threads(spec.runtime)
    device = resolve_device(spec.runtime)
    return device, autocast_dtype(spec.runtime, device)


def build_role_model(role_spec: RoleSpec, data: PreparedData) -> torch.nn.Module:
    """The role's model at its seed's initial weights (seeding first fixes every later draw)."""
    seed_everything(role_spec.train.seed)
    return build_model(role_spec.model.name, role_spec.model.params, data.input_shape, data.num_classes)


def distill_extra(spec: PipelineSpec, source_sha256: str, **more: Any) -> dict[str, Any]:
    """What a distilled run's fingerprint adds to the role's: the effective distillation recipe
    (defaults filled in, unused knobs absent) and the teacher's content hash."""
    return {"distill": effective_distill(spec.distill), "teacher": source_sha256, **more}


def role_fingerprint(role: str, spec: PipelineSpec, role_spec: RoleSpec, data_sha256: str, extra: Any) -> str:
    """The checkpoint fingerprint of a run: a checkpoint with another one is ignored. It holds
    the training code's digest, so changed code trains afresh rather than resuming."""
    runtime = {k: v for k, v in dump_spec(spec.runtime).items() if k not in PLACEMENT_KEYS}  # resumable on any N
    return fingerprint(role, dump_spec(role_spec), runtime, data_sha256, extra, {"code": training_code_digest()})


def train_role(
    spec: PipelineSpec,
    role: str,
    role_spec: RoleSpec,
    data: PreparedData,
    layout: Layout,
    make_objective: Callable[[torch.nn.Module], torch.nn.Module],
    extra_fingerprint: Any,
    device: torch.device,
    amp: torch.dtype | bool | None,
    progress: bool = True,
    model: torch.nn.Module | None = None,
) -> tuple[torch.nn.Module, TrainResult]:
    """Build ``role``'s model (or take ``model``, its initial weights), train it with checkpoints
    under ``layout`` and DVCLive metrics."""
    model = build_role_model(role_spec, data) if model is None else model
    objective = make_objective(model)
    fp = role_fingerprint(role, spec, role_spec, data.sha256, extra_fingerprint)
    live = LiveLogger(layout.live(role))
    try:
        result = fit(spec, model, data, role_spec.train, objective, device, amp, layout.checkpoints(role), fp, role,
                     progress, on_epoch=live.log, replay=live.log)
    finally:
        live.close()
    return model, result


def fit(spec: PipelineSpec, model: torch.nn.Module, data: PreparedData, cfg, objective: torch.nn.Module,
        device: torch.device, amp, checkpoint_dir: Path, run_fingerprint: str, name: str, progress: bool = True,
        on_epoch=None, replay=None) -> TrainResult:
    """:func:`~autokd.train.train` of ``model`` on ``data`` with checkpoints in ``checkpoint_dir``; with
    ``runtime.workers`` ≥ 2 on that many Ray Train workers first (:mod:`autokd.train.distributed`),
    whose final checkpoint the same call then restores (no epoch left to run)."""
    if spec.runtime.workers > 1:
        from autokd.train.distributed import fit_on_workers

        fit_on_workers(model, data.train, data.val, cfg, objective, runtime=spec.runtime, amp=amp,
                       checkpoint_dir=checkpoint_dir, run_fingerprint=run_fingerprint, name=name, progress=progress)
    return train(model, data.train, data.val, cfg, objective, device=device, amp=amp, checkpoint_dir=checkpoint_dir,
                 run_fingerprint=run_fingerprint, name=name, on_epoch=on_epoch, replay=replay, progress=progress)


def save_role(
    layout: Layout, role: str, model: torch.nn.Module, role_spec: RoleSpec, data: PreparedData,
    result: TrainResult, parents: list[Path], spec_section: dict[str, Any],
) -> dict[str, Any]:
    """The trained model (safetensors), its history and its lineage manifest."""
    from autokd.utils.io import atomic_write_json

    out = layout.model_dir(role)
    out.mkdir(parents=True, exist_ok=True)
    save_model(out / MODEL_FILE, model.cpu(), role_spec.model.name, role_spec.model.params,
               data.input_shape, data.num_classes)
    atomic_write_json(out / "history.json", result.history)
    final = {k: v for k, v in result.final.items()
             if k.startswith("val_") or k.startswith("train_") or k == "kept_epoch"}
    note = getattr(model, "vocab_note", None)  # a padded embedding whose logits are cut (hf_causal_lm)
    return write_manifest(out, kind=role, content=[MODEL_FILE], parents=parents, spec=spec_section,
                          metrics=final, root=layout.root, extra={"vocabulary": note} if note else None)


def resolve_auto(spec: PipelineSpec) -> PipelineSpec:
    """``distill.method: auto`` outside the distill stage (search trials, architecture validation)
    stands for its first candidate; the distill stage itself chooses (:mod:`autokd.stages.auto`)."""
    if not is_auto(spec.distill):
        return spec
    return spec.model_copy(update={"distill": candidate_distills(spec.distill)[0]})


def teacher_mode(spec: PipelineSpec) -> str:
    """``cache`` or ``live``: whether distillation reads cached teacher logits."""
    from autokd.losses import get_spec as get_loss_spec

    spec = resolve_auto(spec)
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
    """The distillation objective for ``spec``, reading the teacher-output cache when it can.

    Feature pairs (aliases or module paths) are checked here against the built student and
    teacher at the data's input shape: a :class:`SpecError` at ``distill.features[i].student``
    (or ``.teacher``) naming the nearest valid names, before anything trains.
    """
    from autokd.losses import get_spec as get_loss_spec

    spec = resolve_auto(spec)
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
        teacher = load_model(teacher_path).to(device, dtype=teacher_dtype(spec.runtime, device))
    pairs = [(p.student, p.teacher, p.weight) for p in spec.distill.features]
    s_shapes = t_shapes = None
    if kind in ("feature", "relation"):
        s_shapes = feature_shapes(student, data.input_shape)
        t_shapes = feature_shapes(teacher, data.input_shape)
        issues = feature_pair_issues(spec.distill.features, kind, s_shapes, t_shapes, ("distill", "features"))
        if issues:
            raise SpecError(None, issues)
    return DistillObjective(
        spec.distill.method, method_params(spec.distill), spec.distill.alpha, teacher=teacher,
        cache=cache if mode == "cache" else None, feature_pairs=pairs,
        student_shapes=s_shapes, teacher_shapes=t_shapes,
    )
