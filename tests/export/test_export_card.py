"""MODEL_CARD.md names the teacher, the data hash, the method, the metrics, the lineage and the
check; it and every other output are the same bytes when the export runs again."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autokd.export import FORMATS, export_artifact
from autokd.lineage.manifest import read_manifest

REPO = Path(__file__).resolve().parents[2]


def test_card_names_teacher_data_method_metrics(project, exported):
    out, record = exported("onnx")
    card = (out / "MODEL_CARD.md").read_text()
    teacher = read_manifest(project.teacher)
    data = read_manifest(project.data)
    meta = json.loads((project.data / "meta.json").read_text())
    student = read_manifest(project.student)
    # teacher: path, hash, its metrics
    assert "artifacts/teacher" in card and teacher["sha256"] in card
    assert "0.875" in card  # the teacher manifest's val_accuracy
    assert "0.9321" in card  # the teacher's test accuracy from reports/metrics.json
    # data: dataset name, manifest hash and content hash
    assert "`digits`" in card and data["sha256"] in card and meta["sha256"] in card
    # method and hyperparameters: the effective distill recipe
    assert "| method | kd |" in card and "| alpha | 0.9 |" in card and "| params.temperature | 4 |" in card
    assert "| train.optimizer | adamw |" in card
    # metrics: student, baseline, kd_gain; no machine timings
    assert "| accuracy | 0.8765 | 0.8642 | 0.9321 |" in card
    assert "| kd_gain | 0.0123 |" in card
    assert "0.0987654" not in card and "0.123456" not in card and "| latency_ms |" not in card
    # lineage chain with hashes
    assert (f"student `artifacts/student` (sha256 `{student['sha256'][:12]}`) <- teacher `artifacts/teacher` "
            f"(sha256 `{teacher['sha256'][:12]}`) <- dataset `artifacts/data` (sha256 `{data['sha256'][:12]}`)") in card
    # check figures and package versions
    assert f"| max abs logit difference | {record['check']['max_abs_diff']:.6g} |" in card
    assert "| argmax agreement | 100.00% |" in card and "| passed | True |" in card
    assert f"| onnxruntime | {record['packages']['onnxruntime']} |" in card
    assert str(project.root) not in card


def test_card_of_a_model_without_teacher(project, tmp_path):
    record = export_artifact(project.teacher, "safetensors", tmp_path / "t", root=project.root)
    card = (tmp_path / "t" / "MODEL_CARD.md").read_text()
    assert "no teacher in its lineage" in card and "No distillation" in card
    assert record["source"]["kind"] == "teacher"


def test_card_without_a_metrics_file(project, tmp_path):
    """A root without reports/metrics.json: the card says so and keeps the manifest metrics."""
    root = tmp_path / "copy"
    shutil.copytree(project.root / "artifacts", root / "artifacts")
    export_artifact(root / "artifacts" / "student", "safetensors", tmp_path / "bare", root=root)
    card = (tmp_path / "bare" / "MODEL_CARD.md").read_text()
    assert "No evaluation metrics file was found" in card and "0.8125" in card


def _assert_same_files(first: Path, second: Path) -> None:
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in second.iterdir())
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


@pytest.mark.parametrize("fmt", ["onnx", "safetensors"])
def test_outputs_are_byte_identical_on_a_rerun(project, exported, tmp_path, fmt):
    """What a DVC stage caches must be the same bytes when it runs again."""
    first, _ = exported(fmt)
    second = tmp_path / first.name  # the same folder name: the card shows it
    export_artifact(project.student, fmt, second, root=project.root)
    _assert_same_files(first, second)


@pytest.mark.slow
def test_torchscript_is_byte_identical_across_processes(project, tmp_path):
    """TorchScript in two fresh interpreters, as stages run (a second trace in one process
    mangles class names), from two copies of the project at different paths."""
    outs = []
    for copy in ("a", "b"):
        root = tmp_path / copy / "proj"
        shutil.copytree(project.root, root)
        cmd = [sys.executable, "-m", "autokd", "export", "artifacts/student", "--format", "torchscript",
               "--out", "artifacts/export"]
        done = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=600,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
        assert done.returncode == 0, done.stdout + done.stderr
        outs.append(root / "artifacts" / "export")
    _assert_same_files(*outs)
    assert str(tmp_path).encode() not in (outs[0] / "model.ts").read_bytes()
