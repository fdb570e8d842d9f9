"""The pipeline stages through the library (fast), and through real `dvc repro` (slow)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from autokd.cli import app
from autokd.lineage import lineage_tree, read_manifest
from autokd.stages import load_pipeline_spec
from autokd.spec.document import apply_overrides, load_yaml
from autokd.stages import validate_pipeline
from autokd.stages import Layout, build_distill_objective, distill, evaluate, prepare, train_baseline, train_teacher
from autokd.data.prepare import load_prepared
from autokd.data.batches import BatchIterator
from autokd.models import build_model
from autokd.train.teacher_cache import TeacherCacheMismatch, load_teacher_outputs, CACHE_NAME

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()

METRIC_KEYS = ("accuracy", "nll", "ece", "params", "latency_ms", "throughput")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The five stages of a tiny spec, run once through the library."""
    from tests.conftest import TINY_SPEC

    root = tmp_path_factory.mktemp("run")
    spec_path = root / "tiny.yaml"
    spec_path.write_text(TINY_SPEC)
    spec = load_pipeline_spec(spec_path, root=root)
    layout = Layout(root)
    prepare(spec, layout)
    train_teacher(spec, layout, progress=False)
    train_baseline(spec, layout, progress=False)
    distill(spec, layout, progress=False)
    metrics = evaluate(spec, layout)
    return spec, layout, metrics


def test_metrics_file_has_every_key(tiny_run):
    _, layout, metrics = tiny_run
    on_disk = json.loads((layout.reports / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(metrics))
    for role in ("teacher", "baseline", "student"):
        for key in METRIC_KEYS:
            assert key in on_disk[role], (role, key)
        assert 0.0 <= on_disk[role]["accuracy"] <= 1.0
    assert 0.0 <= on_disk["student"]["agreement"] <= 1.0
    assert on_disk["kd_gain"] == pytest.approx(on_disk["student"]["accuracy"] - on_disk["baseline"]["accuracy"])
    assert on_disk["compression"] == pytest.approx(on_disk["teacher"]["params"] / on_disk["student"]["params"])
    assert (layout.reports / "plots" / "confusion_student.png").stat().st_size > 1000
    assert (layout.reports / "plots" / "training_curves.png").stat().st_size > 1000
    rows = json.loads((layout.reports / "plots" / "confusion_student.json").read_text())
    assert len(rows) == on_disk["test_samples"]


def test_teacher_outputs_cache_matches_teacher(tiny_run):
    _, layout, _ = tiny_run
    from autokd.models.artifact import load_model

    data = load_prepared(layout.data)
    cache = load_teacher_outputs(layout.teacher_outputs / CACHE_NAME)
    teacher = load_model(layout.model_dir("teacher"))
    with torch.no_grad():
        assert torch.allclose(cache.logits, teacher(data.train.x), atol=1e-5)
    assert cache.data_sha256 == data.sha256


def test_distill_reads_cache_and_never_runs_teacher(tiny_run):
    spec, layout, _ = tiny_run
    data = load_prepared(layout.data)
    student = build_model(spec.student.model.name, spec.student.model.params, data.input_shape, data.num_classes)
    obj = build_distill_objective(spec, student, data, layout, torch.device("cpu"))
    assert obj.cache is not None and obj.teacher is None
    for batch in BatchIterator(data.train.x, data.train.y, 64, seed=0):
        loss, _, _ = obj(student, batch)
        assert torch.isfinite(loss)
    assert obj.teacher_calls == 0


def test_augmentation_runs_teacher_on_each_batch(tiny_run):
    spec, layout, _ = tiny_run
    data = load_prepared(layout.data)
    aug = spec.model_copy(deep=True)
    aug.student.train.augment.enabled = True
    aug.student.train.augment.crop_padding = 1
    student = build_model(aug.student.model.name, aug.student.model.params, data.input_shape, data.num_classes)
    obj = build_distill_objective(aug, student, data, layout, torch.device("cpu"))
    assert obj.cache is None and obj.teacher is not None
    batches = BatchIterator(data.train.x, data.train.y, 64, seed=0, augment=aug.student.train.augment)
    n = 0
    for batch in batches:
        assert batch.augmented
        obj(student, batch)
        n += 1
    assert obj.teacher_calls == n


def test_cache_from_other_data_is_refused(tiny_run):
    _, layout, _ = tiny_run
    cache = load_teacher_outputs(layout.teacher_outputs / CACHE_NAME)
    with pytest.raises(TeacherCacheMismatch, match="re-run train_teacher"):
        cache.check("0" * 64, cache.logits.shape[0])
    with pytest.raises(TeacherCacheMismatch, match="rows"):
        cache.check(cache.data_sha256, cache.logits.shape[0] + 1)


def test_lineage_chain(tiny_run):
    _, layout, _ = tiny_run
    tree = lineage_tree(layout.model_dir("student"), layout.root)
    kinds = [p["kind"] for p in tree["parents"]]
    assert tree["kind"] == "student" and kinds == ["dataset", "teacher"]
    teacher = tree["parents"][1]
    assert teacher["parents"][0]["kind"] == "dataset" and not teacher["stale"]
    m = read_manifest(layout.model_dir("teacher"))
    for key in ("sha256", "parents", "spec", "git", "packages", "metrics"):
        assert key in m
    assert m["packages"]["torch"].startswith(torch.__version__.split("+")[0])
    res = runner.invoke(app, ["lineage", "show", str(layout.model_dir("student")), "--root", str(layout.root)])
    assert res.exit_code == 0
    assert "student: artifacts/student" in res.output and "<- teacher: artifacts/teacher" in res.output
    assert "<- dataset: artifacts/data" in res.output


def test_prepare_is_deterministic_and_stratified(tmp_path, tiny_run):
    spec, layout, _ = tiny_run
    again = prepare(spec, Layout(tmp_path))
    first = load_prepared(layout.data)
    assert again.sha256 == first.sha256
    counts = first.meta["class_counts"]
    for split in ("train", "val", "test"):
        assert max(counts[split]) - min(counts[split]) <= 2


def test_cli_stage_reports_bad_spec_with_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("distill: {method: kd, alpha: 1.5}\n")
    res = runner.invoke(app, ["stage", "prepare", str(bad), "--root", str(tmp_path)])
    assert res.exit_code == 2 and "distill.alpha" in res.output
    assert not (tmp_path / "artifacts").exists()  # nothing ran


# ----------------------------------------------------------------------------- real DVC


def _copy_repo(dst: Path) -> Path:
    """Copy the tracked files of this repo (as a fresh clone would have them) and commit."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split()
    for f in files:
        src = REPO / f
        if not src.is_file() or f.startswith(("artifacts/", "reports/", "dvclive/", "checkpoints/")) or f == "dvc.lock":
            continue
        (dst / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst / f)
    return dst


def _sh(cmd, cwd, env=None):
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, timeout=900)
    assert res.returncode == 0, f"{cmd} failed:\n{res.stdout}\n{res.stderr}"
    return res.stdout + res.stderr


def _json(cmd, cwd, env=None):
    """JSON from a command's stdout (DVC writes warnings, e.g. about other pipelines' metrics, to stderr)."""
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, timeout=900)
    assert res.returncode == 0, f"{cmd} failed:\n{res.stdout}\n{res.stderr}"
    return json.loads(res.stdout)


def _ran(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}


@pytest.mark.slow
def test_dvc_repro_caches_and_reruns_only_what_changed(tmp_path, tiny_spec_text):
    work = _copy_repo(tmp_path / "repo")
    (work / "pipelines" / "default.yaml").write_text(tiny_spec_text)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    _sh(["git", "init", "-q"], work)
    _sh(["git", "add", "-A"], work)
    _sh(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"], work)

    out = _sh(["dvc", "repro"], work, env)
    assert _ran(out) == {"prepare", "train_teacher", "train_baseline", "distill", "evaluate", "export"}
    assert (work / "artifacts" / "export" / "model.onnx").exists()  # the exported, checked student
    metrics = _json(["dvc", "metrics", "show", "--json"], work, env)
    flat = json.dumps(metrics)
    for key in ("teacher", "baseline", "student", "kd_gain", "compression", "agreement"):
        assert f'"{key}"' in flat
    assert _ran(_sh(["dvc", "repro"], work, env)) == set()  # nothing runs the second time

    spec = yaml.safe_load((work / "pipelines" / "default.yaml").read_text())
    spec["distill"]["alpha"] = 0.3  # (the default method, auto, takes no temperature: λ instead)
    (work / "pipelines" / "default.yaml").write_text(yaml.safe_dump(spec))
    assert _ran(_sh(["dvc", "repro"], work, env)) == {"distill", "evaluate", "export"}

    # dvc exp run -S on the committed pipeline, then dvc exp show lists it with metrics
    _sh(["git", "add", "-A"], work)
    _sh(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "alpha=0.3"], work)
    out = _sh(["dvc", "exp", "run", "-n", "t2", "-S", "pipelines/default.yaml:distill.alpha=0.7"], work, env)
    assert _ran(out) == {"distill", "evaluate", "export"}
    shown = _json(["dvc", "exp", "show", "--json"], work, env)
    text = json.dumps(shown)
    assert '"t2"' in text and "kd_gain" in text


def test_stage_interrupted_then_rerun_resumes_to_the_same_model(tmp_path, tiny_run, monkeypatch, capsys):
    """Ctrl-C inside train_teacher, then the same stage again: it resumes from the checkpoint
    and ends with exactly the model an uninterrupted run produced."""
    import autokd.stages as stages
    from autokd.lineage import file_sha256

    spec, ref_layout, _ = tiny_run
    layout = Layout(tmp_path)
    prepare(spec, layout)
    calls = {"n": 0}
    original = stages.LiveLogger.log

    def interrupt_after_first_epoch(self, rec, *a):
        original(self, rec, *a)
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(stages.LiveLogger, "log", interrupt_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        train_teacher(spec, layout, progress=True)
    assert "run again to resume" in capsys.readouterr().err
    monkeypatch.setattr(stages.LiveLogger, "log", original)
    train_teacher(spec, layout, progress=True)
    assert "resuming from checkpoint after epoch 1/3" in capsys.readouterr().out
    assert file_sha256(layout.model_dir("teacher") / "model.safetensors") == file_sha256(
        ref_layout.model_dir("teacher") / "model.safetensors"
    )
