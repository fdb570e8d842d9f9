"""Real Ray Tune + Optuna on a tiny spec: one Ray session for the module (Ray starts slowly)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from autokd.search.hparams.run import run_search
from autokd.spec.document import apply_overrides, load_yaml
from autokd.stages import validate_pipeline

from hparams_support import tiny_search, write_pipeline, write_search

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_session():
    from autokd.search.hparams.ray_backend import start_ray

    started = start_ray(num_cpus=2)
    yield
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("hp_ray")
    write_pipeline(root)
    return root


@pytest.fixture(scope="module")
def four_trials(ray_session, root):
    """A 4-trial search: TPE's sibling (random sampler, seeded), ASHA, 2 concurrent trials."""
    spec = write_search(root, tiny_search(root / "tiny.yaml", root), "four.yaml")
    lines: list[str] = []
    outcome = run_search(spec, out_dir=root / "searches" / "tiny", base_dir=root, live=False, log=lines.append)
    return outcome, lines


@pytest.fixture(scope="module")
def nan_search(ray_session, root, four_trials):
    # one worker (its actor is reused): the seeded sampler draws 1e-40 (NaN) first, then 4.0
    doc = tiny_search(root / "tiny.yaml", root, name="nan", budget={"trials": 2, "max_concurrent": 1},
                      scheduler={"type": "fifo"}, sampler={"type": "random", "seed": 0})
    doc["space"] = {"distill.temperature": {"type": "choice", "values": [4.0, 1.0e-40]}}
    spec = write_search(root, doc, "nan.yaml")
    lines: list[str] = []
    outcome = run_search(spec, out_dir=root / "searches" / "nan", base_dir=root, live=False, log=lines.append)
    return outcome, lines


def test_four_trials_are_recorded(four_trials, root):
    outcome, lines = four_trials
    out = outcome.out_dir
    for name in ("trials.csv", "trials.json", "best.yaml", "manifest.json"):
        assert (out / name).exists(), name
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert len(rows) == 4 and len(outcome.records) == 4
    for col in ("trial", "status", "reason", "epochs", "seconds", "val_accuracy", "test_accuracy",
                "best_val_accuracy", "node", "patch", "data_sha256", "teacher_sha256", "param:distill.temperature"):
        assert col in rows[0], col
    statuses = {r.status for r in outcome.records}
    assert statuses <= {"completed", "stopped"} and "completed" in statuses
    for r in outcome.records:
        assert 1 <= r.epochs <= 3 and r.node and r.seconds >= 0
        assert (r.status == "completed") == (r.epochs == 3)
        assert r.lineage["data_sha256"] and r.lineage["teacher_sha256"]
    # one plain line per finished trial (no terminal here), and a summary
    assert sum(1 for ln in lines if ln.startswith("[search] ") and " trial " in ln and "/4 " in ln) == 4
    assert any(ln.startswith("[search] done: 4 trials") for ln in lines)


def test_conditional_parameter_only_with_its_method(four_trials):
    outcome, _ = four_trials
    methods = set()
    for r in outcome.records:
        method = r.params["distill.method"]
        methods.add(method)
        assert ("distill.params.beta@dkd" in r.params) == (method == "dkd")
        assert ("beta" in r.patch["distill.params"]) == (method == "dkd")
    assert {"dkd"} < methods  # dkd and at least one other method were drawn


def test_logit_trials_never_ran_the_teacher(four_trials):
    outcome, _ = four_trials
    for r in outcome.records:
        if r.params["distill.method"] in ("kd", "dkd"):
            assert r.final["teacher_calls"] == 0 and r.teacher_mode == "cache"
        else:
            assert r.final["teacher_calls"] > 0 and r.teacher_mode == "live"


def test_best_yaml_is_the_best_completed_trial_and_validates(four_trials, root):
    outcome, _ = four_trials
    best = yaml.safe_load((outcome.out_dir / "best.yaml").read_text())
    done = [r for r in outcome.records if r.status == "completed"]
    top = max(r.final["val_accuracy"] for r in done)
    assert best["metrics"]["val_accuracy"] == top
    assert best["trial"] in {r.trial for r in done if r.final["val_accuracy"] == top}
    spec = validate_pipeline(apply_overrides(load_yaml(root / "tiny.yaml"), best["patch"]), root=root)
    assert spec.distill.method == best["patch"]["distill.method"]
    trials = json.loads((outcome.out_dir / "trials.json").read_text())
    assert {t["trial"] for t in trials} == {r.trial for r in outcome.records}


def test_nan_trial_fails_with_its_reason_and_the_search_goes_on(nan_search):
    outcome, lines = nan_search
    failed = [r for r in outcome.records if r.status == "failed"]
    done = [r for r in outcome.records if r.status == "completed"]
    assert len(failed) == 1 and len(done) == 1 and len(outcome.records) == 2
    for r in failed:
        assert r.params["distill.temperature"] == 1e-40
        assert "non-finite loss" in r.reason and "epoch 1" in r.reason
        assert r.epochs == 0 and "val_accuracy" not in r.final
    assert all(r.params["distill.temperature"] == 4.0 for r in done)
    assert any("failed" in ln and "non-finite loss" in ln for ln in lines)
    # not retried: a failed trial reported one result only
    for r in failed:
        progress = Path(outcome.out_dir / "ray" / "tune" / f"trial_{r.trial}" / "result.json")
        assert len(progress.read_text().strip().splitlines()) == 1


def test_failure_aware_searcher_tells_optuna_fail():
    import optuna

    from autokd.search.hparams.ray_backend import FailureAwareOptunaSearch

    def space(trial):
        trial.suggest_float("x", 0, 1)

    s = FailureAwareOptunaSearch(space=space, metric="val_accuracy", mode="max",
                                 sampler=optuna.samplers.RandomSampler(seed=0))
    s.suggest("a")
    s.suggest("b")
    s.on_trial_result("a", {"val_accuracy": 0.0, "failed": True, "training_iteration": 1})
    s.on_trial_complete("a", {"val_accuracy": 0.0, "failed": True, "error": "non-finite loss"})
    s.on_trial_complete("b", {"val_accuracy": 0.7, "failed": False})
    states = [t.state for t in s._ot_study.trials]
    assert states == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.COMPLETE]
