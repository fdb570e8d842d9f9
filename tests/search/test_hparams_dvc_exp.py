"""Completed search trials as DVC experiments: git plumbing that leaves the workspace, the index
and HEAD alone; real ``dvc exp show`` / ``dvc exp apply`` + ``dvc repro`` (slow, in temporary
git copies); the off switches; one warning line outside a repository; concurrent trials."""

from __future__ import annotations

import hashlib
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
from autokd.lineage.experiments import ExperimentRepo, NotRecordable, exp_name, exp_ref
from autokd.search.hparams.experiments import TrialExperiments, trial_metrics

from hparams_support import REPO, TINY_PIPELINE, tiny_search, write_pipeline, write_search

runner = CliRunner()
GIT_ID = ["-c", "user.name=t", "-c", "user.email=t@t"]
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}


def _sh(cmd, cwd, check=True) -> str:
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=ENV, timeout=900)
    if check:
        assert res.returncode == 0, f"{cmd} failed:\n{res.stdout}\n{res.stderr}"
    return res.stdout


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tiny_repo(work: Path, dvc: bool = True, commit: bool = True) -> Path:
    """A git repository holding a tiny pipeline spec (and ``.dvc/`` when ``dvc``)."""
    work.mkdir(parents=True)
    (work / "pipelines").mkdir()
    (work / "pipelines" / "default.yaml").write_text("# tiny pipeline (this comment stays)\n"
                                                     + yaml.safe_dump(TINY_PIPELINE, sort_keys=False))
    _sh(["git", "init", "-q"], work)
    if dvc:
        (work / ".dvc").mkdir()
        (work / ".dvc" / "config").write_text("[core]\n    analytics = false\n    check_update = false\n")
    if commit:
        _sh(["git", "add", "-A"], work)
        _sh(["git", *GIT_ID, "commit", "-qm", "init"], work)
    return work


# ----------------------------------------------------------------------------- lineage layer


@pytest.mark.parametrize("parts, name", [(("default", "t003"), "default-t003"), (("a..b", "t1"), "a.b-t1"),
                                         ((".x", "t1"), "x-t1"), (("s p@{c}", "t1"), "s-p-c-t1"),
                                         (("x.lock",), "x-lock")])
def test_exp_names_are_valid_git_refs(parts, name):
    assert exp_name(*parts) == name
    ok = subprocess.run(["git", "check-ref-format", exp_ref("ab" * 20, name)], capture_output=True)
    assert ok.returncode == 0


def test_record_commits_on_the_baseline_and_leaves_workspace_index_and_head_alone(tmp_path):
    work = _tiny_repo(tmp_path / "repo")
    spec = work / "pipelines" / "default.yaml"
    (work / "untracked.txt").write_text("mine")
    before = {p: _sha(work / p) for p in ("pipelines/default.yaml", ".git/index", "untracked.txt")}
    head = _sh(["git", "rev-parse", "HEAD"], work).strip()

    repo = ExperimentRepo.discover(spec)
    assert repo.baseline == head and repo.git_root == work.resolve() and repo.dvc_root == work.resolve()
    rec = repo.record("tiny-t000", {"pipelines/default.yaml": "name: changed\n",
                                    "reports/metrics.json": '{"student": {"accuracy": 0.5}}\n'}, "trial 0")
    assert rec.ref == f"refs/exps/{head[:2]}/{head[2:]}/tiny-t000"
    assert _sh(["git", "rev-parse", rec.ref], work).strip() == rec.commit
    assert _sh(["git", "rev-parse", f"{rec.commit}^"], work).strip() == head
    assert _sh(["git", "show", f"{rec.commit}:pipelines/default.yaml"], work) == "name: changed\n"
    assert json.loads(_sh(["git", "show", f"{rec.commit}:reports/metrics.json"], work)) == {"student": {"accuracy": 0.5}}
    assert _sh(["git", "diff", "--name-only", head, rec.commit], work).split() == ["pipelines/default.yaml",
                                                                                  "reports/metrics.json"]
    # replacing an experiment of the same name moves its ref
    again = repo.record("tiny-t000", {"pipelines/default.yaml": "name: again\n"}, "trial 0 again")
    assert again.commit != rec.commit and repo.experiments() == {"tiny-t000": again.commit}
    # nothing the user sees changed
    assert {p: _sha(work / p) for p in before} == before
    assert _sh(["git", "rev-parse", "HEAD"], work).strip() == head
    assert _sh(["git", "status", "--porcelain", "--untracked-files=no"], work) == ""
    fsck = subprocess.run(["git", "fsck", "--strict"], cwd=work, capture_output=True, text=True)
    assert fsck.returncode == 0 and "error" not in fsck.stderr + fsck.stdout
    with pytest.raises(ValueError, match="invalid experiment name"):
        repo.record("a/b", {}, "x")


def test_not_recordable_outside_git_without_dvc_or_without_commit(tmp_path):
    (tmp_path / "plain").mkdir()
    with pytest.raises(NotRecordable, match="not in a git repository"):
        ExperimentRepo.discover(tmp_path / "plain")
    with pytest.raises(NotRecordable, match="not a DVC repository"):
        ExperimentRepo.discover(_tiny_repo(tmp_path / "nodvc", dvc=False))
    with pytest.raises(NotRecordable, match="no commit yet"):
        ExperimentRepo.discover(_tiny_repo(tmp_path / "nocommit", commit=False))


# ----------------------------------------------------------------------------- search glue


def test_recorder_writes_the_patched_spec_and_the_evaluate_stage_keys(tmp_path):
    work = _tiny_repo(tmp_path / "repo")
    lines: list[str] = []
    rec = TrialExperiments.open("tiny", work / "pipelines" / "default.yaml", work, log=lines.append)
    assert rec is not None and lines == []
    final = {"val_accuracy": 0.9, "test_accuracy": 0.875, "test_nll": 0.4, "test_ece": 0.05, "params": 1234,
             "flops": 5678, "latency_ms": 0.25, "train_seconds": 3.0}
    name = rec.record(7, {"distill.temperature": 2.5, "distill.method": "dkd", "distill.params": {"beta": 3.0}},
                      final, "dkd T=2.5")
    assert name == "tiny-t007" and rec.names == {7: "tiny-t007"}
    commit = rec.repo.experiments()["tiny-t007"]
    spec_text = _sh(["git", "show", f"{commit}:pipelines/default.yaml"], work)
    assert spec_text.startswith("# tiny pipeline (this comment stays)")
    spec = yaml.safe_load(spec_text)
    assert spec["distill"] == {**TINY_PIPELINE["distill"], "temperature": 2.5, "method": "dkd", "params": {"beta": 3.0}}
    metrics = json.loads(_sh(["git", "show", f"{commit}:reports/metrics.json"], work))
    assert metrics == {"student": {"accuracy": 0.875, "nll": 0.4, "ece": 0.05, "params": 1234, "flops": 5678,
                                   "latency_ms": 0.25}, "trial": {"status": "completed"}}
    assert trial_metrics(final) == {"student": metrics["student"]}
    assert "autokd search tiny: trial 7 (dkd T=2.5)" in _sh(["git", "log", "-1", "--format=%B", commit], work)


def _record(number, status, epochs, final, reason=""):
    from autokd.search.hparams.results import TrialRecord

    return TrialRecord(trial=f"t{number}", number=number, status=status, reason=reason, params={},
                       patch={"distill.temperature": 1.0 + number}, epochs=epochs, max_epochs=3, final=final, best={},
                       seconds=1.0, node="n")


def test_stopped_and_failed_trials_are_experiments_marked_as_such(tmp_path):
    """Every trial that ran is an experiment ``dvc exp show`` lists, its status a column; a trial
    that never started is not; ``completed`` keeps only the completed ones."""
    work = _tiny_repo(tmp_path / "repo")
    (work / "dvc.yaml").write_text("stages:\n  evaluate:\n    cmd: 'true'\n    params:\n    - pipelines/default.yaml:\n"
                                   "      - distill\n    metrics:\n    - reports/metrics.json:\n        cache: false\n")
    _sh(["git", "add", "dvc.yaml"], work)
    _sh(["git", *GIT_ID, "commit", "-qm", "dvc.yaml"], work)
    last = {"val_accuracy": 0.5, "test_accuracy": 0.45, "test_nll": 1.5, "params": 99, "flops": 7}
    records = [_record(0, "completed", 3, {**last, "test_accuracy": 0.9}),
               _record(1, "stopped", 1, last, "stopped early after epoch 1/3 (scheduler or time budget)"),
               _record(2, "failed", 2, last, "non-finite loss at epoch 2"),
               _record(3, "stopped", 0, {}, "never started (the time budget ran out or the search ended first)")]
    lines: list[str] = []
    rec = TrialExperiments.open("s", work / "pipelines" / "default.yaml", work, log=lines.append)
    rec.finish(records)
    assert [r.experiment for r in records] == ["s-t000", "s-t001-stopped", "s-t002-failed", ""]
    assert _refs(work) == ["s-t000", "s-t001-stopped", "s-t002-failed"]
    assert "recorded 3 trials (1 completed, 1 stopped, 1 failed)" in rec.summary()
    assert "dvc exp apply s-t000" in rec.summary()

    head = _sh(["git", "rev-parse", "HEAD"], work).strip()
    shown = json.loads(_sh(["dvc", "exp", "show", "--json"], work))
    exps = {e["name"]: e["revs"][0]["data"] for r in shown if r["rev"] == head for e in r["experiments"]}
    metrics = {n: d["metrics"]["reports/metrics.json"]["data"] for n, d in exps.items()}
    assert metrics["s-t000"] == {"student": {"accuracy": 0.9, "nll": 1.5, "params": 99, "flops": 7},
                                 "trial": {"status": "completed", "epochs": 3, "max_epochs": 3}}
    assert metrics["s-t001-stopped"] == {
        "student": {"accuracy": 0.45, "nll": 1.5, "params": 99, "flops": 7},
        "trial": {"status": "stopped", "epochs": 1, "max_epochs": 3,
                  "reason": "stopped early after epoch 1/3 (scheduler or time budget)"}}
    # a failed trial's last accuracy is not a model's: only its size is kept
    assert metrics["s-t002-failed"] == {"student": {"params": 99, "flops": 7},
                                        "trial": {"status": "failed", "epochs": 2, "max_epochs": 3,
                                                  "reason": "non-finite loss at epoch 2"}}
    assert exps["s-t001-stopped"]["params"]["pipelines/default.yaml"]["data"]["distill"]["temperature"] == 2.0

    # completed only; and a second finish (a resumed search) records nothing twice
    only = _tiny_repo(tmp_path / "only")
    rec = TrialExperiments.open("s", only / "pipelines" / "default.yaml", only, enabled="completed", log=lines.append)
    records = [_record(0, "completed", 3, last), _record(1, "stopped", 1, last)]
    rec.finish(records)
    rec.finish(records)
    assert _refs(only) == ["s-t000"] and [r.experiment for r in records] == ["s-t000", ""]
    assert len(rec.seconds) == 1
    with pytest.raises(ValueError, match="'completed'"):
        TrialExperiments.open("s", only / "pipelines" / "default.yaml", only, enabled="stopped")


def test_recorder_off_or_outside_a_repository_warns_once(tmp_path):
    lines: list[str] = []
    assert TrialExperiments.open("tiny", write_pipeline(tmp_path), tmp_path, enabled=False, log=lines.append) is None
    assert lines == []  # turned off: silent
    assert TrialExperiments.open("tiny", tmp_path / "tiny.yaml", tmp_path, log=lines.append) is None
    assert len(lines) == 1 and lines[0].startswith("[search] warning: trials are not recorded as DVC experiments")


def test_spec_key_and_cli_flag():
    from autokd.search.hparams.schema import SearchSpec

    space = {"distill.alpha": {"type": "uniform", "low": 0.1, "high": 0.9}}
    assert SearchSpec(name="x", space=space).record_experiments is True
    assert SearchSpec(name="x", space=space, record_experiments=False).record_experiments is False
    assert SearchSpec(name="x", space=space, record_experiments="completed").record_experiments == "completed"
    with pytest.raises(ValueError):
        SearchSpec(name="x", space=space, record_experiments="stopped")
    res = runner.invoke(app, ["search", "hparams", "--help"], env={"COLUMNS": "200"})
    assert "--no-dvc-exp" in res.output and "--completed-only" in res.output


# ----------------------------------------------------------------------------- real searches


def _search(work: Path, doc: dict, *args: str):
    spec = write_search(work, doc, f"{doc['name']}.yaml")
    cwd = os.getcwd()
    os.chdir(work)
    try:
        res = runner.invoke(app, ["search", "hparams", str(spec), *args])
    finally:
        os.chdir(cwd)
    assert res.exit_code == 0, res.output
    trials = json.loads((work / "searches" / doc["name"] / "trials.json").read_text())
    return res.output, trials


def _refs(work: Path) -> list[str]:
    return sorted(_sh(["git", "for-each-ref", "--format=%(refname:lstrip=4)", "refs/exps"], work).split())


def _copy_repo(dst: Path) -> Path:
    """The project's files (no outputs, no dvc.lock, only the root dvc.yaml) with the tiny pipeline as
    pipelines/default.yaml, reproduced (``dvc repro``) and committed in a fresh git repository: the
    state a search starts from."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split()
    for f in files:
        src = REPO / f
        if (not src.is_file() or f.startswith(("artifacts/", "reports/", "dvclive/", "checkpoints/", "searches/",
                                               "runs/")) or f.endswith("dvc.lock") or (f.endswith("dvc.yaml") and f != "dvc.yaml")):
            continue
        (dst / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst / f)
    (dst / "pipelines" / "default.yaml").write_text(yaml.safe_dump(TINY_PIPELINE, sort_keys=False))
    _sh(["git", "init", "-q"], dst)
    for message in ("init", "repro"):
        if message == "repro":
            _sh(["dvc", "repro", "-q"], dst)
        _sh(["git", "add", "-A"], dst)
        _sh(["git", *GIT_ID, "commit", "-qm", message], dst)
    return dst


@pytest.mark.slow
def test_concurrent_ray_trials_are_experiments_dvc_shows_and_reproduces(tmp_path):
    work = _copy_repo(tmp_path / "repo")
    status = _sh(["git", "status", "--porcelain"], work)
    index, spec_sha = _sha(work / ".git" / "index"), _sha(work / "pipelines" / "default.yaml")
    head = _sh(["git", "rev-parse", "HEAD"], work).strip()
    doc = tiny_search(Path("pipelines/default.yaml"), Path("."), name="conc", scheduler={"type": "fifo"},
                      budget={"trials": 2, "max_concurrent": 2, "resources": {"cpu": 1}})
    output, trials = _search(work, doc, "--backend", "ray")
    assert [t["status"] for t in trials] == ["completed", "completed"]
    assert sorted(t["experiment"] for t in trials) == ["conc-t000", "conc-t001"] == _refs(work)
    assert "recorded 2 trials (2 completed) as DVC experiments" in output
    assert _sha(work / ".git" / "index") == index and _sha(work / "pipelines" / "default.yaml") == spec_sha
    assert _sh(["git", "rev-parse", "HEAD"], work).strip() == head
    assert status == "" and _sh(["git", "status", "--porcelain", "--untracked-files=no"], work) == ""
    assert _sh(["git", "status", "--porcelain"], work).split() == ["??", "conc.yaml"]  # the search spec
    fsck = subprocess.run(["git", "fsck", "--strict"], cwd=work, capture_output=True, text=True)
    assert fsck.returncode == 0 and "error" not in fsck.stdout + fsck.stderr

    shown = json.loads(_sh(["dvc", "exp", "show", "--json"], work))
    base = next(r for r in shown if r["rev"] == head)
    exps = {e["name"]: e["revs"][0]["data"] for e in base["experiments"]}
    assert set(exps) == {"conc-t000", "conc-t001"}
    for t in trials:
        data = exps[t["experiment"]]
        params = data["params"]["pipelines/default.yaml"]["data"]
        for path, value in t["patch"].items():
            node = params
            for part in path.split("."):
                node = node[part]
            assert node == value, path
        student = data["metrics"]["reports/metrics.json"]["data"]["student"]
        assert student["accuracy"] == t["final"]["test_accuracy"] and student["params"] == t["final"]["params"]

    # `dvc exp apply` + `dvc repro` retrains exactly that student (distill and evaluate rerun)
    t = trials[0]
    _sh(["dvc", "exp", "apply", t["experiment"]], work)
    assert yaml.safe_load((work / "pipelines" / "default.yaml").read_text())["distill"]["method"] == \
        t["patch"]["distill.method"]
    repro = _sh(["dvc", "repro"], work)
    assert "Running stage 'distill'" in repro and "Running stage 'train_teacher'" not in repro
    after = json.loads((work / "reports" / "metrics.json").read_text())["student"]
    assert after["accuracy"] == t["final"]["test_accuracy"]
    assert after["nll"] == t["final"]["test_nll"] and after["ece"] == t["final"]["test_ece"]


@pytest.mark.slow
def test_optuna_trials_recorded_and_both_off_switches(tmp_path):
    work = _tiny_repo(tmp_path / "repo")
    doc = tiny_search(Path("pipelines/default.yaml"), Path("."), name="opt", scheduler={"type": "fifo"},
                      budget={"trials": 2})
    output, trials = _search(work, doc, "--backend", "optuna")
    assert [t["experiment"] for t in trials] == ["opt-t000", "opt-t001"] == _refs(work)
    csv_header = (work / "searches" / "opt" / "trials.csv").read_text().splitlines()[0]
    assert "experiment" in csv_header.split(",")
    # --no-dvc-exp, and record_experiments: false in the spec: nothing recorded, nothing said
    output, trials = _search(work, {**doc, "name": "flag"}, "--backend", "optuna", "--no-dvc-exp", "-n", "1")
    assert trials[0]["status"] == "completed" and trials[0]["experiment"] == ""
    assert "DVC experiment" not in output
    output, trials = _search(work, {**doc, "name": "key", "record_experiments": False}, "--backend", "optuna",
                             "-n", "1")
    assert trials[0]["experiment"] == "" and "DVC experiment" not in output
    assert _refs(work) == ["opt-t000", "opt-t001"]
    # a trial whose loss goes non-finite is recorded too, marked failed, and the search goes on
    nan = {**doc, "name": "nan", "budget": {"trials": 2},
           "space": {"distill.temperature": {"type": "choice", "values": [1.0e-40]}}}
    spec = write_search(work, nan, "nan.yaml")
    cwd = os.getcwd()
    os.chdir(work)
    try:
        res = runner.invoke(app, ["search", "hparams", str(spec), "--backend", "optuna"])
    finally:
        os.chdir(cwd)
    output, trials = res.output, json.loads((work / "searches" / "nan" / "trials.json").read_text())
    assert res.exit_code == 1 and "no trial completed its schedule" in output  # said, and the search ended
    assert [t["status"] for t in trials] == ["failed", "failed"]
    assert [t["experiment"] for t in trials] == ["nan-t000-failed", "nan-t001-failed"]
    assert "recorded 2 trials (2 failed)" in output
    shown = json.loads(_sh(["dvc", "exp", "show", "--json"], work))
    exps = {e["name"]: e["revs"][0]["data"] for r in shown for e in r.get("experiments") or []}
    assert {"opt-t000", "opt-t001", "nan-t000-failed", "nan-t001-failed"} <= set(exps)


@pytest.mark.slow
def test_outside_a_repository_one_warning_and_the_search_completes(tmp_path):
    pipeline = write_pipeline(tmp_path)
    doc = tiny_search(pipeline, tmp_path, name="plain", scheduler={"type": "fifo"}, budget={"trials": 1})
    output, trials = _search(tmp_path, doc, "--backend", "optuna")
    assert trials[0]["status"] == "completed" and trials[0]["experiment"] == ""
    warnings = [ln for ln in output.splitlines() if "DVC experiment" in ln]
    assert len(warnings) == 1 and "not in a git repository" in warnings[0], output
