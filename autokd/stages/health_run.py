"""Running the health checks of :mod:`autokd.stages.health`: in the ``distill`` stage, in the
``evaluate`` stage, and before anything trains (``autokd doctor``).

- ``distill`` (after the student is saved): ``target_entropy`` (the cached teacher logits),
  ``capacity_gap``, ``gradient_balance`` at the seed's initial weights (judged) and at the
  trained ones (reported). It writes them to ``artifacts/student/health.json`` (deterministic: no timings).
- ``evaluate``: ``teacher_vs_baseline`` and ``kd_gain`` on the test split, ``capacity_gap``
  from the metrics, and the ``distill`` stage's other two; all five go into
  ``reports/metrics.json`` under ``health``. A ``kd_gain`` warning writes
  ``reports/search_hparams.yaml`` (a search over T, λ and the method for this pipeline) and
  names the command that runs it.
- :func:`doctor_checks`: every check its inputs allow, without training a student.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from autokd.data.batches import Batch, BatchIterator
from autokd.data.prepare import PreparedData, load_prepared, prepare_data
from autokd.lineage.manifest import read_manifest
from autokd.models.artifact import MODEL_FILE, load_model
from autokd.spec.document import dump_spec
from autokd.spec.pipeline import PipelineSpec
from autokd.stages.health import (
    CHECKS, GRAD_BATCHES, SEARCH_SPEC, Check, capacity_gap, gradient_balance, gradient_ratio, kd_gain,
    search_spec_text, skipped, target_entropy, teacher_vs_baseline,
)
from autokd.stages.layout import Layout
from autokd.stages.recipe import build_distill_objective, build_role_model, setup
from autokd.train.teacher_cache import CACHE_NAME, TeacherCacheMismatch, load_teacher_outputs
from autokd.utils.io import atomic_write_json, atomic_write_text

HEALTH_FILE = "health.json"


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def print_checks(checks: list[Check], stage: str) -> None:
    for c in checks:
        print(f"[{stage}] health: {c.line}", flush=True)


def _ordered(checks: list[Check]) -> list[Check]:
    return sorted(checks, key=lambda c: CHECKS.index(c.check))


def student_gradient_ratio(spec: PipelineSpec, layout: Layout, data: PreparedData, model: torch.nn.Module,
                           device: torch.device) -> float:
    """The KD/CE gradient-norm ratio of ``model`` (left untouched: a copy is measured) on the
    first :data:`GRAD_BATCHES` training batches of epoch 0, with the distillation term at full
    strength (a method's warm-up is taken as finished)."""
    model = copy.deepcopy(model).to(device)
    objective = build_distill_objective(spec, model, data, layout, device).to(device)
    epochs = spec.student.train.epochs
    objective.on_epoch_start(epochs - 1, epochs)
    cfg = spec.student.train
    it = BatchIterator(data.train.x, data.train.y, cfg.batch_size, True, cfg.seed, cfg.augment)
    batches = [Batch(b.x.to(device), b.y.to(device), b.idx, b.augmented) for b in itertools.islice(it, GRAD_BATCHES)]
    return gradient_ratio(model, objective, batches, spec.distill.alpha)


def distill_health(spec: PipelineSpec, layout: Layout, student: torch.nn.Module, data: PreparedData,
                   device: torch.device) -> list[Check]:
    """The ``distill`` stage's checks on the trained ``student``; printed and written to
    ``artifacts/student/health.json``."""
    cache = load_teacher_outputs(layout.teacher_outputs / CACHE_NAME)
    teacher = load_model(layout.model_dir("teacher"))
    init = build_role_model(spec.student, data)
    ratios = (student_gradient_ratio(spec, layout, data, init, device),
              student_gradient_ratio(spec, layout, data, student, device))
    checks = [
        target_entropy(cache.logits, spec.distill),
        capacity_gap(n_params(teacher), n_params(student), data.input_shape, data.num_classes),
        gradient_balance(ratios[0], spec.distill.alpha, trained=ratios[1]),
    ]
    atomic_write_json(layout.model_dir("student") / HEALTH_FILE, [c.as_dict() for c in checks])
    print_checks(checks, "distill")
    return checks


def _shown(path: str | Path) -> str:
    """``path`` as the command line sees it: as given when relative (to the working directory),
    relative to the working directory when under it, else absolute."""
    p = Path(path)
    if not p.is_absolute():
        return p.as_posix()
    try:
        return p.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return str(p)


def evaluate_health(spec: PipelineSpec, layout: Layout, metrics: dict[str, Any], data: PreparedData,
                    spec_path: str | Path | None = None) -> list[Check]:
    """The ``evaluate`` stage's checks from its ``metrics``, plus the ``distill`` stage's."""
    t, b, s = metrics["teacher"], metrics["baseline"], metrics["student"]
    n_test = int(metrics["test_samples"])
    search_file = layout.root / SEARCH_SPEC
    command = None
    if spec_path is not None:
        command = f"autokd search hparams {_shown(search_file)}"
    gain = kd_gain(s["accuracy"], b["accuracy"], n_test, command=command)
    if gain.status == "warn" and spec_path is not None:
        atomic_write_text(search_file, search_spec_text(spec, _shown(Path(spec_path)), _shown(layout.root)))
    elif search_file.exists():
        search_file.unlink()  # an earlier run's suggestion no longer applies
    checks = [teacher_vs_baseline(t["accuracy"], b["accuracy"], "test"),
              capacity_gap(t["params"], s["params"], data.input_shape, data.num_classes), gain]
    stored = layout.model_dir("student") / HEALTH_FILE
    if stored.exists():
        names = {c.check for c in checks}
        checks += [Check(**c) for c in json.loads(stored.read_text()) if c["check"] not in names]
    checks = _ordered(checks)
    print_checks(checks, "evaluate")
    return checks


# ------------------------------------------------------------------------------ autokd doctor


def _same_spec(directory: Path, section: dict[str, Any]) -> bool:
    try:
        return read_manifest(directory).get("spec") == section
    except FileNotFoundError:
        return False


def _doctor_data(spec: PipelineSpec, layout: Layout, tmp: Path) -> PreparedData:
    """The prepared data under ``layout`` when it was made from this ``data`` section; otherwise
    prepared afresh into ``tmp`` (the layout is left alone)."""
    if (layout.data / "meta.json").exists() and _same_spec(layout.data, {"data": dump_spec(spec.data)}):
        return load_prepared(layout.data)
    return prepare_data(spec.data, tmp / "data", root=Path.cwd())


def doctor_checks(spec: PipelineSpec, layout: Layout, spec_path: str | Path | None = None) -> list[Check]:
    """Every check whose inputs exist, before a student is trained: ``capacity_gap`` always;
    ``target_entropy`` and ``gradient_balance`` (at the student's initial weights) when the
    teacher and its outputs under ``layout`` match the spec; ``teacher_vs_baseline`` (validation
    accuracy) when the labels-only student exists too. The others are ``skip`` lines naming what
    they need; ``kd_gain`` needs a distilled student (the ``evaluate`` stage reports it).
    ``spec_path``: the spec file, named in the commands a skipped check suggests."""
    device, _ = setup(spec)
    args = f"{_shown(spec_path) if spec_path is not None else '<spec>'} --root {_shown(layout.root)}"
    teacher_stage = f"the teacher: `autokd doctor {args} --train-teacher` (runs prepare and train_teacher there)"
    with tempfile.TemporaryDirectory(prefix="autokd-doctor-") as tmp:
        data = _doctor_data(spec, layout, Path(tmp))
        student = build_role_model(spec.student, data)
        teacher_params = n_params(build_role_model(spec.teacher, data))
        checks = [capacity_gap(teacher_params, n_params(student), data.input_shape, data.num_classes),
                  skipped("kd_gain", "the distilled student (the evaluate stage reports it)")]
        teacher_dir = layout.model_dir("teacher")
        cache_file = layout.teacher_outputs / CACHE_NAME
        have_teacher = (teacher_dir / MODEL_FILE).exists() and cache_file.exists()
        why = None
        if not have_teacher:
            why = teacher_stage
        elif not _same_spec(teacher_dir, {"teacher": dump_spec(spec.teacher)}):
            why = f"{teacher_stage} ({teacher_dir} was trained from another teacher section)"
        if why is None:
            try:
                ratio = student_gradient_ratio(spec, layout, data, student, device)
            except TeacherCacheMismatch as exc:
                why = f"{teacher_stage} ({exc})"
        if why is not None:
            checks += [skipped(c, why) for c in ("teacher_vs_baseline", "target_entropy", "gradient_balance")]
            return _ordered(checks)
        checks += [target_entropy(load_teacher_outputs(cache_file).logits, spec.distill),
                   gradient_balance(ratio, spec.distill.alpha)]
        base_dir = layout.model_dir("baseline")
        if (base_dir / MODEL_FILE).exists() and _same_spec(base_dir, {"student": dump_spec(spec.student)}):
            t_acc = read_manifest(teacher_dir)["metrics"].get("val_accuracy")
            b_acc = read_manifest(base_dir)["metrics"].get("val_accuracy")
            checks.append(teacher_vs_baseline(t_acc, b_acc, "validation") if t_acc is not None and b_acc is not None
                          else skipped("teacher_vs_baseline", "a validation split"))
        else:
            checks.append(skipped("teacher_vs_baseline", f"the labels-only student: `autokd stage train_baseline {args}` "
                                  "(the evaluate stage checks the test split)"))
    return _ordered(checks)
