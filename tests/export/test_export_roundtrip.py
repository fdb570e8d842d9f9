"""Each format written, loaded back in its own runtime and compared with the source model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from autokd.data.prepare import load_prepared
from autokd.export import FORMATS
from autokd.export.check import check_export
from autokd.models import build_model
from autokd.models.artifact import load_model


def _reference(project) -> tuple[np.ndarray, torch.Tensor]:
    x = load_prepared(project.data).test.x
    with torch.no_grad():
        return load_model(project.student)(x).numpy(), x


def _run_onnx(path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input"]
    assert [o.name for o in session.get_outputs()] == ["logits"]
    return session.run(["logits"], {"input": x})[0]


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_matches_pytorch_on_the_test_split(project, exported, fmt):
    out, record = exported(fmt)
    ref, x = _reference(project)
    path = out / record["model_file"]
    if fmt == "onnx":
        got = _run_onnx(path, x.numpy())
    elif fmt == "torchscript":
        got = torch.jit.load(str(path))(x).detach().numpy()
    else:
        got = load_model(path)(x).detach().numpy()
    assert got.shape == ref.shape == (len(x), 10)
    assert np.abs(got - ref).max() < 1e-4
    assert (got.argmax(1) == ref.argmax(1)).all()
    for name in ("config.json", "manifest.json", "source_manifest.json", "export.json", "MODEL_CARD.md"):
        assert (out / name).is_file(), name
    assert (out / "source_manifest.json").read_bytes() == (project.student / "manifest.json").read_bytes()
    # the export's own manifest: a child of the student in the lineage, verifiable like any artifact
    from autokd.lineage.manifest import read_manifest
    from autokd.lineage.verify import verify_tree

    own = read_manifest(out)
    assert own["kind"] == "export" and [p["kind"] for p in own["parents"]] == ["student"]
    report = verify_tree(project.root)
    assert report.problems == [], report.problems


@pytest.mark.parametrize("fmt", FORMATS)
def test_check_figures_are_recorded(exported, fmt):
    out, record = exported(fmt)
    on_disk = json.loads((out / "export.json").read_text())
    assert on_disk == record
    check = record["check"]
    assert check["passed"] is True and check["split"] == "test" and check["samples"] > 0
    assert check["max_abs_diff"] < 1e-4
    assert check["argmax_agreement"] == 1.0 and check["mismatches"] == 0
    if fmt != "onnx":  # the same kernels on both sides
        assert check["max_abs_diff"] == 0.0
    else:
        assert check["runtime"].startswith("onnxruntime ")


def test_onnx_batch_axis_is_dynamic(project, exported):
    out, _ = exported("onnx")
    ref, x = _reference(project)
    for n in (1, 7, len(x)):
        got = _run_onnx(out / "model.onnx", x[:n].numpy())
        assert got.shape == (n, 10)
        assert np.abs(got - ref[:n]).max() < 1e-4


def test_onnx_file_carries_the_source_hash_and_no_paths(project, exported):
    import onnx

    out, record = exported("onnx")
    proto = onnx.load(str(out / "model.onnx"))
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["autokd.source_sha256"] == record["source"]["sha256"]
    assert props["autokd.source_artifact"] == "artifacts/student"
    assert not any(n.metadata_props for n in proto.graph.node)  # stack traces with absolute paths dropped
    raw = (out / "model.onnx").read_bytes()
    assert str(project.root).encode() not in raw and b"site-packages" not in raw


def test_config_rebuilds_the_model(project, exported):
    out, _ = exported("safetensors")
    config = json.loads((out / "config.json").read_text())
    m = config["model"]
    model = build_model(m["name"], m["params"], tuple(m["input_shape"]), m["num_classes"])
    model.load_state_dict(load_file(str(out / "model.safetensors")))
    ref, x = _reference(project)
    with torch.no_grad():
        assert np.array_equal(model.eval()(x).numpy(), ref)
    assert config["input"] == {"name": "input", "dtype": "float32", "shape": ["batch", 1, 8, 8]}
    assert config["normalization"]["enabled"] is True and len(config["normalization"]["mean"]) == 1
    # the safetensors export is itself an artifact folder: it exports again
    from autokd.export import export_artifact

    again = export_artifact(out, "safetensors", out.parent / "again", root=project.root)
    assert again["source"]["sha256"] == config["source"]["sha256"]


def test_check_detects_a_different_model(project):
    """The check against another (real) model: disagreements are counted, the check fails."""
    ref_model = load_model(project.student)
    other = load_model(project.root / "artifacts" / "teacher")
    x = load_prepared(project.data).test.x

    @torch.no_grad()
    def runner(batch: np.ndarray) -> np.ndarray:
        return other(torch.from_numpy(batch)).numpy()

    check = check_export(ref_model, runner, x, tolerance=1e-4)
    assert check["passed"] is False
    assert check["max_abs_diff"] > 1e-2
    assert check["mismatches"] == round((1 - check["argmax_agreement"]) * len(x)) > 0
