"""The Optuna-only backend: a journal study in this process (fast), a Pareto front, and two
processes sharing one SQLite study (slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import optuna
import pytest

from autokd.search.hparams.run import run_search

from hparams_support import REPO, tiny_search, write_pipeline, write_search

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("hp_optuna")
    write_pipeline(root)
    return root


def test_optuna_backend_journal_study(root):
    doc = tiny_search(root / "tiny.yaml", root, name="journal", budget={"trials": 4})
    doc["sampler"] = {"type": "tpe", "seed": 0, "n_startup_trials": 2}
    spec = write_search(root, doc, "journal.yaml")
    lines: list[str] = []
    out = root / "searches" / "journal"
    outcome = run_search(spec, backend="optuna", out_dir=out, base_dir=root, live=False, log=lines.append)
    assert len(outcome.records) == 4 and (out / "optuna.log").exists()
    assert {r.status for r in outcome.records} <= {"completed", "stopped"}
    for r in outcome.records:
        assert ("distill.params.beta@dkd" in r.params) == (r.params["distill.method"] == "dkd")
        if r.status == "completed":
            assert r.epochs == 3 and r.best["epoch"] >= 1
    assert (out / "best.yaml").exists() and (out / "trials.csv").exists()

    # the study is shared state: the same command again adds no trials (the budget is reached)
    again = run_search(spec, backend="optuna", out_dir=out, base_dir=root, live=False, log=lines.append)
    assert [r.trial for r in again.records] == [r.trial for r in outcome.records]
    from autokd.search.hparams.optuna_backend import make_storage

    study = optuna.load_study(study_name="journal", storage=make_storage(f"journal:{out / 'optuna.log'}", 0))
    assert len(study.trials) == 4 and study.user_attrs["search_fingerprint"]


def test_optuna_refuses_a_study_made_by_another_spec(root):
    from autokd.search.hparams.optuna_backend import StudyMismatch

    doc = tiny_search(root / "tiny.yaml", root, name="clash", budget={"trials": 1})
    out = root / "searches" / "clash"
    run_search(write_search(root, doc, "clash.yaml"), backend="optuna", out_dir=out, base_dir=root, live=False,
               log=lambda _: None)
    doc["space"]["distill.alpha"]["high"] = 0.5
    with pytest.raises(StudyMismatch, match="different search spec"):
        run_search(write_search(root, doc, "clash.yaml"), backend="optuna", out_dir=out, base_dir=root,
                   live=False, log=lambda _: None)


def test_multi_objective_writes_pareto_front(root):
    doc = tiny_search(root / "tiny.yaml", root, name="pareto", budget={"trials": 4},
                      objectives={"student.accuracy": "max", "student.params": "min"},
                      scheduler={"type": "auto"}, sampler={"type": "auto", "seed": 0, "population_size": 4})
    doc["space"] = {
        "distill.temperature": {"type": "loguniform", "low": 1.0, "high": 8.0},
        "student.model": {"type": "choice", "values": [{"name": "mlp", "params": {"hidden": [4]}},
                                                       {"name": "mlp", "params": {"hidden": [32]}}]},
    }
    out = root / "searches" / "pareto"
    outcome = run_search(write_search(root, doc, "pareto.yaml"), backend="optuna", out_dir=out, base_dir=root,
                         live=False, log=lambda _: None)
    assert all(r.status == "completed" for r in outcome.records)  # no pruning with two objectives
    front = json.loads((out / "pareto.json").read_text())["front"]
    assert front and (out / "pareto.png").stat().st_size > 1000
    done = [r for r in outcome.records]
    for p in front:  # nothing completed dominates a front member
        assert not any(r.final["val_accuracy"] >= p["student.accuracy"] and r.final["params"] <= p["student.params"]
                       and (r.final["val_accuracy"] > p["student.accuracy"] or r.final["params"] < p["student.params"])
                       for r in done)


@pytest.mark.slow
def test_two_processes_share_one_sqlite_study(root, tmp_path):
    """Both processes start at once on a fresh database; together they run the budget."""
    doc = tiny_search(root / "tiny.yaml", root, name="shared", budget={"trials": 6})
    spec = write_search(tmp_path, doc, "shared.yaml")
    db = tmp_path / "study.db"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "autokd", "search", "hparams", str(spec), "--backend", "optuna",
           "--storage", f"sqlite:///{db}", "--out", str(tmp_path / "out")]
    procs = [subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=240)[0] for p in procs]
    for p, text in zip(procs, outputs):
        assert p.returncode == 0, text
    study = optuna.load_study(study_name="shared", storage=f"sqlite:///{db}")
    finished = [t for t in study.trials if t.state.is_finished()]
    assert 6 <= len(finished) <= 7 and len(finished) == len(study.trials)  # at most one extra (a race)
    workers = {t.user_attrs["worker"] for t in finished}
    assert len(workers) == 2, workers  # both processes ran trials
    trials = json.loads((tmp_path / "out" / "trials.json").read_text())
    assert len(trials) == len(study.trials)
