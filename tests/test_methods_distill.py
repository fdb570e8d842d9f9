"""A short real distillation run for every registered method, through the pipeline's own stages.

``prepare`` and ``train_teacher`` run once (module fixture) into a temporary root; then
``autokd.stages.distill`` runs once per method with ``distill.method`` overridden. The
objective the stage builds is captured (``build_distill_objective`` is wrapped, not replaced)
so the test can check, on the real run, that logit and label methods never ran the teacher
(they read the teacher-output cache) and that feature/relation methods did, and that the
distillation term changed what was learned: the labels-only baseline of the same seed starts
from the same weights and sees the same batches, so a run whose method term were dropped
would end with the baseline's weights.
"""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
import yaml

import autokd.stages.pipeline as stages
from autokd.data.batches import Batch
from autokd.data.prepare import load_prepared
from autokd.losses import available, get_spec
from autokd.models import build_model
from autokd.models.artifact import load_model
from autokd.models.features import forward_features
from autokd.spec.document import apply_overrides
from autokd.stages import validate_pipeline
from autokd.stages import Layout
from autokd.train.device import seed_everything
from tests.conftest import tiny_cnn_spec

SPEC = tiny_cnn_spec(student_epochs=1)

# Feature pairs where the default (pool -> pool) is not the meaningful choice. Shapes here:
# teacher stem/stage1 (8, 8, 8), stage2 (16, 4, 4); student stem/stage1 (4, 8, 8), stage2 (8, 4, 4).
FEATURES = {
    "at": [{"student": "stage1", "teacher": "stage1"}, {"student": "stage2", "teacher": "stage2"}],
    "fitnet": [{"student": "stage2", "teacher": "stage2"}],
}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("methods")
    base = yaml.safe_load(SPEC)
    spec = validate_pipeline(base, root=root)
    layout = Layout(root)
    stages.prepare(spec, layout)
    stages.train_teacher(spec, layout, progress=False)
    stages.train_baseline(spec, layout, progress=False)
    return base, layout


def _reference_terms(objective, model, batch) -> tuple[float, float]:
    """CE and D in float64, from float64 copies of the student, teacher, adapters and the
    method (the objective's own combination code is not used)."""
    s64, loss64 = copy.deepcopy(model).double().eval(), copy.deepcopy(objective.loss).double()
    x64 = batch.x.double()
    if objective.kind in ("feature", "relation"):
        t64 = copy.deepcopy(objective.teacher).double().eval()
        adapters = copy.deepcopy(objective.adapters).double().eval()
        logits, s_feats = forward_features(s64, x64, objective.student_features)
        _, t_feats = forward_features(t64, x64, objective.teacher_features)
        d = sum(w * loss64(adapters[str(i)](s_feats[s]), t_feats[t]) for i, (s, t, w) in enumerate(objective.pairs))
    else:
        logits = s64(x64)
        teacher = None if objective.kind == "label" else objective.cache.lookup(batch.idx).double()
        d = loss64(logits, teacher, batch.y)
    return torch.nn.functional.cross_entropy(logits, batch.y).item(), d.item()


def _initial_student(spec, data):
    seed_everything(spec.student.train.seed)  # what stages.build_role_model does
    return build_model(spec.student.model.name, spec.student.model.params, data.input_shape, data.num_classes)


@pytest.mark.parametrize("method", [n for n in available() if get_spec(n).task == "classify"])
def test_method_distills_for_real(method, prepared, monkeypatch):
    base, layout = prepared
    overrides = {"distill.method": method, "distill.temperature": None}  # each method's own T
    if method in FEATURES:
        overrides["distill.features"] = FEATURES[method]
    spec = validate_pipeline(apply_overrides(base, overrides), root=layout.root)
    kind = get_spec(method).kind

    built = []
    real = stages.build_distill_objective

    def capture(*args, **kwargs):
        obj = real(*args, **kwargs)
        built.append(obj)
        return obj

    monkeypatch.setattr(stages, "build_distill_objective", capture)
    stages.distill(spec, layout, progress=False)

    assert len(built) == 1
    objective = built[0]
    assert objective.loss.__class__ is get_spec(method).cls
    history = json.loads((layout.model_dir("student") / "history.json").read_text())
    assert len(history) == spec.student.train.epochs
    assert all(math.isfinite(r["train_loss"]) and math.isfinite(r["val_loss"]) for r in history)

    data = load_prepared(layout.data)
    before = _initial_student(spec, data).state_dict()
    after = load_model(layout.model_dir("student")).state_dict()
    changed = [k for k, v in after.items() if v.is_floating_point() and not torch.equal(v, before[k])]
    assert any(k.endswith("weight") for k in changed), f"{method}: no parameter moved"
    baseline = load_model(layout.model_dir("baseline")).state_dict()
    assert baseline.keys() == after.keys()
    gap = max((after[k].float() - baseline[k].float()).abs().max().item() for k in after if after[k].is_floating_point())
    assert gap > 1e-4, f"{method}: the distilled student equals the labels-only one (max |diff| {gap:.2e})"

    # the combined loss, pinned: the objective's value on a training batch (no augmentation, eval
    # mode so BatchNorm and dropout match) against (1 − α)·CE + α·D computed independently
    student = load_model(layout.model_dir("student")).eval()
    batch = Batch(data.train.x[:32], data.train.y[:32], torch.arange(32))
    calls = objective.teacher_calls
    objective.eval()  # its adapters' BatchNorm on running statistics, as the reference's
    with torch.no_grad():
        loss, _, _ = objective(student, batch)
    objective.teacher_calls = calls
    ce, d = _reference_terms(objective, student, batch)
    a = objective.alpha
    assert abs(a * d) > 1e-5, f"{method}: the distillation term ({a * d:.2e}) is too small to pin"
    assert loss.item() == pytest.approx((1 - a) * ce + a * d, rel=1e-4, abs=1e-6), method
    # what the loss holds beyond (1 − α)·CE is α·D (dropping that term fails here even when D is small)
    assert loss.item() - (1 - a) * ce == pytest.approx(a * d, rel=1e-2, abs=1e-6), method

    if kind in ("logit", "label"):
        assert objective.teacher_calls == 0  # cached teacher logits only (or no teacher at all)
        assert objective.teacher is None
    else:
        pairs = [(p["student"], p["teacher"]) for p in FEATURES.get(method, [{"student": "pool", "teacher": "pool"}])]
        assert [(s, t) for s, t, _ in objective.pairs] == pairs
        n_batches = math.ceil(len(data.train) / spec.student.train.batch_size)
        assert objective.teacher_calls == n_batches * spec.student.train.epochs
