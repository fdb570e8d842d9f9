"""``autokd export`` through the CLI: success, bad input (exit 2, one error line, no traceback),
and a failed check (exit 1 with the figures)."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from autokd.cli import app

runner = CliRunner()


def _run(*args: str):
    return runner.invoke(app, ["export", *map(str, args)])


def test_cli_exports_and_prints_the_check(project, tmp_path):
    out = tmp_path / "ts"
    res = _run(project.student, "--format", "torchscript", "--out", out, "--root", project.root)
    assert res.exit_code == 0, res.output
    assert "argmax agreement 100.00%" in res.output and "ok" in res.output
    assert json.loads((out / "export.json").read_text())["check"]["passed"] is True


def _bad_inputs(project, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    no_manifest = tmp_path / "no_manifest"
    no_manifest.mkdir()
    shutil.copy(project.student / "model.safetensors", no_manifest)
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    bad_json = tmp_path / "bad_json"
    shutil.copytree(project.student, bad_json)
    (bad_json / "manifest.json").write_text("{not json")
    no_data = tmp_path / "no_data"
    shutil.copytree(project.student, no_data)
    lm = tmp_path / "lm_student"  # a language-model student (the crash was KeyError: 'x' reading its data)
    lm.mkdir()
    from autokd.models.artifact import save_model
    from autokd.models.registry import build_model

    params = {"layers": 1, "width": 16, "heads": 2}
    save_model(lm / "model.safetensors", build_model("decoder", params, (8,), 40), "decoder", params, (8,), 40)
    (lm / "manifest.json").write_text(json.dumps({"sha256": "0" * 64, "kind": "student", "parents": []}))
    return {
        "not a folder": ([tmp_path / "missing", "--format", "onnx"], "is not an artifact folder"),
        "a file": ([a_file, "--format", "onnx"], "is not an artifact folder"),
        "no model": ([empty, "--format", "onnx"], "no model.safetensors"),
        "missing manifest": ([no_manifest, "--format", "onnx"], "has no manifest.json"),
        "broken manifest": ([bad_json, "--format", "onnx"], "is not valid JSON"),
        "unknown format": ([project.student, "--format", "onx"], "unknown format 'onx'"),
        "no data under root": ([no_data, "--format", "safetensors", "--root", tmp_path], "cannot load the test split"),
        "missing metrics file": ([project.student, "--format", "safetensors", "--root", project.root, "--metrics",
                                  tmp_path / "nope.json"], "no metrics file"),
        "a language model": ([lm, "--format", "onnx"], "is a language model (family decoder)"),
    }


@pytest.mark.parametrize("case", ["not a folder", "a file", "no model", "missing manifest", "broken manifest",
                                  "unknown format", "no data under root", "missing metrics file", "a language model"])
def test_bad_input_exits_2_with_one_error_line(project, tmp_path, case):
    args, message = _bad_inputs(project, tmp_path)[case]
    out = tmp_path / "out"
    res = _run(*args, "--out", out)
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert res.output.startswith("error: ") and "Traceback" not in res.output
    assert not (out / "export.json").exists()


def test_unknown_format_suggests_the_nearest(project, tmp_path):
    res = _run(project.student, "--format", "onx", "--out", tmp_path / "o")
    assert res.exit_code == 2 and "onnx" in res.output


def test_failed_check_exits_1_with_the_figures(project, exported, tmp_path):
    """A tolerance below the measured ONNX difference: the check fails, figures printed and written."""
    _, record = exported("onnx")
    diff = record["check"]["max_abs_diff"]
    if diff == 0:
        pytest.skip("ONNX Runtime matched PyTorch bit for bit here: no tolerance can fail")
    out = tmp_path / "o"
    res = _run(project.student, "--format", "onnx", "--out", out, "--root", project.root, "--tolerance", diff / 2)
    assert res.exit_code == 1, res.output
    assert "max abs logit difference" in res.output and "argmax agreement 100.00%" in res.output
    assert "FAILED" in res.output and "Traceback" not in res.output
    written = json.loads((out / "export.json").read_text())["check"]
    assert written["passed"] is False and written["max_abs_diff"] == pytest.approx(diff)
    assert "**FAILED**" in (out / "MODEL_CARD.md").read_text()
