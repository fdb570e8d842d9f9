"""`autokd lineage diff A B`: changed spec keys (flattened), parents, metrics with deltas."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from autokd.cli import app
from autokd.lineage import diff_artifacts
from autokd.lineage.diff import flatten

from lineage_support import artifact, small_tree

runner = CliRunner()


def _second_student(root):
    return artifact(root, "runs/x/student", "student", {"model.safetensors": b"Z" * 2048},
                    ["artifacts/data", "artifacts/teacher"],
                    spec={"student": {"train": {"lr": 0.003}},
                          "distill": {"method": "dkd", "params": {"temperature": 4.0, "beta": 8.0}}},
                    metrics={"val_accuracy": 0.85, "val_loss": 0.3})


def test_diff_names_changed_keys_and_metric_deltas(tmp_path):
    root = small_tree(tmp_path)
    _second_student(root)
    d = diff_artifacts("artifacts/student", "runs/x/student", root=root)
    spec = {c.key: (c.a, c.b, c.change) for c in d.sections["spec"]}
    assert spec == {"student.train.lr": (0.01, 0.003, "changed"), "distill.method": ("kd", "dkd", "changed"),
                    "distill.params.beta": (None, 8.0, "added")}
    metrics = {m["key"]: m for m in d.to_dict()["metrics"]}
    assert abs(metrics["val_accuracy"]["delta"] - 0.05) < 1e-12
    assert metrics["val_loss"]["change"] == "added"
    assert not d.sections["parents"] and not d.sections["packages"] and d.sections["files"]

    res = runner.invoke(app, ["lineage", "diff", "artifacts/student", "runs/x/student", "--root", str(root)])
    assert res.exit_code == 0, res.output
    assert "  student.train.lr: 0.01 -> 0.003" in res.output
    assert "  + distill.params.beta: 8.0  (only in B)" in res.output
    assert "  val_accuracy: 0.8 -> 0.85  (+0.05)" in res.output
    res = runner.invoke(app, ["lineage", "diff", str(root / "artifacts/student"), str(root / "runs/x/student"),
                              "--json"])
    doc = json.loads(res.output)
    assert doc["identical"] is False and {c["key"] for c in doc["spec"]} == set(spec)


def test_diff_parents_after_a_rebuild_and_identical(tmp_path):
    root = small_tree(tmp_path)
    before = json.loads((root / "artifacts/student/manifest.json").read_text())
    artifact(root, "artifacts/teacher", "teacher", {"model.safetensors": b"V" * 10}, ["artifacts/data"])
    artifact(root, "runs/y/student", "student", {"model.safetensors": b"S" * 2048},
             ["artifacts/data", "artifacts/teacher"], spec=before["spec"], metrics=before["metrics"])
    d = diff_artifacts("artifacts/student", "runs/y/student", root=root)
    assert [c.key for c in d.sections["parents"]] == ["artifacts/teacher"]
    assert not d.sections["spec"] and not d.sections["metrics"] and not d.sections["files"]
    same = diff_artifacts("artifacts/student", "artifacts/student/manifest.json", root=root)
    assert same.identical


def test_diff_trials_and_errors(tmp_path):
    root = small_tree(tmp_path)
    d = diff_artifacts("searches/s/trials/t0", "searches/s/trials/t1", root=root)
    assert [(c.key, c.a, c.b) for c in d.sections["spec"]] == [("distill.temperature", 2.0, 6.0)]
    res = runner.invoke(app, ["lineage", "diff", "artifacts/student", "artifacts/nope", "--root", str(root)])
    assert res.exit_code == 2 and "error: no manifest at artifacts/nope" in res.output
    res = runner.invoke(app, ["lineage", "diff", "searches/s/trials/t9", "artifacts/student", "--root", str(root)])
    assert res.exit_code == 2 and "no trial 't9'" in res.output


def test_flatten_key_paths():
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "f": [{"s": "x"}], "e": {}}) == {
        "a.b": 1, "a.c": [1, 2], "f[0].s": "x", "e": {}}
