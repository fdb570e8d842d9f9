"""Slow: the default pipeline under real `dvc repro` in a temporary copy, plus a real 4-trial
search, gives the expected lineage graph; `lineage verify` passes, and after `dvc repro -s
train_teacher` rebuilds the teacher (and its outputs) alone, the graph and verify name the
stale children."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from autokd.cli import app
from autokd.lineage import build_graph, verify_tree

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()
SKIP = ("artifacts/", "reports/", "dvclive/", "checkpoints/", "runs/", "searches/")

NODES = {"artifacts/data": "dataset", "artifacts/teacher": "teacher", "artifacts/teacher_outputs": "teacher_outputs",
         "artifacts/baseline": "baseline", "artifacts/student": "student", "reports": "evaluation",
         "searches/tiny": "search", "artifacts/export": "export"}
EDGES = {
    ("artifacts/data", "artifacts/teacher"), ("artifacts/data", "artifacts/teacher_outputs"),
    ("artifacts/teacher", "artifacts/teacher_outputs"), ("artifacts/data", "artifacts/baseline"),
    ("artifacts/data", "artifacts/student"), ("artifacts/teacher", "artifacts/student"),
    ("artifacts/data", "reports"), ("artifacts/teacher", "reports"), ("artifacts/baseline", "reports"),
    ("artifacts/student", "reports"), ("artifacts/data", "searches/tiny"), ("artifacts/teacher", "searches/tiny"),
    ("artifacts/teacher_outputs", "searches/tiny"), ("artifacts/student", "artifacts/export"),
}


def _copy_repo(dst: Path) -> Path:
    """The repository's files as a fresh clone has them, without any run's outputs."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.splitlines()
    for f in files:
        src = REPO / f
        if not src.is_file() or f.startswith(SKIP) or f == "dvc.lock":
            continue
        (dst / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst / f)
    return dst


def _sh(cmd, cwd, env=None):
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, timeout=900)
    assert res.returncode == 0, f"{cmd} failed:\n{res.stdout}\n{res.stderr}"
    return res.stdout + res.stderr


def _search(work: Path) -> dict:
    return {
        "name": "tiny", "pipeline": str(work / "pipelines" / "default.yaml"), "root": str(work),
        "objectives": {"student.accuracy": "max"},
        "space": {"distill.temperature": {"type": "loguniform", "low": 1.0, "high": 8.0},
                  "distill.alpha": {"type": "uniform", "low": 0.1, "high": 0.9}},
        "budget": {"trials": 4, "max_concurrent": 1, "resources": {"cpu": 1}},
        "scheduler": {"type": "fifo"}, "sampler": {"type": "random", "seed": 0},
    }


@pytest.mark.slow
def test_dvc_pipeline_and_search_lineage(tmp_path, tiny_spec_text):
    from autokd.search.hparams.run import run_search  # the test drives a search; the library never does

    work = _copy_repo(tmp_path / "repo")
    (work / "pipelines" / "default.yaml").write_text(tiny_spec_text)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    _sh(["git", "init", "-q"], work)
    _sh(["git", "add", "-A"], work)
    _sh(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"], work)
    _sh(["dvc", "repro"], work, env)
    spec = work / "search.yaml"
    spec.write_text(yaml.safe_dump(_search(work), sort_keys=False))
    outcome = run_search(spec, backend="optuna", out_dir=work / "searches" / "tiny", base_dir=work, live=False,
                         log=lambda _: None)
    assert len(outcome.records) == 4

    g = build_graph(work)
    trials = {f"searches/tiny/trials/{r.trial}" for r in outcome.records}
    assert {k: n.kind for k, n in g.nodes.items()} == {**NODES, **{t: "trial" for t in trials}}
    assert {(e.source, e.target) for e in g.edges} == EDGES | {("searches/tiny", t) for t in trials}
    assert not g.stale() and not g.warnings
    for r in outcome.records:
        node = g.nodes[f"searches/tiny/trials/{r.trial}"]
        assert node.params == r.params and node.status == r.status
        assert node.metrics.get("val_accuracy") == r.final.get("val_accuracy")
    report = verify_tree(work)
    assert report.ok, [p.line() for p in report.problems]
    assert report.artifacts == len(NODES)
    ET.fromstring(g.to_svg())

    # rebuild the teacher alone: its children (student, reports, search) now record an old hash
    pipeline = yaml.safe_load((work / "pipelines" / "default.yaml").read_text())
    pipeline["teacher"]["train"]["seed"] = 1
    (work / "pipelines" / "default.yaml").write_text(yaml.safe_dump(pipeline))
    _sh(["dvc", "repro", "-s", "train_teacher"], work, env)
    g = build_graph(work)
    assert g.stale() == ["artifacts/student", "reports", "searches/tiny"]
    # train_teacher rewrote the teacher outputs too: the search read those as well
    stale = {("artifacts/teacher", "artifacts/student"), ("artifacts/teacher", "reports"),
             ("artifacts/teacher", "searches/tiny"), ("artifacts/teacher_outputs", "searches/tiny")}
    assert {(e.source, e.target) for e in g.edges if e.stale} == stale
    res = runner.invoke(app, ["lineage", "verify", "--root", str(work)])
    assert res.exit_code == 1
    fails = sorted(ln for ln in res.output.splitlines() if ln.startswith("FAIL"))
    assert {(ln.split(": ")[0][5:], ln.split(": ")[1][7:]) for ln in fails} == {(b, a) for a, b in stale}, fails
    assert len(fails) == 4
    res = runner.invoke(app, ["lineage", "diff", "artifacts/student", "artifacts/baseline", "--root", str(work),
                              "--json"])
    doc = json.loads(res.output)
    assert "distill.method" in {c["key"] for c in doc["spec"]}
    assert "artifacts/teacher" in {c["key"] for c in doc["parents"]}
