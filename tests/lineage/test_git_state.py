"""The git state in a manifest: the same for every fresh clone of a commit, wherever it lies,
and "dirty" only when the sources differ, not when a pipeline run rewrote its own files."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from autokd.lineage.manifest import file_sha256, git_state, pipeline_paths, write_manifest

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"]

DVC_YAML = """
stages:
  train:
    cmd: python train.py
    deps: [src/train.py]
    params:
      - params.yaml: [lr]
    outs:
      - models
      - logs:
          cache: false
    metrics:
      - reports/metrics.json:
          cache: false
"""

FILES = {
    "src/train.py": "print('train')\n",
    "dvc.yaml": DVC_YAML,
    "dvc.lock": "schema: '2.0'\n",
    "params.yaml": "lr: 0.1\n",
    "logs/loss.tsv": "step\tloss\n0\t1.0\n",  # a cache: false output committed to git
    "reports/metrics.json": "{}\n",
    "sub/.gitignore": "/models\n",
}


def _git(cwd: Path, *args: str) -> str:
    res = subprocess.run(GIT + list(args), cwd=cwd, capture_output=True, text=True, check=True)
    return res.stdout.strip()


@pytest.fixture
def origin(tmp_path) -> Path:
    repo = tmp_path / "origin"
    for name, text in FILES.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "init")
    return repo


def _clone(origin: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    _git(origin.parent, "clone", "-q", str(origin), str(dst))
    return dst


def test_pipeline_paths_reads_outs_metrics_and_params(origin):
    assert pipeline_paths(origin, ["dvc.yaml"]) == {"models", "logs", "reports/metrics.json", "params.yaml"}


def test_fresh_clones_agree_and_run_products_do_not_make_them_dirty(origin, tmp_path):
    a = _clone(origin, tmp_path / "a")
    b = _clone(origin, tmp_path / "deeper" / "path" / "b")
    head = _git(origin, "rev-parse", "HEAD")
    assert git_state(a) == git_state(b) == {"commit": head, "dirty": False}
    # what `dvc repro` / `dvc exp run -S` rewrite in b: the lock, outputs, metrics, params
    (b / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")
    (b / "logs" / "loss.tsv").write_text("step\tloss\n0\t0.5\n")
    (b / "reports" / "metrics.json").write_text('{"acc": 1}\n')
    (b / "params.yaml").write_text("lr: 0.2\n")
    (b / "sub" / ".gitignore").write_text("/models\n/more\n")
    (b / "models").mkdir()
    (b / "models" / "w.bin").write_bytes(b"\0")  # untracked
    os.utime(b / "src" / "train.py", (1, 1))  # another time stamp, same content
    assert git_state(b) == git_state(a)
    (b / "src" / "train.py").write_text("print('changed')\n")
    assert git_state(b) == {"commit": head, "dirty": True}
    assert git_state(b / "src") == git_state(b)  # from any folder of the work tree


def test_outside_git(tmp_path):
    assert git_state(tmp_path) == {"commit": "unknown", "dirty": None}


def test_manifest_takes_git_state_from_root_and_files_from_the_artifact(origin, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "model.bin").write_bytes(b"not the artifact's file")
    monkeypatch.chdir(elsewhere)
    art = origin / "models"
    art.mkdir()
    (art / "model.bin").write_bytes(b"weights")
    m = write_manifest(art, kind="teacher", content=["model.bin"], root=origin)
    assert m["git"] == {"commit": _git(origin, "rev-parse", "HEAD"), "dirty": False}
    assert m["files"] == {"model.bin": file_sha256(art / "model.bin")}
    assert m["artifact"] == "models"
    on_disk = json.loads((art / "manifest.json").read_text())
    assert on_disk == m and "created" not in on_disk
