"""The distill stage for ``distill.method: auto``: train each candidate recipe, keep the best
by VALIDATION accuracy.

Each candidate (:mod:`autokd.stages.auto_spec`) is the pipeline's own distillation with the
``distill`` section replaced by the candidate's method, λ and T: the same initial weights,
the same batches and the same checkpoint fingerprint that a spec naming that recipe has.
Candidate ``i`` checkpoints under ``checkpoints/student/auto/<i>/``, so an interrupted
selection resumes where it stopped and a finished candidate is not trained again.

The winner has the highest final validation accuracy; a tie goes to the earlier candidate. Only the training and validation splits are read (the test
split is what ``evaluate`` reports, so choosing on it would flatter the result). The winner
is saved as ``artifacts/student`` like a plain ``distill``; its manifest's spec section
holds ``distill`` (the ``auto`` list) and ``selected`` (the winner's effective recipe), and
``artifacts/student/selection.json`` every candidate's validation accuracy and loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from autokd.data.prepare import PreparedData, load_prepared
from autokd.lineage.manifest import file_sha256
from autokd.models.artifact import MODEL_FILE
from autokd.spec.document import dump_spec
from autokd.spec.pipeline import PipelineSpec
from autokd.stages.auto_spec import candidate_distills, describe
from autokd.stages.layout import Layout, LiveLogger
from autokd.stages.recipe import build_distill_objective, build_role_model, distill_extra, role_fingerprint, save_role
from autokd.stages.recipe import fit, setup
from autokd.stages.validate import effective_distill
from autokd.train.trainer import TrainResult
from autokd.utils.io import atomic_write_json

SELECTION_FILE = "selection.json"


@dataclass
class Selection:
    """The winner of an ``auto`` distill and every candidate's validation figures."""

    index: int
    spec: PipelineSpec  # the pipeline with the winner's distill section
    model: torch.nn.Module
    result: TrainResult
    table: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {"selected": self.index, "recipe": effective_distill(self.spec.distill),
                "criterion": "final validation accuracy (a tie: the earlier candidate)",
                "candidates": self.table}


def select_candidate(spec: PipelineSpec, layout: Layout, data: PreparedData, device: torch.device, amp: bool,
                     teacher_sha256: str, progress: bool = True, log=print) -> Selection:
    """Train every candidate of ``spec.distill`` (``auto``) on ``data.train``, score it on
    ``data.val``, return the best. ``data.test`` is never touched."""
    cands = candidate_distills(spec.distill)
    best: Selection | None = None
    best_acc: float | None = None
    table: list[dict[str, Any]] = []
    for i, cand in enumerate(cands):
        cspec = spec.model_copy(update={"distill": cand})
        model = build_role_model(spec.student, data)
        objective = build_distill_objective(cspec, model, data, layout, device)
        fp = role_fingerprint("student", cspec, spec.student, data.sha256, distill_extra(cspec, teacher_sha256))
        result = fit(spec, model, data, spec.student.train, objective, device, amp,
                     layout.checkpoints("student") / "auto" / str(i), fp,
                     f"student [auto {i + 1}/{len(cands)}: {describe(cand)}]", progress)
        acc, loss = float(result.final["val_accuracy"]), float(result.final["val_loss"])
        table.append({"candidate": i, "recipe": describe(cand), "val_accuracy": acc, "val_loss": loss})
        log(f"[distill] auto {i + 1}/{len(cands)} {describe(cand)}: val accuracy {acc:.4f}, val loss {loss:.4f}")
        if best_acc is None or acc > best_acc:  # strict: a tie keeps the earlier candidate
            best_acc = acc
            best = Selection(i, cspec, model, result, table)
        else:
            del model
    assert best is not None  # at least one candidate (AutoParams.candidates has min_length 1)
    best.table = table
    return best


def distill_auto(spec: PipelineSpec, layout: Layout, progress: bool = True) -> Selection:
    """The ``distill`` stage when ``distill.method`` is ``auto``."""
    from autokd.stages.health_run import distill_health

    device, amp = setup(spec)
    data = load_prepared(layout.data)
    teacher_sha = file_sha256(layout.model_dir("teacher") / MODEL_FILE)
    sel = select_candidate(spec, layout, data, device, amp, teacher_sha, progress)
    out = layout.model_dir("student")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / SELECTION_FILE, sel.as_dict())
    live = LiveLogger(layout.live("student"))
    try:
        for rec in sel.result.history:  # the winner's curves, as a plain distill would log them
            live.log(rec)
    finally:
        live.close()
    save_role(layout, "student", sel.model, spec.student, data, sel.result,
              [layout.data, layout.model_dir("teacher")],
              {"student": dump_spec(spec.student), "distill": effective_distill(spec.distill),
               "selected": effective_distill(sel.spec.distill)})
    print(f"[distill] auto chose {describe(sel.spec.distill)} (candidate {sel.index + 1} of {len(sel.table)}) "
          "by validation accuracy", flush=True)
    distill_health(sel.spec, layout, sel.model.to(device), data, device)
    return sel
