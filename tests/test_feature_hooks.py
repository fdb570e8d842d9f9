"""Features by module path through forward hooks, with the built-in aliases kept.

A user's model class (no ``return_features``) is written into ``tmp_path`` and named by import
path; a feature method distills its ``layers.1`` toward the built-in teacher's ``pool`` through
the pipeline's own objective builder (:func:`autokd.stages.build_distill_objective`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import typer
from torch import nn

from autokd.data.batches import Batch
from autokd.data.prepare import PreparedData, Split
from autokd.models import build_model
from autokd.models.artifact import MODEL_FILE, save_model
from autokd.models.features import feature_shapes, first_tensor, forward_features
from autokd.spec.document import apply_overrides
from autokd.spec.errors import SpecError
from autokd.stages import Layout, build_distill_objective, validate_pipeline
from autokd.train.trainer import train

REPO = Path(__file__).resolve().parents[1]
TEACHER = {"stem_width": 8, "depths": [1, 1], "widths": [8, 16]}
SHAPE = (1, 8, 8)
MODULE = "autokd_test_user_models"
USER_MODEL = '''
import math
from torch import nn


class MyNet(nn.Module):
    """Flatten -> Linear -> ReLU -> Linear; no return_features: features only by module path."""

    def __init__(self, input_shape, num_classes, hidden=12):
        super().__init__()
        self.layers = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), hidden), nn.ReLU(),
                                    nn.Linear(hidden, num_classes))

    def forward(self, x):
        return self.layers(x)
'''


@pytest.fixture
def user_model(tmp_path, monkeypatch):
    (tmp_path / f"{MODULE}.py").write_text(USER_MODEL)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(__import__("sys").modules, MODULE, raising=False)
    return f"{MODULE}:MyNet"


def _split(n: int, seed: int) -> Split:
    g = torch.Generator().manual_seed(seed)
    return Split(x=torch.randn(n, *SHAPE, generator=g), y=torch.randint(0, 10, (n,), generator=g), index=torch.arange(n))


@pytest.fixture
def root(tmp_path):
    """A root holding a (random, untrained) teacher and in-memory prepared data."""
    torch.manual_seed(0)
    teacher = build_model("cnn", TEACHER, SHAPE, 10)
    layout = Layout(tmp_path / "root")
    layout.model_dir("teacher").mkdir(parents=True)
    save_model(layout.model_dir("teacher") / MODEL_FILE, teacher, "cnn", TEACHER, SHAPE, 10)
    data = PreparedData(train=_split(64, 1), val=_split(32, 2), test=_split(32, 3),
                        meta={"num_classes": 10, "input_shape": list(SHAPE), "sha256": "0" * 64})
    return layout, data


def _spec(student: str, features: list[dict], method: str = "fitnet", root: Path | None = None):
    return validate_pipeline({
        "data": {"source": "digits"},
        "teacher": {"model": {"name": "cnn", "params": TEACHER}},
        "student": {"model": {"name": student}, "train": {"epochs": 1, "batch_size": 32, "seed": 0}},
        "distill": {"method": method, "alpha": 0.5, "features": features},
        "runtime": {"device": "cpu"},
    }, root=root)


def _no_hooks(model: nn.Module) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


# ------------------------------------------------------------------ names, shapes, output rule


def test_feature_shapes_lists_aliases_then_module_paths():
    m = build_model("cnn", TEACHER, SHAPE, 10)
    shapes = feature_shapes(m, SHAPE)
    assert list(shapes)[:4] == ["stem", "stage1", "stage2", "pool"]  # the aliases, as before
    assert shapes["pool"] == (16,)  # the alias wins: the flattened vector, not the module's (16, 1, 1)
    assert shapes["stages.1.0.conv1"] == (16, 4, 4) and shapes["head"] == (10,)
    assert "stages" not in shapes and "" not in shapes  # a ModuleList never runs; the root is the logits
    assert m.training and _no_hooks(m)  # mode restored, nothing left behind


def test_forward_features_keeps_logits_and_removes_hooks(user_model):
    torch.manual_seed(0)
    x = torch.randn(5, *SHAPE)
    for m in (build_model("cnn", TEACHER, SHAPE, 10), build_model(user_model, {}, SHAPE, 10)):
        m.eval()
        names = ["pool", "stages.0.0.bn1"] if hasattr(m, "stages") else ["layers.1", "layers.2"]
        logits, feats = forward_features(m, x, names)
        assert torch.equal(logits, m(x))
        assert list(feats) == names and all(f.shape[0] == 5 for f in feats.values())
        assert _no_hooks(m)
    with pytest.raises(ValueError, match="no feature 'layers.9'"):
        forward_features(m, x, ["layers.9"])
    assert _no_hooks(m)


def test_hooks_are_removed_when_the_forward_raises():
    class Boom(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(3, 3)

        def forward(self, x):
            self.a(x)
            raise RuntimeError("boom")

    m = Boom()
    with pytest.raises(RuntimeError, match="boom"):
        forward_features(m, torch.zeros(2, 3), ["a"])
    assert _no_hooks(m)


def test_output_rule_first_tensor_of_a_tuple_or_mapping():
    class Pair(nn.Module):
        def forward(self, x):
            return (None, x * 2, x * 3)

    class Dict(nn.Module):
        def forward(self, x):
            return {"n": 1, "hidden": x + 1, "other": x - 1}

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn, self.pair, self.dict = nn.LSTM(3, 4, batch_first=True), Pair(), Dict()

        def forward(self, x):
            out, _ = self.rnn(x)
            return self.dict(self.pair(out)[1])["hidden"].mean(1)

    x = torch.randn(2, 5, 3)
    logits, f = forward_features(Net(), x, ["rnn", "pair", "dict"])
    assert f["rnn"].shape == (2, 5, 4)  # LSTM's (output, (h, c)) -> output
    assert torch.equal(f["pair"], f["rnn"] * 2) and torch.equal(f["dict"], f["pair"] + 1)
    assert first_tensor(("a", 3)) is None
    assert feature_shapes(Net(), (5, 3))["rnn"] == (5, 4)


def test_feature_is_the_module_output_even_before_an_in_place_op():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(4, 6), nn.ReLU(inplace=True), nn.Linear(6, 2))
    x = torch.randn(8, 4)
    _, f = forward_features(m, x, ["0", "1"])
    assert torch.allclose(f["0"], m[0](x)) and (f["0"] < 0).any()  # not overwritten by the ReLU
    assert torch.equal(f["1"], f["0"].clamp(min=0))
    f["0"].sum().backward()  # still in the graph
    assert m[0].weight.grad.abs().sum() > 0 and m[2].weight.grad is None


# ------------------------------------------------------------------ a user model, distilled


def test_user_model_layer_distills_toward_teacher_feature(user_model, root):
    layout, data = root
    spec = _spec(user_model, [{"student": "layers.1", "teacher": "pool"}])
    from autokd.stages import build_role_model

    student = build_role_model(spec.student, data)
    objective = build_distill_objective(spec, student, data, layout, torch.device("cpu"))
    assert objective.pairs == [("layers.1", "pool", 1.0)] and objective.kind == "feature"
    batch = Batch(x=data.train.x[:16], y=data.train.y[:16], idx=torch.arange(16))

    loss, logits, parts = objective(student, batch)
    assert torch.isfinite(loss) and parts["distill"] > 0
    assert torch.equal(logits, student(batch.x))  # the hooks do not change the logits
    assert _no_hooks(student) and _no_hooks(objective.teacher)
    assert not objective.teacher.training and objective.teacher_calls == 1
    assert all(p.grad is None for p in objective.teacher.parameters())
    loss.backward()
    hooked, after = student.layers[1].weight.grad.clone(), student.layers[3].weight.grad.clone()

    student.zero_grad()
    ((1 - objective.alpha) * F.cross_entropy(student(batch.x), batch.y)).backward()
    ce_hooked, ce_after = student.layers[1].weight.grad, student.layers[3].weight.grad
    # the feature term reaches the hooked module (and no module after it)
    assert (hooked - ce_hooked).abs().max() > 1e-6
    assert torch.allclose(after, ce_after, atol=1e-7)
    assert all(p.grad is None for p in objective.teacher.parameters())

    result = train(student, data.train, data.val, spec.student.train, objective, device=torch.device("cpu"),
                   progress=False)
    assert math.isfinite(result.history[-1]["train_loss"]) and objective.teacher_calls == 1 + 2
    assert _no_hooks(student) and _no_hooks(objective.teacher)


def test_module_path_typo_is_a_spec_error_with_suggestion(user_model, root):
    from autokd.cli.errors import guard
    from autokd.stages import build_role_model

    layout, data = root
    spec = _spec(user_model, [{"student": "layers.l", "teacher": "stage2"},
                              {"student": "layers.3", "teacher": "stages.0.0.cnv1"}])
    student = build_role_model(spec.student, data)
    with pytest.raises(SpecError) as info:
        build_distill_objective(spec, student, data, layout, torch.device("cpu"))
    issues = {i.loc: i for i in info.value.issues}
    assert set(issues) == {("distill", "features", 0, "student"), ("distill", "features", 1, "teacher")}
    msg = str(info.value)
    assert "distill.features[0].student: expected a student feature" in msg
    assert "found 'layers.l'" in msg and "did you mean 'layers.1'?" in msg
    assert "distill.features[1].teacher: expected a teacher feature" in msg and "did you mean 'stages.0.0.conv1'?" in msg
    with pytest.raises(typer.Exit) as exit_info:  # the CLI's guard: bad input, exit code 2
        guard(build_distill_objective, spec, student, data, layout, torch.device("cpu"))
    assert exit_info.value.exit_code == 2


def test_default_pool_pair_needs_a_pool_feature(user_model, root):
    layout, data = root
    spec = _spec(user_model, [], method="rkd")
    from autokd.stages import build_role_model

    with pytest.raises(SpecError, match=r"distill.features: expected feature pairs for the relation method .*"
                                        r"which the student lacks"):
        build_distill_objective(spec, build_role_model(spec.student, data), data, layout, torch.device("cpu"))
    # a module path on the student, an alias on the teacher: relation methods need no adapter
    spec = apply_overrides(json.loads(spec.model_dump_json()), {"distill.features": [
        {"student": "layers.2", "teacher": "stage1"}]})
    spec = validate_pipeline(spec)
    objective = build_distill_objective(spec, build_role_model(spec.student, data), data, layout, torch.device("cpu"))
    batch = Batch(x=data.train.x[:8], y=data.train.y[:8], idx=torch.arange(8))
    assert torch.isfinite(objective(build_role_model(spec.student, data), batch)[0])


def test_comparison_checks_module_paths():
    from autokd.stages.compare_spec import validate_compare

    methods = {"pipeline": "pipelines/default.yaml", "seeds": [0], "overrides": {}, "methods": {
        "at": {"features": [{"student": "stages.0.0.conv1", "teacher": "stage1"}]},
        "fitnet": {"features": [{"student": "stages.1.0.shortcutt", "teacher": "stages.1.0.bn2"}]},
    }}
    with pytest.raises(SpecError) as info:
        validate_compare(methods, file="m.yaml", root=REPO)
    assert [i.path for i in info.value.issues] == ["methods.fitnet.features[0].student"]
    assert "did you mean 'stages.1.0.shortcut'?" in str(info.value)
    del methods["methods"]["fitnet"]
    validate_compare(methods, file="m.yaml", root=REPO)
