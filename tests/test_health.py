"""Health checks (autokd.stages.health): each fires on a case built to trigger it and stays quiet
on a healthy pipeline; the stages print and store them; ``autokd doctor`` runs them early."""

from __future__ import annotations

import re

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from autokd.cli import app
from autokd.spec.pipeline import DistillSpec
from autokd.stages import Layout, distill, evaluate, load_pipeline_spec, prepare, train_baseline, train_teacher
from autokd.stages.health import (
    CAPACITY_RATIO_MAX, CHECKS, ENTROPY_MAX, GRAD_RATIO_MAX, SEARCH_SPEC, capacity_gap, gradient_balance, kd_gain,
    kd_gain_spread, target_entropy, teacher_vs_baseline,
)

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()

# Built to trip every check: a teacher trained one epoch at a tiny learning rate (worse than the
# labels-only student), T=100 (near-uniform targets), a 300k-parameter teacher for a 160-parameter
# student, lambda=0.999 (the KD gradient drowns CE) and hence a distilled student worse than the baseline.
SICK = """
name: sick
data: {source: digits, max_samples: 400, seed: 0}
teacher:
  model: {name: mlp, params: {hidden: [512, 512]}}
  train: {epochs: 1, batch_size: 64, lr: 0.00001, seed: 0}
student:
  model: {name: mlp, params: {hidden: [2]}}
  train: {epochs: 6, batch_size: 32, lr: 0.03, seed: 0}
distill: {method: kd, temperature: 100.0, alpha: 0.999}
evaluate: {latency_runs: 2, latency_warmup: 1, throughput_batch: 16}
runtime: {device: cpu, num_threads: 1}
"""

# A healthy tiny pipeline: a trained MLP teacher (test 0.9125 vs labels-only 0.9000), an MLP student
# a quarter of its size.
HEALTHY = """
name: healthy
data: {source: digits, max_samples: 400, seed: 0}
teacher:
  model: {name: mlp, params: {hidden: [128]}}
  train: {optimizer: adamw, epochs: 30, batch_size: 32, lr: 0.01, seed: 0}
student:
  model: {name: mlp, params: {hidden: [32]}}
  train: {epochs: 8, batch_size: 32, lr: 0.01, seed: 0}
distill: {method: kd, temperature: 4.0, alpha: 0.5}
evaluate: {latency_runs: 2, latency_warmup: 1, throughput_batch: 16}
runtime: {device: cpu, num_threads: 1}
"""


def _run(root: Path, text: str, name: str) -> tuple[Path, dict]:
    spec_path = root / f"{name}.yaml"
    spec_path.write_text(text)
    spec = load_pipeline_spec(spec_path)
    layout = Layout(root)
    prepare(spec, layout)
    train_teacher(spec, layout, progress=False)
    train_baseline(spec, layout, progress=False)
    distill(spec, layout, progress=False)
    return spec_path, evaluate(spec, layout, spec_path=spec_path)


@pytest.fixture(scope="module")
def sick(tmp_path_factory):
    root = tmp_path_factory.mktemp("sick")
    return (root, *_run(root, SICK, "sick"))


@pytest.fixture(scope="module")
def healthy(tmp_path_factory):
    root = tmp_path_factory.mktemp("healthy")
    return (root, *_run(root, HEALTHY, "healthy"))


def _status(metrics: dict) -> dict[str, str]:
    return {c["check"]: c["status"] for c in metrics["health"]}


# ---------------------------------------------------------------------------------- the checks


def test_teacher_vs_baseline_threshold():
    assert teacher_vs_baseline(0.80, 0.85).status == "warn"
    assert teacher_vs_baseline(0.85, 0.85).status == "ok"
    c = teacher_vs_baseline(0.9861, 0.9333)  # the default pipeline's test accuracies
    assert c.status == "ok" and c.value == pytest.approx(0.0528)


def test_target_entropy_per_method():
    torch.manual_seed(0)
    sharp = torch.randn(200, 10) * 10
    kd = DistillSpec(method="kd", temperature=4.0)
    assert target_entropy(sharp, kd).status == "ok"
    hot = DistillSpec(method="kd", temperature=1000.0)
    c = target_entropy(sharp, hot)
    assert c.status == "warn" and c.value > 0.999 and c.threshold == ENTROPY_MAX
    assert "lskd" in c.message and "lower distill.temperature" in c.message
    # uniform logits: entropy exactly 1 whatever T
    assert target_entropy(torch.zeros(5, 3), kd).value == pytest.approx(1.0)
    # lskd standardises first: a scale of the logits does not change its targets
    lskd = DistillSpec(method="lskd")  # its own T = 2
    assert target_entropy(sharp, lskd).value == pytest.approx(target_entropy(sharp * 100, lskd).value, rel=1e-4)
    assert "T=2 on standardised" in target_entropy(sharp, lskd).message
    normkd = DistillSpec(method="normkd")
    assert target_entropy(sharp, normkd).status == "ok" and "t_norm" in target_entropy(sharp, normkd).message
    none = target_entropy(sharp, DistillSpec(method="ctkd"))
    assert none.status == "ok" and none.value is None and "not applicable" in none.message


def test_capacity_gap_threshold():
    default = capacity_gap(155_498, 1_382, (1, 8, 8), 10)  # the default pipeline: 112.5x
    assert default.status == "ok" and default.value == pytest.approx(112.5, abs=0.1)
    wine = capacity_gap(70_147, 71, (13,), 3)
    assert wine.status == "warn" and wine.value > CAPACITY_RATIO_MAX and "pipelines/takd.yaml" in wine.message
    tiny = capacity_gap(1_000, 100, (64,), 10)  # 10x, but smaller than a 650-parameter linear classifier
    assert tiny.status == "warn" and "linear classifier (650)" in tiny.message


def test_gradient_balance_threshold():
    assert gradient_balance(20.9, 0.9).status == "ok"
    high = gradient_balance(150.0, 0.9, trained=1e4)
    assert high.status == "warn" and high.threshold == GRAD_RATIO_MAX and "lower distill.alpha" in high.message
    assert gradient_balance(0.001, 0.01).status == "warn"
    # the trained ratio is reported, not judged (a fitted student's CE gradient vanishes)
    assert gradient_balance(20.0, 0.9, trained=1e6).status == "ok"
    assert gradient_balance(1e6, 1.0).status == "ok"  # alpha=1: no CE term


def test_kd_gain_spread_and_threshold():
    # the issue's wine case: 36 test samples, labels-only 0.972, distilled 0.667
    wine = kd_gain(0.6667, 0.9722, 36, command="autokd search hparams x.yaml")
    p = (0.6667 + 0.9722) / 2
    assert wine.threshold == pytest.approx(-2 * math.sqrt(p * (1 - p) / 36))
    assert wine.status == "warn" and "`autokd search hparams x.yaml`" in wine.message
    assert kd_gain(0.9389, 0.9333, 360).status == "ok"  # the default pipeline, seed 0
    assert kd_gain(0.9306, 0.9333, 360).status == "ok"  # within noise
    assert kd_gain_spread(0.5, 0.5, 100) == pytest.approx(0.1)
    assert kd_gain(0.90, 0.93, 10_000, spread=0.04).status == "ok"  # a known seed spread wins


# ---------------------------------------------------------------------------------- the stages


def test_sick_pipeline_warns_on_every_check(sick, capsys):
    root, spec_path, metrics = sick
    assert _status(metrics) == {c: "warn" for c in CHECKS}
    assert [c["check"] for c in metrics["health"]] == list(CHECKS)
    stored = json.loads((root / "reports" / "metrics.json").read_text())
    assert stored["health"] == metrics["health"]
    for c in stored["health"]:
        assert set(c) == {"check", "status", "value", "threshold", "message"}
    assert metrics["teacher"]["accuracy"] < metrics["baseline"]["accuracy"]
    assert metrics["kd_gain"] < 0
    assert json.loads((root / "artifacts" / "student" / "health.json").read_text())[0]["check"] == "target_entropy"


def test_kd_gain_warning_writes_a_search_spec_that_validates(sick, monkeypatch):
    from autokd.search.hparams.spec import load_search_spec

    root, spec_path, metrics = sick
    search = root / SEARCH_SPEC
    gain = next(c for c in metrics["health"] if c["check"] == "kd_gain")
    assert f"autokd search hparams {search}" in gain["message"]
    doc = yaml.safe_load(search.read_text())
    assert doc["pipeline"] == str(spec_path) and doc["root"] == str(root)
    monkeypatch.chdir(root)
    loaded = load_search_spec(search)  # both passes: the schema, then the pipeline at every extreme
    assert loaded.pipeline_file == spec_path.resolve() and loaded.root == root.resolve()
    assert set(loaded.spec.space) == {"distill.temperature", "distill.alpha", "distill.method"}


def test_healthy_pipeline_is_quiet(healthy):
    root, _, metrics = healthy
    assert _status(metrics) == {c: "ok" for c in CHECKS}, metrics["health"]
    assert not (root / SEARCH_SPEC).exists()


def test_stages_print_one_line_per_check(tmp_path, capsys):
    """The distill stage prints its three checks, evaluate all five (`[stage] health: ok|WARN check: …`)."""
    _run(tmp_path, HEALTHY.replace("epochs: 30", "epochs: 2").replace("epochs: 8", "epochs: 2"), "h2")
    out = capsys.readouterr().out
    distill_lines = [x for x in out.splitlines() if x.startswith("[distill] health: ")]
    eval_lines = [x for x in out.splitlines() if x.startswith("[evaluate] health: ")]
    assert [x.split()[3].rstrip(":") for x in distill_lines] == ["target_entropy", "capacity_gap", "gradient_balance"]
    assert [x.split()[3].rstrip(":") for x in eval_lines] == list(CHECKS)
    assert all(x.split()[2] in ("ok", "WARN") for x in distill_lines + eval_lines)


# ---------------------------------------------------------------------------------- autokd doctor


def _doctor_lines(output: str) -> dict[str, str]:
    return {line.split()[1].rstrip(":"): line.split()[0] for line in output.strip().splitlines()}


def test_doctor_before_anything_trained(tmp_path):
    spec = tmp_path / "sick.yaml"
    spec.write_text(SICK)
    res = runner.invoke(app, ["doctor", str(spec), "--root", str(tmp_path / "empty")])
    assert res.exit_code == 0, res.output
    lines = _doctor_lines(res.output)
    assert list(lines) == list(CHECKS)
    assert lines["capacity_gap"] == "WARN"
    assert {lines[c] for c in ("teacher_vs_baseline", "target_entropy", "gradient_balance", "kd_gain")} == {"skip"}
    assert f"autokd doctor {spec} --root {tmp_path / 'empty'} --train-teacher" in res.output
    assert not (tmp_path / "empty").exists()  # doctor wrote nothing


@pytest.mark.parametrize("auto", [False, True])
def test_doctor_train_teacher(tmp_path, auto):
    spec = tmp_path / "h.yaml"
    text = HEALTHY.replace("epochs: 30", "epochs: 3")
    if auto:  # the default recipe: the checks look at its distillation candidate
        text = re.sub(r"(?ms)^distill:.*?(?=^\S|\Z)", "distill: {method: auto}\n", text)
        assert "method: auto" in text
    spec.write_text(text)
    res = runner.invoke(app, ["doctor", str(spec), "--root", str(tmp_path / "r"), "--train-teacher"])
    assert res.exit_code == 0, res.output
    lines = _doctor_lines("\n".join(x for x in res.output.splitlines() if x.split()[0] in ("ok", "WARN", "skip")))
    assert lines["target_entropy"] != "skip" and lines["gradient_balance"] != "skip"
    assert lines["teacher_vs_baseline"] == lines["kd_gain"] == "skip"
    assert (tmp_path / "r" / "artifacts" / "teacher" / "model.safetensors").exists()


def test_doctor_uses_the_trained_teacher(sick):
    root, spec_path, _ = sick
    res = runner.invoke(app, ["doctor", str(spec_path), "--root", str(root)])
    assert res.exit_code == 0, res.output
    assert _doctor_lines(res.output) == {"teacher_vs_baseline": "WARN", "target_entropy": "WARN",
                                         "capacity_gap": "WARN", "gradient_balance": "WARN", "kd_gain": "skip"}
    assert "teacher validation accuracy" in res.output


def test_doctor_quiet_on_default_spec_and_healthy_teacher(healthy):
    res = runner.invoke(app, ["doctor", str(REPO / "pipelines" / "default.yaml"), "--root", str(healthy[0] / "no")])
    assert res.exit_code == 0, res.output
    assert _doctor_lines(res.output)["capacity_gap"] == "ok"
    root, spec_path, _ = healthy
    res = runner.invoke(app, ["doctor", str(spec_path), "--root", str(root)])
    assert res.exit_code == 0, res.output
    assert set(_doctor_lines(res.output).values()) == {"ok", "skip"}
    assert _doctor_lines(res.output)["kd_gain"] == "skip"


def test_doctor_bad_spec_exits_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(SICK.replace("alpha: 0.999", "alpha: 2"))
    res = runner.invoke(app, ["doctor", str(bad)])
    assert res.exit_code == 2
    assert "distill.alpha" in res.output and "Traceback" not in res.output


# ---------------------------------------------------------------------------------- slow: real cases


WINE = """
name: wine
data: {source: csv, path: data/wine.csv, options: {label_column: cultivar}, seed: 0}
teacher:
  model: {name: mlp, params: {hidden: [256, 256]}}
  train: {optimizer: adamw, lr: 0.003, weight_decay: 0.0005, schedule: cosine, epochs: 40, batch_size: 64, seed: 0}
student:
  model: {name: mlp, params: {hidden: [4]}}
  train: {optimizer: adamw, lr: 0.003, weight_decay: 0.0005, schedule: cosine, epochs: 80, batch_size: 64, seed: 0}
distill: {method: kd, temperature: 4.0, alpha: 0.9}
evaluate: {latency_runs: 5, latency_warmup: 1, throughput_batch: 32}
runtime: {device: cpu, num_threads: 1}
"""


@pytest.mark.slow
def test_wine_case_from_the_issue(tmp_path, monkeypatch):
    """scikit-learn's wine as CSV, a 70k-parameter MLP teacher, a 71-parameter student, KD T=4 λ=0.9:
    distillation loses to labels alone; the capacity gap and kd_gain checks fire, and the search
    the kd_gain check writes runs (2 trials, Optuna backend)."""
    from sklearn.datasets import load_wine

    w = load_wine()
    (tmp_path / "data").mkdir()
    with open(tmp_path / "data" / "wine.csv", "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(list(w.feature_names) + ["cultivar"])
        for row, label in zip(w.data, w.target):
            out.writerow([f"{v:g}" for v in row] + [f"class_{label}"])
    (tmp_path / "wine.yaml").write_text(WINE)
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["run", "wine.yaml"])  # root "." (see the report: a search over another root)
    assert res.exit_code == 0, res.output
    metrics = json.loads(Path("reports/metrics.json").read_text())
    assert metrics["teacher"]["params"] == 70_147 and metrics["student"]["params"] == 71
    assert metrics["kd_gain"] < 0
    assert _status(metrics) == {"teacher_vs_baseline": "ok", "target_entropy": "ok", "capacity_gap": "warn",
                                "gradient_balance": "ok", "kd_gain": "warn"}
    assert "WARN kd_gain" in res.output and "`autokd search hparams reports/search_hparams.yaml`" in res.output
    search = subprocess.run([sys.executable, "-m", "autokd", "search", "hparams", "reports/search_hparams.yaml",
                             "--trials", "2", "--backend", "optuna"], capture_output=True, text=True, timeout=600)
    assert search.returncode == 0, search.stderr[-3000:]
    assert Path("searches/wine-health/best.yaml").exists()


@pytest.mark.slow
def test_default_pipeline_is_quiet(tmp_path):
    """The default pipeline (pipelines/default.yaml, run through the library in a temporary root)."""
    spec = load_pipeline_spec(REPO / "pipelines" / "default.yaml")
    layout = Layout(tmp_path)
    prepare(spec, layout)
    train_teacher(spec, layout, progress=False)
    train_baseline(spec, layout, progress=False)
    distill(spec, layout, progress=False)
    metrics = evaluate(spec, layout, spec_path=REPO / "pipelines" / "default.yaml")
    assert _status(metrics) == {c: "ok" for c in CHECKS}, metrics["health"]
