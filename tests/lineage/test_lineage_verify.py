"""`autokd lineage verify`: passes on an untouched tree, names a flipped byte in a weight file,
a rebuilt parent, a missing (not pulled) file and an edited manifest; exit codes 0/1/2."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from autokd.cli import app
from autokd.lineage import verify_tree

from lineage_support import NODES, rebuild_teacher, small_tree

runner = CliRunner()
ARTIFACTS = len([k for k, kind in NODES.items() if kind != "trial"])


def _verify(root):
    res = runner.invoke(app, ["lineage", "verify", "--root", str(root)])
    return res.exit_code, res.output


def test_untouched_tree_verifies(tmp_path):
    root = small_tree(tmp_path)
    code, out = _verify(root)
    assert code == 0, out
    assert f"verified {ARTIFACTS} artifacts (9 files)" in out
    report = verify_tree(root)
    assert report.ok and report.artifacts == ARTIFACTS


def test_flipped_byte_in_weights_is_named(tmp_path):
    root = small_tree(tmp_path)
    weights = root / "artifacts" / "student" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[100] ^= 0x01
    weights.write_bytes(bytes(data))
    code, out = _verify(root)
    assert code == 1
    fails = [ln for ln in out.splitlines() if ln.startswith("FAIL")]
    assert len(fails) == 1, out
    assert fails[0].startswith("FAIL artifacts/student: file model.safetensors: expected sha256:")
    assert "changed since the manifest was written" in fails[0]
    assert "1 problem(s)" in out


def test_rebuilt_parent_is_named_with_both_hashes(tmp_path):
    root = small_tree(tmp_path)
    old = json.loads((root / "artifacts/teacher/manifest.json").read_text())["sha256"]
    new = rebuild_teacher(root)["sha256"]
    report = verify_tree(root)
    assert not report.ok
    assert {(p.artifact, p.what) for p in report.problems} == {
        ("artifacts/student", "parent artifacts/teacher"), ("reports", "parent artifacts/teacher"),
        ("searches/s", "parent artifacts/teacher")}
    p = report.problems[0]
    assert (p.expected, p.found) == (f"sha256:{old[:16]}", f"sha256:{new[:16]}") and "stale" in p.hint
    code, out = _verify(root)
    assert code == 1 and out.count("FAIL") == 3


def test_missing_file_edited_manifest_and_broken_json(tmp_path):
    root = small_tree(tmp_path)
    (root / "artifacts" / "data" / "meta.json").unlink()
    m = json.loads((root / "reports/manifest.json").read_text())
    m["sha256"] = "0" * 64
    (root / "reports/manifest.json").write_text(json.dumps(m))
    (root / "runs/c/artifacts/ta/manifest.json").write_text('{"artifact": "artifacts/ta", "kind": "ta"')
    report = verify_tree(root)
    lines = [p.line() for p in report.problems]
    assert any(ln.startswith("artifacts/data: file meta.json: expected sha256:") and "no such file" in ln
               and "dvc pull" in ln for ln in lines), lines
    assert any(ln.startswith("reports: manifest.json sha256:") and "found sha256:0000" in ln for ln in lines), lines
    assert any(ln.startswith("runs/c/artifacts/ta/manifest.json: manifest:") for ln in lines), lines
    # the student of the chain names its parent as gone (its manifest is unreadable)
    assert any(ln.startswith("runs/c/artifacts/student: parent runs/c/artifacts/ta") for ln in lines), lines
    assert len(lines) == 4, lines


def test_json_output_and_empty_root(tmp_path):
    root = small_tree(tmp_path / "r")
    res = runner.invoke(app, ["lineage", "verify", "--root", str(root), "--json"])
    assert res.exit_code == 0 and json.loads(res.output)["ok"] is True
    (tmp_path / "empty").mkdir()
    res = runner.invoke(app, ["lineage", "verify", "--root", str(tmp_path / "empty")])
    assert res.exit_code == 2 and "error: no manifest.json under" in res.output
