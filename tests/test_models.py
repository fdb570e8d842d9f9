"""Model families: shapes, named features, parameter counts, custom import paths."""

from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from autokd.models import MODELS, ModelBuildError, build_model, count_params, feature_names, forward_with_features
from autokd.models.artifact import load_model, save_model


def test_registry_lists_families():
    assert {"mlp", "cnn", "resnet_s1"} <= set(MODELS)


def test_cnn_logits_and_features():
    m = build_model("cnn", {"stem_width": 8, "depths": [1, 2], "widths": [8, 16]}, (1, 8, 8), 10)
    logits, feats = forward_with_features(m, torch.randn(3, 1, 8, 8))
    assert logits.shape == (3, 10)
    assert list(feats) == ["stem", "stage1", "stage2", "pool"]
    assert feats["stage2"].shape == (3, 16, 4, 4)
    assert feats["pool"].shape == (3, 16)
    assert torch.equal(m(torch.zeros(2, 1, 8, 8)), m(torch.zeros(2, 1, 8, 8)))


def test_mlp_features_and_params():
    m = build_model("mlp", {"hidden": [16, 8]}, (1, 8, 8), 10)
    # 64*16+16 + 16*8+8 + 8*10+10
    assert count_params(m) == 64 * 16 + 16 + 16 * 8 + 8 + 8 * 10 + 10
    assert feature_names(m, (1, 8, 8)) == {"hidden1": (16,), "hidden2": (8,), "penultimate": (8,)}


DEFAULT_PIPELINE = Path(__file__).resolve().parents[1] / "pipelines" / "default.yaml"
SOURCE_INPUTS = {"digits": ((1, 8, 8), 10)}  # input shape and classes of the bundled sources


def test_default_student_is_over_10x_smaller_than_teacher():
    spec = yaml.safe_load(DEFAULT_PIPELINE.read_text())
    input_shape, classes = SOURCE_INPUTS[spec["data"]["source"]]
    teacher, student = (
        build_model(spec[role]["model"]["name"], spec[role]["model"].get("params", {}), input_shape, classes)
        for role in ("teacher", "student")
    )
    assert count_params(teacher) / count_params(student) >= 10


def test_cnn_rejects_tabular_input():
    with pytest.raises(ModelBuildError, match="image inputs"):
        build_model("cnn", {}, (20,), 3)


class TinyNet(nn.Module):
    def __init__(self, input_shape, num_classes, width=4):
        super().__init__()
        self.fc = nn.Linear(int(torch.tensor(input_shape).prod()), num_classes)
        self.width = width

    def forward(self, x):
        return self.fc(x.flatten(1))


def test_custom_model_by_import_path():
    m = build_model("tests.test_models:TinyNet", {"width": 7}, (1, 4, 4), 3)
    assert type(m).__name__ == "TinyNet" and m.width == 7
    logits, feats = forward_with_features(m, torch.randn(2, 1, 4, 4))
    assert logits.shape == (2, 3) and len(feats) == 0


def test_unknown_import_path():
    with pytest.raises(ModelBuildError, match="cannot import"):
        build_model("no_such_pkg.mod:Net", {}, (1, 4, 4), 3)


def test_model_artifact_roundtrip(tmp_path):
    m = build_model("cnn", {"stem_width": 4, "depths": [1], "widths": [4]}, (1, 8, 8), 10)
    save_model(tmp_path / "model.safetensors", m, "cnn", {"stem_width": 4, "depths": [1], "widths": [4]}, (1, 8, 8), 10)
    m2 = load_model(tmp_path)
    x = torch.randn(2, 1, 8, 8)
    m.eval()
    assert torch.equal(m(x), m2(x))
