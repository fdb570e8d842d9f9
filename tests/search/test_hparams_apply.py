"""``--apply``: the patch goes into the pipeline spec (readable, validated); then `dvc repro`
retrains exactly the best trial's student, with the same accuracy (slow: real DVC in a
temporary git copy)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from autokd.cli import app
from autokd.search.hparams.results import apply_patch_text
from autokd.stages import validate_pipeline

from hparams_support import REPO, TINY_PIPELINE, tiny_search, write_search

runner = CliRunner()

COMMENTED = """\
# the pipeline (this comment stays)
name: tiny
data: {source: digits, max_samples: 400}
student:
  model:
    name: mlp
    params: {hidden: [16]}   # replaced with the block
  train: {epochs: 3, lr: 0.01}
distill:                     # distillation (this comment stays)
  method: kd
  temperature: 4.0           # T (this comment stays)
  alpha: 0.9
  params: {}
"""


def test_apply_patch_keeps_comments_and_validates(tmp_path):
    patch = {"distill.temperature": 2.5, "distill.method": "dkd", "distill.params": {"beta": 3.0},
             "student.model": {"name": "mlp", "params": {"hidden": [8, 8]}}, "student.train.lr": 0.005}
    text = apply_patch_text(COMMENTED, patch)
    assert "# the pipeline (this comment stays)" in text and "# T (this comment stays)" in text
    assert "# distillation (this comment stays)" in text
    data = yaml.safe_load(text)
    spec = validate_pipeline(data, root=tmp_path)
    assert spec.distill.temperature == 2.5 and spec.distill.params == {"beta": 3.0}
    assert spec.student.model.params == {"hidden": [8, 8]} and spec.student.train.lr == 0.005
    assert "params: {beta: 3.0}" in text and "hidden: [8, 8]" in text  # leaf collections stay compact


def test_cli_apply_only_and_errors(tmp_path):
    pipeline = tmp_path / "tiny.yaml"
    pipeline.write_text(COMMENTED)
    spec = write_search(tmp_path, tiny_search(pipeline, tmp_path))
    res = runner.invoke(app, ["search", "hparams", str(spec), "--apply-only", "--out", str(tmp_path / "out")])
    assert res.exit_code == 2 and "no " in res.output and "best.yaml" in res.output
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "best.yaml").write_text(yaml.safe_dump({"patch": {"distill.alpha": 0.5}}))
    res = runner.invoke(app, ["search", "hparams", str(spec), "--apply-only", "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    assert yaml.safe_load(pipeline.read_text())["distill"]["alpha"] == 0.5
    # a patch that does not validate is refused and the file is left alone
    (tmp_path / "out" / "best.yaml").write_text(yaml.safe_dump({"patch": {"distill.alpha": 5}}))
    res = runner.invoke(app, ["search", "hparams", str(spec), "--apply-only", "--out", str(tmp_path / "out")])
    assert res.exit_code == 2 and "distill.alpha" in res.output
    assert yaml.safe_load(pipeline.read_text())["distill"]["alpha"] == 0.5


def test_cli_bad_search_spec_exits_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nspace: {distill.alpha: {type: uniform, low: 0, high: 2}}\npipeline: nope.yaml\n")
    res = runner.invoke(app, ["search", "hparams", str(bad)])
    assert res.exit_code == 2 and "pipeline" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["search", "hparams", str(bad), "--backend", "optona"])
    assert res.exit_code == 2 and "did you mean 'optuna'?" in res.output


# ----------------------------------------------------------------------------- real DVC


def _copy_repo(dst: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split()
    for f in files:
        src = REPO / f
        if (not src.is_file() or f.startswith(("artifacts/", "reports/", "dvclive/", "checkpoints/", "searches/"))
                or f == "dvc.lock"):
            continue
        (dst / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst / f)
    return dst


def _sh(cmd, cwd, env=None):
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, f"{cmd} failed:\n{res.stdout}\n{res.stderr}"
    return res.stdout + res.stderr


@pytest.mark.slow
def test_apply_then_dvc_repro_reproduces_the_best_trial(tmp_path):
    work = _copy_repo(tmp_path / "repo")
    (work / "pipelines" / "default.yaml").write_text(yaml.safe_dump(TINY_PIPELINE, sort_keys=False))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    _sh(["git", "init", "-q"], work)
    _sh(["git", "add", "-A"], work)
    _sh(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"], work)
    doc = tiny_search(Path("pipelines/default.yaml"), Path("."), name="repro", budget={"trials": 4},
                      scheduler={"type": "fifo"})
    spec = write_search(work / "search_spaces", doc, "repro.yaml")
    cwd = os.getcwd()
    os.chdir(work)
    try:
        res = runner.invoke(app, ["search", "hparams", str(spec), "--backend", "optuna", "--apply"])
    finally:
        os.chdir(cwd)
    assert res.exit_code == 0, res.output
    assert "applied best.yaml" in res.output
    best = yaml.safe_load((work / "searches" / "repro" / "best.yaml").read_text())
    applied = yaml.safe_load((work / "pipelines" / "default.yaml").read_text())
    assert applied["distill"]["method"] == best["patch"]["distill.method"]

    # the search made the data and the teacher once (no dvc.lock yet); dvc repro remakes all
    # five stages from the applied spec, and the teacher it trains is the one the trials read
    _sh(["dvc", "repro"], work, env)
    from autokd.lineage.manifest import file_sha256

    assert file_sha256(work / "artifacts" / "teacher" / "model.safetensors") == best["lineage"]["teacher_sha256"]
    after = json.loads((work / "reports" / "metrics.json").read_text())
    assert after["student"]["accuracy"] == best["metrics"]["test_accuracy"]
    history = json.loads((work / "artifacts" / "student" / "history.json").read_text())
    assert history[-1]["val_accuracy"] == best["metrics"]["val_accuracy"]
    assert len(history) == best["epochs"]
