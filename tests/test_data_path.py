"""A relative ``data.path`` means the same file to ``validate``, ``run`` and ``stage``: it resolves
against the working directory (the repo root), never against ``--root`` (the output folder)."""

from __future__ import annotations

import csv
import json

import pytest
from sklearn.datasets import load_iris
from typer.testing import CliRunner

from autokd.cli import app

runner = CliRunner()

SPEC = """
name: iris
data: {{source: csv, path: {path}, options: {{label_column: species}}, seed: 0}}
teacher:
  model: {{name: mlp, params: {{hidden: [16]}}}}
  train: {{epochs: 2, batch_size: 32, lr: 0.01, seed: 0}}
student:
  model: {{name: mlp, params: {{hidden: [4]}}}}
  train: {{epochs: 2, batch_size: 32, lr: 0.01, seed: 0}}
distill: {{method: kd, temperature: 4.0, alpha: 0.9}}
evaluate: {{latency_runs: 2, latency_warmup: 1, throughput_batch: 16}}
runtime: {{device: cpu, num_threads: 1}}
"""


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """tmp/data/iris.csv and tmp/spec.yaml naming it relatively; the working directory is tmp."""
    iris = load_iris()
    (tmp_path / "data").mkdir()
    with open(tmp_path / "data" / "iris.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([f"f{i}" for i in range(iris.data.shape[1])] + ["species"])
        for row, label in zip(iris.data, iris.target):
            w.writerow([f"{v:g}" for v in row] + [iris.target_names[label]])
    (tmp_path / "spec.yaml").write_text(SPEC.format(path="data/iris.csv"))
    (tmp_path / "missing.yaml").write_text(SPEC.format(path="data/nowhere.csv"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_validate_run_and_stage_resolve_data_paths_alike(workdir):
    ok = runner.invoke(app, ["validate", "spec.yaml"])
    assert ok.exit_code == 0, ok.output
    run = runner.invoke(app, ["run", "spec.yaml", "--root", "runs/x"])
    assert run.exit_code == 0, run.output
    metrics = json.loads((workdir / "runs" / "x" / "reports" / "metrics.json").read_text())
    assert metrics["test_samples"] == 30  # iris: 150 rows, 20% test
    meta = json.loads((workdir / "runs" / "x" / "artifacts" / "data" / "meta.json").read_text())
    assert meta["counts"] == {"train": 90, "val": 30, "test": 30}
    stage = runner.invoke(app, ["stage", "prepare", "spec.yaml", "--root", "runs/y"])
    assert stage.exit_code == 0, stage.output
    again = json.loads((workdir / "runs" / "y" / "artifacts" / "data" / "meta.json").read_text())
    assert again["sha256"] == meta["sha256"]  # the same file was read


def test_missing_data_file_fails_alike_in_validate_and_run(workdir):
    val = runner.invoke(app, ["validate", "missing.yaml"])
    run = runner.invoke(app, ["run", "missing.yaml", "--root", "runs/x"])
    stage = runner.invoke(app, ["stage", "prepare", "missing.yaml", "--root", "runs/x"])
    assert val.exit_code == run.exit_code == stage.exit_code == 2
    assert "data.path: expected an existing file or folder, found 'data/nowhere.csv'" in val.output
    assert run.output.strip().splitlines()[-1] == val.output.strip().splitlines()[-1]
    assert stage.output.strip() == val.output.strip()
    assert "Traceback" not in run.output
    assert not (workdir / "runs" / "x" / "artifacts").exists()  # nothing ran
