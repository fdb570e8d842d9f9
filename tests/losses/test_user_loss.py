"""A user's own loss class named by import path (``distill.method: pkg.module:Class``).

The classes are written into ``tmp_path`` as a module and put on ``sys.path``; the spec is
validated by :func:`autokd.stages.validate_pipeline` and the loss trains through the
pipeline's own objective builder (:func:`autokd.stages.build_distill_objective`) and trainer.
"""

from __future__ import annotations

import math
import sys

import pytest
import torch
import torch.nn.functional as F

from autokd.data.batches import Batch
from autokd.data.prepare import PreparedData, Split
from autokd.lineage.manifest import file_sha256
from autokd.losses import LossConfigError, LossImportError, available, create, get_spec
from autokd.models import build_model
from autokd.models.artifact import MODEL_FILE, save_model
from autokd.spec.errors import SpecError
from autokd.stages import Layout, build_distill_objective, build_role_model, validate_pipeline
from autokd.stages.validate import effective_distill
from autokd.train.teacher_cache import CACHE_NAME, TeacherOutputs, compute_teacher_logits, save_teacher_outputs
from autokd.train.trainer import train

MODULE = "autokd_test_user_losses"
SOURCE = '''
from pydantic import BaseModel, Field
from torch import nn


class GapLoss(nn.Module):
    """A user's logit loss: scale * mean squared logit gap + offset (a known constant)."""

    kind = "logit"
    paper = "Someone 2025"
    calls = 0

    class Params(BaseModel):  # no extra="forbid": autokd imposes it
        scale: float = Field(1.0, gt=0, description="weight of the gap")
        offset: float = 3.0

    def __init__(self, scale=1.0, offset=3.0):
        super().__init__()
        self.scale, self.offset = scale, offset

    def forward(self, student_logits, teacher_logits, targets):
        type(self).calls += 1
        return self.scale * (student_logits - teacher_logits).pow(2).mean() + self.offset


class PlainLoss(nn.Module):
    """No kind (a logit loss), no Params (no parameters)."""

    def forward(self, s, t, y=None):
        return (s - t).abs().mean()


class FeatureLoss(nn.Module):
    kind = "feature"

    def forward(self, student_feature, teacher_feature):
        return (student_feature - teacher_feature).pow(2).mean()


def not_a_class(s, t, y):
    return s.sum()


class NotAModule:
    def forward(self, s, t, y):
        return s.sum()


class BadKind(nn.Module):
    kind = "logits"

    def forward(self, s, t, y):
        return s.sum()


class TwoArgs(nn.Module):
    def forward(self, s, t):
        return s.sum()


class NoForward(nn.Module):
    kind = "feature"


class BadParams(nn.Module):
    Params = dict

    def forward(self, s, t, y):
        return s.sum()


class BadInit(nn.Module):
    class Params(BaseModel):
        scale: float = 1.0

    def __init__(self, weight=1.0):
        super().__init__()

    def forward(self, s, t, y):
        return s.sum()

raise_on_import = False
'''

TEACHER = {"stem_width": 8, "depths": [1, 1], "widths": [8, 16]}
SHAPE = (1, 8, 8)


@pytest.fixture
def user_losses(tmp_path, monkeypatch):
    (tmp_path / f"{MODULE}.py").write_text(SOURCE)
    (tmp_path / "autokd_test_broken_losses.py").write_text("import no_such_package_here\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in (MODULE, "autokd_test_broken_losses"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return MODULE


def _pipeline(method: str, **distill):
    return {
        "data": {"source": "digits"},
        "teacher": {"model": {"name": "cnn", "params": TEACHER}},
        "student": {"model": {"name": "mlp", "params": {"hidden": [16]}},
                    "train": {"epochs": 1, "batch_size": 32, "seed": 0}},
        "distill": {"method": method, "alpha": 0.5, **distill},
        "runtime": {"device": "cpu"},
    }


def _issues(data) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        validate_pipeline(data)
    return {i.path: i.render(None) for i in info.value.issues}


# ------------------------------------------------------------------ registry


def test_get_spec_and_create_accept_the_import_path(user_losses):
    path = f"{user_losses}:GapLoss"
    spec = get_spec(path)
    assert spec.name == path and spec.kind == "logit" and spec.needs_teacher
    assert spec.paper == "Someone 2025" and spec.summary.startswith("A user's logit loss")
    assert set(spec.params.model_fields) == {"scale", "offset"}
    assert spec.params.model_config.get("extra") == "forbid"
    assert get_spec(path) is spec  # checked once per class
    loss = create(path, scale=2.0)
    assert isinstance(loss, spec.cls) and loss.scale == 2.0 and loss.offset == 3.0
    with pytest.raises(LossConfigError, match="unknown parameter 'scal'.*did you mean 'scale'"):
        create(path, scal=2.0)
    plain = get_spec(f"{user_losses}:PlainLoss")
    assert plain.kind == "logit" and plain.params.model_fields == {}  # the defaults: logit, no parameters
    assert get_spec(f"{user_losses}:FeatureLoss").kind == "feature"
    assert path not in available()  # the catalog lists registered methods only


def test_pipeline_spec_with_a_user_loss_validates(user_losses):
    path = f"{user_losses}:GapLoss"
    spec = validate_pipeline(_pipeline(path, params={"scale": 2.0}))
    assert spec.distill.method == path
    assert effective_distill(spec.distill)["params"] == {"scale": 2.0, "offset": 3.0}

    issues = _issues(_pipeline(path, params={"scal": 2.0}))
    assert list(issues) == ["distill.params.scal"]
    assert "expected a known key (scale, offset), found unknown key 'scal' (did you mean 'scale'?)" in issues[
        "distill.params.scal"]
    issues = _issues(_pipeline(path, params={"scale": -1}))
    assert "distill.params.scale: expected a number greater than 0, found -1" in issues["distill.params.scale"]
    # the temperature rule reads the user's Params like a built-in's
    issues = _issues(_pipeline(path, temperature=2.0))
    assert "distill.temperature: expected no temperature for method" in issues["distill.temperature"]
    # without Params, distill.params must be empty
    issues = _issues(_pipeline(f"{user_losses}:PlainLoss", params={"weight": 1}))
    assert list(issues) == ["distill.params.weight"]


@pytest.mark.parametrize("attr, expected, found", [
    ("Missing", "an importable loss class", "has no attribute 'Missing'"),
    ("not_a_class", "an nn.Module subclass", "function 'not_a_class'"),
    ("NotAModule", "an nn.Module subclass", "class 'NotAModule' (not an nn.Module)"),
    ("BadKind", "a class attribute kind, one of logit, feature, relation, label", "'logits' (did you mean 'logit'?)"),
    ("TwoArgs", "forward(student_logits, teacher_logits, targets) -> scalar (kind 'logit'", "forward(self, s, t)"),
    ("NoForward", "a forward method", "without forward"),
    ("BadParams", "a class attribute Params that is a pydantic BaseModel subclass", "<class 'dict'>"),
    ("BadInit", "BadInit.__init__ taking its Params fields as keywords (scale)", "__init__(weight=1.0)"),
])
def test_protocol_violations_are_errors_at_distill_method(user_losses, attr, expected, found):
    issues = _issues(_pipeline(f"{user_losses}:{attr}"))
    assert list(issues) == ["distill.method"]
    assert f"expected {expected}" in issues["distill.method"] and found in issues["distill.method"]
    with pytest.raises(LossImportError):
        get_spec(f"{user_losses}:{attr}")


def test_unimportable_module_is_an_error_at_distill_method(user_losses):
    issues = _issues(_pipeline("autokd_test_broken_losses:Loss"))
    assert "distill.method: expected an importable loss class" in issues["distill.method"]
    assert "cannot import module 'autokd_test_broken_losses'" in issues["distill.method"]
    assert "no_such_package_here" in issues["distill.method"]
    issues = _issues(_pipeline("kdd"))
    assert "expected a distillation method or a pkg.module:Class loss" in issues["distill.method"]


# ------------------------------------------------------------------ a real run


def _split(n: int, seed: int) -> Split:
    g = torch.Generator().manual_seed(seed)
    return Split(x=torch.randn(n, *SHAPE, generator=g), y=torch.randint(0, 10, (n,), generator=g), index=torch.arange(n))


def test_user_loss_trains_through_the_pipeline_objective(user_losses, tmp_path):
    path = f"{user_losses}:GapLoss"
    spec = validate_pipeline(_pipeline(path, params={"scale": 2.0, "offset": 5.0}))
    data = PreparedData(train=_split(64, 1), val=_split(32, 2), test=_split(32, 3),
                        meta={"num_classes": 10, "input_shape": list(SHAPE), "sha256": "0" * 64})
    layout = Layout(tmp_path / "root")
    torch.manual_seed(0)
    teacher = build_model("cnn", TEACHER, SHAPE, 10)
    layout.model_dir("teacher").mkdir(parents=True)
    save_model(layout.model_dir("teacher") / MODEL_FILE, teacher, "cnn", TEACHER, SHAPE, 10)
    t_logits = compute_teacher_logits(teacher, data.train, torch.device("cpu"))
    layout.teacher_outputs.mkdir(parents=True)
    save_teacher_outputs(layout.teacher_outputs / CACHE_NAME, TeacherOutputs(
        logits=t_logits, data_sha256=data.sha256,
        teacher_sha256=file_sha256(layout.model_dir("teacher") / MODEL_FILE)))

    student = build_role_model(spec.student, data)
    objective = build_distill_objective(spec, student, data, layout, torch.device("cpu"))
    cls = get_spec(path).cls
    assert type(objective.loss) is cls and objective.loss.scale == 2.0 and objective.cache is not None

    idx = torch.arange(10, 26)
    batch = Batch(x=data.train.x[idx], y=data.train.y[idx], idx=idx)
    calls = cls.calls
    loss, logits, parts = objective(student, batch)
    assert cls.calls == calls + 1
    gap = 2.0 * (logits.detach() - t_logits[idx]).pow(2).mean() + 5.0  # the user's formula, cached teacher
    assert torch.allclose(parts["distill"], gap)
    assert torch.allclose(loss.detach(), 0.5 * F.cross_entropy(logits.detach(), batch.y) + 0.5 * gap)

    before = [p.detach().clone() for p in student.parameters()]
    result = train(student, data.train, data.val, spec.student.train, objective, device=torch.device("cpu"),
                   progress=False)
    assert cls.calls == calls + 1 + 2  # two batches of 32
    assert objective.teacher_calls == 0  # a logit loss reads the teacher-output cache
    assert math.isfinite(result.history[-1]["train_loss"]) and result.history[-1]["train_loss"] > 0.5 * 5.0
    assert any(not torch.equal(a, b) for a, b in zip(before, student.parameters()))
