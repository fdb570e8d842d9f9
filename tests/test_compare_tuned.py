"""The tuned method comparison: search hints, the per-method search (same budget, validation only),
the tuned runs and the untuned-beside-tuned table; (slow) the whole thing under a real `dvc repro`."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

import pytest
import yaml

from autokd.losses import get_spec
from autokd.search.tuned_compare import SELECTION_KEYS, method_space, search_document, tune_method
from autokd.spec.compare import BASELINE, MethodEntry
from autokd.stages import pipeline as stages
from autokd.stages import load_pipeline_spec
from autokd.stages.compare import run_all, run_dir
from autokd.stages.compare_spec import load_compare_spec, validate_compare
from autokd.stages.compare_tuned import (GROUP, aggregate_tuned, chosen_path, describe_patch, run_tuned, tuned_entry,
                                         tuned_table)
from autokd.stages.validate import uses_temperature
from tests.test_compare import REPO, TINY_DEFAULT

TINY_TUNED = {
    "pipeline": "pipelines/default.yaml",
    "seeds": [0, 1],
    "methods": {"kd": {}, "at": {"features": [{"student": "stage1", "teacher": "stage1"}]}},
    "tuning": {"trials": 2, "epochs": 2, "sampler": "random", "sampler_seed": 3},
}


def _keys(obj) -> set[str]:
    """Every mapping key in a JSON document, at any depth."""
    if isinstance(obj, dict):
        return set(obj) | {k for v in obj.values() for k in _keys(v)}
    if isinstance(obj, list):
        return {k for v in obj for k in _keys(v)}
    return set()


# ------------------------------------------------------------------------- hints and the space


def test_search_hints_are_valid_values_of_every_compared_method():
    spec = load_compare_spec(REPO / "pipelines" / "compare" / "methods.yaml", root=REPO)
    hinted = 0
    for method in spec.methods:
        lspec = get_spec(method)
        for knob, hint in lspec.search_space().items():
            hinted += 1
            assert hint["low"] < hint["high"], (method, knob)
            default = lspec.defaults()[knob]
            assert hint["low"] <= default <= hint["high"], f"{method}.{knob}: default {default} outside its range"
            for v in (hint["low"], hint["high"]):  # both ends are values the parameter model accepts
                lspec.params(**{knob: int(v) if hint["type"] == "int" else v})
        assert ("temperature" in lspec.search_space()) == uses_temperature(method), method
    assert hinted >= 20


def test_every_method_gets_the_same_budget_over_its_own_knobs():
    spec = load_compare_spec(REPO / "pipelines" / "compare" / "methods.yaml", root=REPO)
    docs = {m: search_document(spec, m, "p.yaml", method_space(spec, m)) for m in spec.methods}
    budgets = {json.dumps({k: v for k, v in d.items() if k not in ("name", "space")}, sort_keys=True)
               for d in docs.values()}
    assert len(budgets) == 1  # trials, scheduler (fifo: every trial runs every epoch), sampler and seed alike
    assert docs["kd"]["scheduler"] == {"type": "fifo"} and docs["kd"]["budget"]["trials"] == spec.tuning.trials
    assert set(docs["kd"]["space"]) == {"distill.alpha", "distill.temperature"}
    assert set(docs["normkd"]["space"]) == {"distill.alpha", "distill.params.t_norm"}  # its own knob, no T
    assert "distill.params.beta" in docs["dkd"]["space"] and "distill.params.warmup_epochs" not in docs["dkd"]["space"]
    assert set(docs["pkt"]["space"]) == {"distill.alpha"}
    assert docs["kd"]["objectives"] == {"student.accuracy": "max"}  # the validation accuracy


def test_knobs_an_entry_sets_stay_fixed(tmp_path):
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "default.yaml").write_text(TINY_DEFAULT)
    spec = validate_compare({**TINY_TUNED, "methods": {"dkd": {"params": {"beta": 2.0}, "temperature": 3.0},
                                                       "pkt": {"alpha": 0.5}}}, root=tmp_path)
    assert set(method_space(spec, "dkd")) == {"distill.alpha", "distill.params.alpha"}
    assert method_space(spec, "pkt") == {}
    entry = tuned_entry(spec.methods["dkd"], {"distill.alpha": 0.3, "distill.params.alpha": 2.0})
    assert entry == MethodEntry(params={"beta": 2.0, "alpha": 2.0}, temperature=3.0, alpha=0.3)
    with pytest.raises(ValueError, match="student.train.lr"):
        tuned_entry(entry, {"student.train.lr": 0.1})
    # nothing to search: the entry as it is, no trial run
    (tmp_path / "artifacts").mkdir()
    chosen = tune_method(spec, "pkt", tmp_path, log=lambda s: None)
    assert chosen["patch"] == {} and chosen["trials"] == 0
    assert describe_patch({"distill.alpha": 0.25, "distill.params.beta": 4.0}) == "λ=0.25 beta=4"


def test_tuning_spec_errors_name_key_paths(tmp_path):
    from autokd.spec.errors import SpecError

    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "default.yaml").write_text(TINY_DEFAULT)
    bad = {**TINY_TUNED, "tuning": {"trials": 0, "alpha": {"low": 0.9, "high": 0.1}, "sampler": "grid", "trails": 3}}
    with pytest.raises(SpecError) as err:
        validate_compare(bad, root=tmp_path)
    text = err.value.render()
    for where in ("tuning.trials", "tuning.alpha", "tuning.sampler", "tuning.trails"):
        assert where in text, text


# --------------------------------------------------------------- the search and the tuned runs


class _NoTestSplit:
    """Stands in for the test split while tuning: any use of it fails the trial."""

    def __getattr__(self, name):
        raise AssertionError(f"the tuning read the test split (.{name})")


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """A tiny comparison (kd, at; 2 seeds), each method tuned for 2 trials with the Optuna backend
    (in this process) while the test split is unreadable; then the untuned and tuned runs."""
    import autokd.data.prepare as prepare_mod

    root = tmp_path_factory.mktemp("tuned")
    (root / "pipelines").mkdir()
    (root / "pipelines" / "default.yaml").write_text(TINY_DEFAULT)
    base = load_pipeline_spec(root / "pipelines" / "default.yaml", root=root)
    layout = stages.Layout(root)
    stages.prepare(base, layout)
    stages.train_teacher(base, layout, progress=False)
    spec = validate_compare(TINY_TUNED, root=root)

    real = prepare_mod.load_prepared
    mp = pytest.MonkeyPatch()
    mp.setattr(prepare_mod, "load_prepared", lambda d: dataclasses.replace(real(d), test=_NoTestSplit()))
    try:
        chosen = {m: tune_method(spec, m, root, backend="optuna", log=lambda s: None) for m in spec.methods}
    finally:
        mp.undo()
    run_all(spec, root, progress=False)
    for m in spec.methods:
        for s in spec.seeds:
            run_tuned(spec, m, s, root, progress=False)
    return spec, root, chosen, aggregate_tuned(spec, root)


def test_tuning_selects_on_validation_only(tuned):
    spec, root, chosen, _ = tuned
    for m, c in chosen.items():
        assert c == json.loads(chosen_path(root, m).read_text())
        assert c["completed"] == c["trials"] == 2  # the trials ran without the test split
        assert not any("test" in k for k in _keys(c)), sorted(_keys(c))
        assert c["selection"]["split"] == "validation" and set(SELECTION_KEYS) <= set(c)
        assert set(c["patch"]) == set(c["searched"]) == set(method_space(spec, m))
        best = max(c["candidates"], key=lambda t: (t["val_accuracy"], -t["val_loss"]))
        assert best["patch"] == c["patch"] and best["val_accuracy"] == c["val_accuracy"]
        trials = json.loads((root / "searches" / "compare" / m / "search" / "trials.json").read_text())
        assert len(trials) == 2 and not any("test_accuracy" in (t.get("final") or {}) for t in trials)


def test_tuned_runs_train_the_chosen_configuration(tuned):
    spec, root, chosen, _ = tuned
    for m in spec.methods:
        # seed 0 is the tuning seed and the schedules are equal: the run reproduces the chosen trial
        m0 = json.loads((run_dir(root, m, 0, GROUP) / "metrics.json").read_text())
        assert m0["val_accuracy"] == pytest.approx(chosen[m]["val_accuracy"], abs=1e-12)
        manifest = json.loads((run_dir(root, m, 1, GROUP) / "student" / "manifest.json").read_text())
        distill = manifest["spec"]["distill"]
        assert distill["alpha"] == pytest.approx(chosen[m]["patch"]["distill.alpha"])
        if "distill.temperature" in chosen[m]["patch"]:
            assert distill["params"]["temperature"] == pytest.approx(chosen[m]["patch"]["distill.temperature"])
        assert manifest["spec"]["student"]["train"]["seed"] == 1


def test_untuned_beside_tuned_report_and_table(tuned):
    spec, root, _, report = tuned
    assert json.loads((root / "reports" / "methods_tuned.json").read_text()) == json.loads(json.dumps(report))
    assert list(report["methods"]) == ["kd", "at"] and report["tuning_seed"] == 0
    base = {s: json.loads((run_dir(root, BASELINE, s) / "metrics.json").read_text())["accuracy"] for s in spec.seeds}
    for m, row in report["methods"].items():
        tuned_acc = [json.loads((run_dir(root, m, s, GROUP) / "metrics.json").read_text())["accuracy"] for s in spec.seeds]
        assert row["tuned"]["accuracy_mean"] == pytest.approx(sum(tuned_acc) / 2)
        assert row["tuned"]["kd_gain_mean"] == pytest.approx(sum(a - base[s] for a, s in zip(tuned_acc, spec.seeds)) / 2)
    table = tuned_table(report)
    assert table.count("\n") == 2 + len(report["methods"]) and "| kd | logit |" in table and "λ=" in table


def test_cli_tune_unknown_method_and_missing_choice(tuned):
    from typer.testing import CliRunner

    from autokd.cli import app

    _, root, _, _ = tuned
    spec_file = root / "tuned.yaml"
    spec_file.write_text(yaml.safe_dump(TINY_TUNED))
    res = CliRunner().invoke(app, ["compare", "tune", "kdd", "--spec", str(spec_file), "--root", str(root)])
    assert res.exit_code == 2 and "did you mean 'kd'?" in res.output
    # under `dvc repro` the cluster address comes from the environment: a dead one fails fast, exit 2
    res = CliRunner().invoke(app, ["compare", "tune", "kd", "--spec", str(spec_file), "--root", str(root)],
                             env={"AUTOKD_RAY_ADDRESS": "127.0.0.1:1"})
    assert res.exit_code == 2 and "127.0.0.1:1" in res.output, res.output
    (root / "runs" / GROUP / "at" / "chosen.json").rename(root / "chosen.bak")
    try:
        res = CliRunner().invoke(app, ["compare", "run-tuned", "at", "0", "--spec", str(spec_file), "--root", str(root)])
        assert res.exit_code == 2 and "autokd compare tune at" in res.output
    finally:
        (root / "chosen.bak").rename(root / "runs" / GROUP / "at" / "chosen.json")


# ----------------------------------------------------------------------------- real DVC


@pytest.mark.slow
def test_dvc_repro_of_the_tuned_comparison(tmp_path):
    """tune (Ray, 2 trials) per method, the tuned runs, and the untuned-beside-tuned table, for real."""
    from tests.test_pipeline import _copy_repo, _ran, _sh

    work = _copy_repo(tmp_path / "repo")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    (work / "pipelines" / "default.yaml").write_text(TINY_DEFAULT)
    tiny = {**TINY_TUNED, "seeds": [0], "overrides": {}, "methods": {"kd": {}, "rkd": {}},
            "tuning": {**TINY_TUNED["tuning"], "max_concurrent": 2}}
    (work / "pipelines" / "compare" / "methods.yaml").write_text(yaml.safe_dump(tiny))
    _sh(["git", "init", "-q"], work)
    _sh(["git", "add", "-A"], work)
    _sh(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"], work)

    ran = {s.split(":")[-1] for s in _ran(_sh(["dvc", "repro", "pipelines/compare/dvc.yaml"], work, env))}
    assert {"tune@kd", "tune@rkd", "tuned@kd-0", "tuned@rkd-0", "aggregate_tuned", "distill@kd-0"} <= ran
    report = json.loads((work / "reports" / "methods_tuned.json").read_text())
    assert list(report["methods"]) == ["kd", "rkd"]
    for m in ("kd", "rkd"):
        c = json.loads(chosen_path(work, m).read_text())
        assert c["completed"] == 2 and not any("test" in k for k in _keys(c))
        assert set(c["patch"]) == set(method_space(validate_compare(tiny, root=work), m))
    # a second repro runs nothing; a new budget reruns only the tuned part
    assert not _ran(_sh(["dvc", "repro", "pipelines/compare/dvc.yaml"], work, env))
    tiny["tuning"]["sampler_seed"] = 4
    (work / "pipelines" / "compare" / "methods.yaml").write_text(yaml.safe_dump(tiny))
    status = json.loads(_sh(["dvc", "status", "--json", "pipelines/compare/dvc.yaml"], work, env))
    assert {k.split(":")[-1] for k in status} == {"tune@kd", "tune@rkd", "aggregate_tuned"}


@pytest.mark.slow
def test_tuned_stages_depend_on_what_they_import(tmp_path, monkeypatch):
    """tune and run-tuned, each in a fresh interpreter: the autokd files they import are in their deps."""
    from tests.test_dvc_deps import _assert_covered, imported_files, stage_deps

    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "default.yaml").write_text(TINY_DEFAULT)
    (tmp_path / "methods.yaml").write_text(yaml.safe_dump({**TINY_TUNED, "methods": {"kd": {}}}))
    for stage in ("prepare", "train_teacher"):
        imported_files(["stage", stage, "pipelines/default.yaml"], tmp_path)
    monkeypatch.setenv("AUTOKD_SEARCH_BACKEND", "optuna")
    deps = stage_deps(REPO / "pipelines" / "compare" / "dvc.yaml")
    files = imported_files(["compare", "tune", "kd", "--spec", "methods.yaml"], tmp_path)
    assert "autokd/search/tuned_compare.py" in files
    _assert_covered(files, deps["tune"], "comparison stage tune")
    files = imported_files(["compare", "run-tuned", "kd", "0", "--spec", "methods.yaml"], tmp_path)
    assert not any(f.startswith("autokd/search/") for f in files)  # below the search, as every stage
    _assert_covered(files, deps["tuned"], "comparison stage tuned")
