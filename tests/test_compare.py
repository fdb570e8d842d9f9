"""The method comparison: its spec, its DVC matrix file, the runs and the aggregate (library),
and (slow) a real `dvc repro pipelines/compare/dvc.yaml` on a tiny default pipeline."""

from __future__ import annotations

import json
import os
import statistics
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from autokd.stages import pipeline as stages
from autokd.cli import app
from autokd.stages.compare import aggregate, markdown_table, run_all, run_dir, timing_path
from autokd.lineage import read_manifest
from autokd.losses import available, get_spec
from autokd.spec.compare import BASELINE
from autokd.stages.compare_spec import load_compare_spec, run_pipeline_spec, validate_compare
from autokd.spec.errors import SpecError
from autokd.stages import load_pipeline_spec
from tests.conftest import tiny_cnn_spec

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()

TINY_DEFAULT = tiny_cnn_spec(student_epochs=2, extra='evaluate: {latency_runs: 2, latency_warmup: 0, throughput_batch: 16}\n')

TINY_METHODS = {
    "pipeline": "pipelines/default.yaml",
    "seeds": [0, 1],
    "overrides": {},
    "methods": {"kd": {}, "at": {"features": [{"student": "stage1", "teacher": "stage1"}]}},
}


# ------------------------------------------------------------------------------- the spec


def test_shipped_comparison_covers_every_single_stage_method():
    spec = load_compare_spec(REPO / "pipelines" / "compare" / "methods.yaml", root=REPO)
    classifiers = [n for n in available() if get_spec(n).task == "classify"]  # language-model methods aside
    assert sorted(spec.methods) == classifiers
    assert spec.names()[0] == BASELINE and len(spec.seeds) == 3
    for name in classifiers:  # every run's pipeline spec validates, with the method's own features
        run = run_pipeline_spec(spec, name, spec.seeds[-1], REPO)
        assert run.distill.method == name and run.student.train.seed == spec.seeds[-1]
        assert run.teacher.train.seed == 0  # one teacher, the default pipeline's
    assert [(p.student, p.teacher) for p in run_pipeline_spec(spec, "at", 0, REPO).distill.features] == [
        ("stage1", "stage1"), ("stage2", "stage2")]


def test_dvc_matrix_reads_methods_and_seeds_from_the_spec():
    dvc = yaml.safe_load((REPO / "pipelines" / "compare" / "dvc.yaml").read_text())
    spec = yaml.safe_load((REPO / "pipelines" / "compare" / "methods.yaml").read_text())
    assert dvc["vars"] == ["methods.yaml"]
    st = dvc["stages"]
    assert st["distill"]["matrix"] == {"method": "${methods}", "seed": "${seeds}"}
    assert st["baseline"]["matrix"] == {"seed": "${seeds}"}
    for name in ("baseline", "distill"):
        assert st[name]["wdir"] == "../.."
        files = {k for entry in st[name]["params"] for k in entry}
        assert spec["pipeline"] in files  # the pipeline the runs read is the one whose params are tracked
        assert "artifacts/data" in st[name]["deps"] and "artifacts/teacher" in st[name]["deps"]
    assert "runs/compare/${item.method}/${item.seed}" in st["distill"]["outs"]
    assert {"reports/methods.json": {"cache": False}} in st["aggregate"]["metrics"]


def _issues(data, root=REPO) -> str:
    with pytest.raises(SpecError) as exc:
        validate_compare(data, file="m.yaml", root=root)
    return str(exc.value)


def test_comparison_spec_errors_name_key_paths():
    bad = json.loads(json.dumps(TINY_METHODS))
    bad["methods"]["kdd"] = {}
    bad["methods"]["dkd"] = {"params": {"beta": -1}}
    bad["methods"]["at"]["features"][0]["student"] = "stag1"
    bad["methods"]["fitnet"] = {"features": [{"student": "pool", "teacher": "stage2"}]}
    bad["methods"]["kd"] = {"features": [{"student": "pool", "teacher": "pool"}]}
    msg = _issues(bad)
    assert "m.yaml: methods.kdd: expected a distillation method" in msg and "did you mean 'kd'?" in msg
    assert "methods.dkd.params.beta: expected a number greater than or equal to 0, found -1" in msg
    assert "methods.at.features[0].student: expected a student feature" in msg and "did you mean 'stage1'?" in msg
    assert "methods.fitnet.features[0]: expected a student/teacher pair of the same rank" in msg
    assert "methods.kd.features: expected no feature pairs for the logit method 'kd'" in msg
    assert "seeds: expected distinct seeds" in _issues({**TINY_METHODS, "seeds": [1, 1]})
    assert "the labels-only baseline is always run" in _issues({**TINY_METHODS, "methods": {"baseline": {}}})
    msg = _issues({**TINY_METHODS, "methods": {"kd": {"temprature": 2}}})
    assert "methods.kd.temprature: expected a known key (params, features, temperature, alpha)" in msg
    assert "did you mean 'temperature'?" in msg
    assert "overrides" in _issues({**TINY_METHODS, "overrides": {"distill.method": "dkd"}})


def test_cli_run_unknown_method_exits_2(tmp_path):
    res = runner.invoke(app, ["compare", "run", "kdd", "0", "--root", str(REPO)])
    assert res.exit_code == 2 and "did you mean 'kd'?" in res.output


# ------------------------------------------------------------------------------ runs + aggregate


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """The tiny default pipeline's data and teacher, then every (method, seed) run and the aggregate."""
    root = tmp_path_factory.mktemp("compare")
    (root / "pipelines").mkdir()
    (root / "pipelines" / "default.yaml").write_text(TINY_DEFAULT)
    base = load_pipeline_spec(root / "pipelines" / "default.yaml", root=root)
    layout = stages.Layout(root)
    stages.prepare(base, layout)
    stages.train_teacher(base, layout, progress=False)
    spec = validate_compare(TINY_METHODS, root=root)
    report = run_all(spec, root, progress=False)
    return spec, root, report


def test_each_run_has_its_student_metrics_and_lineage(compared):
    spec, root, _ = compared
    for name in spec.names():
        for seed in spec.seeds:
            out = run_dir(root, name, seed)
            m = json.loads((out / "metrics.json").read_text())
            assert m["method"] == name and m["seed"] == seed and m["epochs"] == 2
            assert 0 <= m["accuracy"] <= 1 and not any("second" in k for k in m)  # cached: no wall times
            timing = json.loads(timing_path(root, name, seed).read_text())
            assert timing["seconds_per_epoch"] > 0 and len(timing["epoch_seconds"]) == 2
            manifest = read_manifest(out / "student")
            assert manifest["artifact"] == f"runs/compare/{name}/{seed}/student"
            kinds = [p["kind"] for p in manifest["parents"]]
            assert kinds == (["dataset"] if name == BASELINE else ["dataset", "teacher"])
            assert manifest["spec"]["student"]["train"]["seed"] == seed
            assert (root / "checkpoints" / "compare" / name / str(seed) / "last.safetensors").exists()
    kd0 = read_manifest(run_dir(root, "kd", 0) / "student")["sha256"]
    kd1 = read_manifest(run_dir(root, "kd", 1) / "student")["sha256"]
    assert kd0 != kd1  # the seed is the student's


def test_aggregate_means_stds_and_kd_gain_per_seed(compared):
    spec, root, report = compared
    assert json.loads((root / "reports" / "methods.json").read_text()) == json.loads(json.dumps(report))
    assert list(report["methods"]) == ["baseline", "kd", "at"]
    base = {s: json.loads((run_dir(root, BASELINE, s) / "metrics.json").read_text())["accuracy"] for s in spec.seeds}
    for name, row in report["methods"].items():
        accs = [json.loads((run_dir(root, name, s) / "metrics.json").read_text())["accuracy"] for s in spec.seeds]
        gains = [a - base[s] for a, s in zip(accs, spec.seeds)]
        assert row["accuracy_mean"] == pytest.approx(statistics.fmean(accs))
        assert row["accuracy_std"] == pytest.approx(statistics.stdev(accs))
        assert row["kd_gain_mean"] == pytest.approx(statistics.fmean(gains))
        assert row["seconds_per_epoch_mean"] > 0
    assert report["methods"]["baseline"]["kd_gain_mean"] == 0.0
    assert report["methods"]["at"]["kind"] == "feature" and report["methods"]["kd"]["kind"] == "logit"
    assert (root / "reports" / "methods.png").stat().st_size > 5000
    table = markdown_table(report)
    assert table.count("\n") == 2 + len(report["methods"]) - 1 and "| kd | logit |" in table


def test_aggregate_names_missing_runs(compared, tmp_path):
    spec, _, _ = compared
    with pytest.raises(FileNotFoundError, match="baseline/0"):
        aggregate(spec, tmp_path)


# ----------------------------------------------------------------------------- real DVC


@pytest.mark.slow
def test_dvc_repro_of_the_comparison(tmp_path):
    """The matrix file for real, on a tiny default pipeline, two methods and one seed (stages are ~9 s each)."""
    from tests.test_pipeline import _copy_repo, _ran, _sh

    work = _copy_repo(tmp_path / "repo")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    (work / "pipelines" / "default.yaml").write_text(TINY_DEFAULT)
    tiny = {**TINY_METHODS, "seeds": [0], "methods": {"kd": {}, "rkd": {}}}
    (work / "pipelines" / "compare" / "methods.yaml").write_text(yaml.safe_dump(tiny))
    _sh(["git", "init", "-q"], work)
    _sh(["git", "add", "-A"], work)
    _sh(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"], work)

    # the untuned comparison: `aggregate` and what it needs (the tuned stages have their own test)
    target = "pipelines/compare/dvc.yaml:aggregate"
    ran = {s.split(":")[-1] for s in _ran(_sh(["dvc", "repro", target], work, env))}
    assert ran == {"prepare", "train_teacher", "baseline@0", "distill@kd-0", "distill@rkd-0", "aggregate"}
    report = json.loads((work / "reports" / "methods.json").read_text())
    assert list(report["methods"]) == ["baseline", "kd", "rkd"]
    tiny["methods"]["rkd"] = {"params": {"angle_weight": 10.0}}  # only rkd's runs are stale
    (work / "pipelines" / "compare" / "methods.yaml").write_text(yaml.safe_dump(tiny))
    status = json.loads(_sh(["dvc", "status", "--json", "--with-deps", target], work, env))
    assert {k.split(":")[-1] for k in status} == {"distill@rkd-0", "aggregate"}
