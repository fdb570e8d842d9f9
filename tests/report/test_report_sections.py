"""Section builders on synthetic inputs (fast): content, 'not available' notes, escaping,
self-containment, determinism, and the CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autokd.cli import app
from autokd.report import SECTION_KEYS, build_report, write_report
from autokd.report.searches import arch_section, hparams_section, trials_from_csv
from autokd.report.sections import (confusion_matrix, confusion_section, curves_section, methods_section,
                                    metrics_section)

EVIL = '<script>alert("x")</script>&'


def _write(root: Path, rel: str, data) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def _metrics(acc_student: float = 0.9) -> dict:
    row = {"accuracy": 0.5, "nll": 1.0, "ece": 0.1, "params": 1234, "flops": 5678, "latency_ms": 0.25,
           "throughput": 1000.0}
    return {"teacher": dict(row, accuracy=0.99), "baseline": dict(row, agreement=0.8),
            "student": dict(row, accuracy=acc_student, agreement=0.85), "kd_gain": 0.01, "compression": 10.0,
            "test_samples": 360}


def _trials() -> list[dict]:
    out = []
    for i, (t, a, m, acc) in enumerate([(2.0, 0.5, "kd", 0.7), (8.0, 0.9, "dkd", 0.9), (4.0, 0.1, "kd", None)]):
        out.append({"trial": f"t{i}", "number": i, "status": "completed" if acc is not None else "failed",
                    "reason": "" if acc is not None else "boom", "params": {"distill.temperature": t,
                                                                          "distill.alpha": a, "distill.method": m},
                    "final": {} if acc is None else {"val_accuracy": acc, "test_accuracy": acc - 0.05,
                                                     "params": 100 * (i + 1)},
                    "epochs": 3, "max_epochs": 3, "seconds": 1.5})
    return out


def test_empty_root_every_section_says_what_to_run(tmp_path):
    report = build_report(tmp_path)
    assert [s.key for s in report.sections] == list(SECTION_KEYS) and report.available == []
    for s in report.sections:
        assert "not available" in s.body, s.key
    runs = {s.key: s.body for s in report.sections}
    assert "<code>dvc repro</code>" in runs["metrics"] and "pipelines/compare/dvc.yaml" in runs["methods"]
    assert "autokd search hparams" in runs["hparams"] and "autokd search arch" in runs["arch"]
    assert report.html.count('<section id="') == len(SECTION_KEYS)


def test_metrics_section_values_and_manifest(tmp_path):
    _write(tmp_path, "reports/metrics.json", _metrics(0.9123))
    _write(tmp_path, "artifacts/student/manifest.json", {
        "sha256": "ab" * 32, "git": {"commit": "0123456789abcdef", "dirty": True},
        "spec": {"student": {"model": {"name": "cnn", "params": {"widths": [4, 8]}}, "train": {"epochs": 40}}}})
    s = metrics_section(tmp_path)
    assert s.available
    student = re.search(r"<tr><td>student</td>(.*?)</tr>", s.body).group(1)
    assert "0.9123" in student and "1,234" in student and "abababababab" in student
    assert "0123456789+dirty" in student and "cnn" in student and ">40<" in student
    assert "kd_gain 0.01" in s.body


def test_text_is_escaped(tmp_path):
    metrics = _metrics()
    metrics[EVIL] = {"accuracy": 0.1}
    _write(tmp_path, "reports/metrics.json", metrics)
    trials = _trials()[2:]  # a failed trial: no accuracy, so no figure to draw (keeps the test fast)
    trials[0]["params"]["distill.method"] = EVIL
    _write(tmp_path, "searches/x/trials.json", trials)
    html = build_report(tmp_path).html
    assert "<script>alert" not in html and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;" in html
    assert html.count("<script>") == 1  # the page's own sorting script only


def test_unreadable_input_is_named_and_the_rest_renders(tmp_path):
    _write(tmp_path, "reports/metrics.json", "{not json")
    _write(tmp_path, "reports/methods.json", {"seeds": [0], "methods": {"baseline": {"kind": "baseline",
                                                                                   "accuracy_mean": 0.9}}})
    report = build_report(tmp_path)
    metrics = report.sections[0]
    assert not metrics.available and "reports/metrics.json: not readable JSON" in metrics.body
    assert "methods" in report.available


def test_curves_from_dvclive_tsv(tmp_path):
    assert not curves_section(tmp_path).available
    for role in ("teacher", "student"):
        _write(tmp_path, f"dvclive/{role}/plots/metrics/train/loss.tsv", "step\tloss\n0\t2.0\n1\t1.0\n")
        _write(tmp_path, f"dvclive/{role}/plots/metrics/val/accuracy.tsv", "step\taccuracy\n0\t0.5\n1\t0.7\n")
    s = curves_section(tmp_path)
    assert s.available and s.body.count('src="data:image/png;base64,') == 1
    assert "train/loss, val/accuracy" in s.body and "student, teacher" in s.body


def test_confusion_matrix_counts(tmp_path):
    rows = [{"actual": a, "predicted": p} for a, p in [("1", "1"), ("1", "2"), ("2", "2"), ("10", "10"), ("2", "2")]]
    labels, counts = confusion_matrix(rows)
    assert labels == ["1", "2", "10"]  # numeric labels in numeric order
    assert counts == [[1, 1, 0], [0, 2, 0], [0, 0, 1]]
    _write(tmp_path, "reports/plots/confusion_student.json", rows)
    _write(tmp_path, "runs/takd/reports/plots/confusion_ta.json", rows[:2])
    s = confusion_section(tmp_path)
    assert s.available and "5 samples, accuracy 0.8000" in s.body and "runs/takd/reports/plots/confusion_ta.json" in s.body


def test_methods_table(tmp_path):
    _write(tmp_path, "reports/methods.json", {
        "pipeline": "p.yaml", "seeds": [0, 1], "epochs": 5, "teacher_accuracy": 0.99, "methods": {
            "baseline": {"kind": "baseline", "accuracy_mean": 0.9, "accuracy_std": 0.01, "kd_gain_mean": 0.0,
                         "kd_gain_std": 0.0, "seconds_per_epoch_mean": 0.1},
            "kd": {"kind": "logit", "accuracy_mean": 0.92, "accuracy_std": 0.02, "kd_gain_mean": 0.02,
                   "kd_gain_std": 0.01, "seconds_per_epoch_mean": 0.12}}})
    s = methods_section(tmp_path)
    assert s.available and "0.9200 ± 0.0200" in s.body and "+2.00 ± 1.00" in s.body
    assert "(mean ± std, 2 seeds)" in s.body and 'class="data sortable"' in s.body


def test_hparam_search_table_plots_and_pareto(tmp_path):
    _write(tmp_path, "searches/hp/trials.json", _trials())
    _write(tmp_path, "searches/hp/best.yaml", "search: hp\ntrial: t1\nobjectives: {student.accuracy: max}\n"
                                             "metrics: {val_accuracy: 0.9, test_accuracy: 0.85}\n")
    _write(tmp_path, "searches/hp/pareto.json", {"objectives": {"student.accuracy": "max", "student.params": "min"},
                                                 "front": [{"trial": "t0", "student.accuracy": 0.7,
                                                            "student.params": 100, "patch": {}},
                                                           {"trial": "t1", "student.accuracy": 0.9,
                                                            "student.params": 200, "patch": {}}]})
    s = hparams_section(tmp_path)
    assert s.available and 'id="trials-hp"' in s.body and 'id="pareto-hp"' in s.body
    head = re.search(r'<table class="data sortable trials" id="trials-hp">.*?</thead>', s.body, re.S).group(0)
    assert [h for h in re.findall(r">([^<>]+)</th>", head)][:5] == ["trial", "status", "T", "λ", "method"]
    assert 'data-v="8.0"' in s.body and "best; Pareto front" in s.body and "boom" in s.body
    assert "3 trials (2 completed, 1 failed)" in s.body and "best trial t1" in s.body
    assert s.body.count("data:image/png;base64,") == 3  # scatter, parallel coordinates, Pareto


def test_trials_csv_fallback(tmp_path):
    rows = trials_from_csv([{"trial": "a", "status": "completed", "param:distill.alpha": "0.5",
                             "param:distill.method": "kd", "val_accuracy": "0.8", "epochs": "3"}])
    assert rows[0]["params"] == {"distill.alpha": 0.5, "distill.method": "kd"} and rows[0]["final"]["val_accuracy"] == 0.8
    _write(tmp_path, "searches/c/trials.csv", "trial,status,param:distill.alpha,val_accuracy\na,completed,0.5,0.8\n")
    assert hparams_section(tmp_path).available


def test_arch_ranking_and_validation(tmp_path):
    cands = [{"rank": i + 1, "key": f"c{i}", "params": 100 * (i + 1), "flops": 10, "latency_ms": 0.1,
              "combined": 1 - i / 10, "ranks": {"naswot": i + 1}, "proxies": {"naswot": 5.0 - i}} for i in range(4)]
    _write(tmp_path, "searches/a/ranking.json", {"family": "cnn", "top_k": 2, "shortlist": ["c0", "c1"],
                                                 "proxies": [{"name": "naswot"}], "search": {"algorithm": "exhaustive"},
                                                 "combine": {"method": "rank", "proxies": ["naswot"]},
                                                 "candidates": cands})
    s = arch_section(tmp_path)
    assert s.available and 'id="ranking-a"' in s.body and "not available: a validation" in s.body
    _write(tmp_path, "searches/a/validation.json", {
        "epochs": 1, "method": "kd", "band": {"lo": 1, "hi": 300, "n": 2},
        "correlations": {"naswot": {"all": {"tau": 0.5, "rho": 0.6, "n": 4}, "band": {"tau": None, "rho": None, "n": 2}}},
        "candidates": [{"key": c["key"], "accuracy": 0.5 + i / 10, "in_band": i < 2, "scores": {"naswot": 5.0 - i}}
                       for i, c in enumerate(cands)]})
    s = arch_section(tmp_path)
    assert 'id="validation-a"' in s.body and "not available" not in s.body and s.body.count("data:image/png") == 2


def test_page_is_self_contained_and_deterministic(tmp_path):
    _write(tmp_path, "reports/metrics.json", _metrics())
    _write(tmp_path, "searches/hp/trials.json", _trials()[2:])
    _write(tmp_path, "dvclive/student/plots/metrics/train/loss.tsv", "step\tloss\n0\t2.0\n1\t1.0\n")
    a = build_report(tmp_path).html
    assert a == build_report(tmp_path).html
    # nothing to fetch: no http(s) URL in any src/href, no external stylesheet or script
    assert not re.search(r'(src|href)="(?!data:|#)', a)
    assert "http://" not in a.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in a
    assert "Content-Security-Policy" in a and "default-src &#x27;none&#x27;" in a


def test_cli_writes_the_report_and_refuses_a_bad_root(tmp_path):
    _write(tmp_path, "reports/metrics.json", _metrics())
    res = CliRunner().invoke(app, ["report", "--root", str(tmp_path)])
    assert res.exit_code == 0, res.output
    out = tmp_path / "reports" / "report.html"
    assert out.exists() and f"wrote {out}" in res.output and "1 of 7 sections available" in res.output
    assert "not available: curves" in res.output
    res = CliRunner().invoke(app, ["report", "--root", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "error:" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(app, ["report", "--root", str(tmp_path), "--out", str(tmp_path)])
    assert res.exit_code == 2 and "is a folder" in res.output


def test_write_report_default_path(tmp_path):
    path, report = write_report(tmp_path)
    assert path == tmp_path / "reports" / "report.html" and path.read_bytes() == report.html.encode("utf-8")


@pytest.mark.parametrize("key", SECTION_KEYS)
def test_each_section_is_a_visible_block(tmp_path, key):
    html = build_report(tmp_path).html
    assert re.search(rf'<section id="{key}" class="report-section missing" data-available="false">\s*<h2>', html)
    assert f'<a href="#{key}" class="missing">' in html
