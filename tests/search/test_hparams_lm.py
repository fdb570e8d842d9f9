"""`autokd search hparams` over a language-model pipeline (``task: lm``): the shipped space
validates, a trial is the LM ``distill`` stage, a trial with another k or T reads its own
top-k cache (made once, the pipeline's untouched), and a whole search runs on Optuna."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from autokd.search.hparams.run import prepare_context, run_search
from autokd.search.hparams.spec import load_search_spec
from autokd.search.hparams.trial import LocalReporter, run_trial
from autokd.spec.errors import SpecError

from hparams_support import REPO, write_search
from lm_support import TINY_LM



def _search(pipeline: Path, root: Path, **changes) -> dict:
    doc = {
        "name": "tiny_lm",
        "pipeline": str(pipeline),
        "root": str(root),
        "objectives": {"student.perplexity": "min"},
        "space": {
            "distill.alpha": {"type": "uniform", "low": 0.2, "high": 0.9},
            "distill.top_k": {"type": "choice", "values": [8, 16]},
            "distill.method": {"type": "choice", "values": ["fkl", "jsd"],
                               "conditional": {"jsd": {"distill.params.beta": {"type": "uniform", "low": 0.1,
                                                                                "high": 0.9}}}},
        },
        "budget": {"trials": 3, "max_concurrent": 1, "resources": {"cpu": 1}},
        "scheduler": {"type": "fifo"},
        "sampler": {"type": "random", "seed": 3},
        "record_experiments": False,
    }
    doc.update(changes)
    return doc


@pytest.fixture(scope="module")
def lm_ctx(tmp_path_factory):
    root = tmp_path_factory.mktemp("lmroot")
    pipeline = root / "lm.yaml"
    pipeline.write_text(yaml.safe_dump(TINY_LM, sort_keys=False))
    loaded = load_search_spec(write_search(root, _search(pipeline, root)), base_dir=root)
    assert loaded.task == "lm"
    lines: list[str] = []
    ctx = prepare_context(loaded, log=lines.append)  # prepare, train_teacher, cache_teacher once
    assert any("running prepare once" in ln for ln in lines) and any("train_teacher once" in ln for ln in lines)
    return ctx


def test_shipped_lm_space_validates():
    loaded = load_search_spec(REPO / "search_spaces" / "lm.yaml", base_dir=REPO)
    assert loaded.task == "lm" and loaded.spec.objectives == {"student.perplexity": "min"}
    assert "distill.top_k" in loaded.spec.space and "student.model" in loaded.spec.space


def test_lm_search_spec_errors_name_the_key(tmp_path):
    pipeline = tmp_path / "lm.yaml"
    pipeline.write_text(yaml.safe_dump(TINY_LM, sort_keys=False))
    bad = _search(pipeline, tmp_path, objectives={"student.latency_ms": "min"})
    with pytest.raises(SpecError) as err:
        load_search_spec(write_search(tmp_path, bad), base_dir=tmp_path)
    assert "objectives.student.latency_ms" in err.value.render() and "student.perplexity" in err.value.render()
    bad = _search(pipeline, tmp_path)
    bad["space"]["distill.features"] = {"type": "choice", "values": [["block{}"]]}
    with pytest.raises(SpecError, match=r"space.distill.features.*representation"):
        load_search_spec(write_search(tmp_path, bad), base_dir=tmp_path)
    bad = _search(pipeline, tmp_path)
    bad["space"]["distill.method"]["values"] = ["fkl", "kd"]  # kd is a classification loss
    with pytest.raises(SpecError, match=r"space.distill.method.*'kd'"):
        load_search_spec(write_search(tmp_path, bad), base_dir=tmp_path)


def test_lm_trial_is_the_distill_stage(lm_ctx, tmp_path):
    """Same initial weights, same batches: the trial's validation history and test perplexity
    are the LM distill + evaluate stages' own, to the last bit."""
    import shutil

    from autokd.spec.document import apply_overrides
    from autokd.stages.layout import Layout
    from autokd.stages.lm import distill
    from autokd.stages.lm_validate import validate_lm_pipeline

    params = {"distill.alpha": 0.7, "distill.top_k": 8, "distill.method": "fkl"}
    rep = LocalReporter(tmp_path / "ckpt")
    final = run_trial(params, lm_ctx, rep)
    assert [r["epoch"] for r in rep.reports] == [1, 2]
    assert all(r["teacher_calls"] == 0 and r["teacher_mode"] == "cache" for r in rep.reports)
    assert final["val_perplexity"] == pytest.approx(2.718281828 ** final["val_loss"])
    root = tmp_path / "stage_root"
    for d in ("data", "teacher", "teacher_outputs"):
        shutil.copytree(Path(lm_ctx.root) / "artifacts" / d, root / "artifacts" / d)
    spec = validate_lm_pipeline(apply_overrides(lm_ctx.base, lm_ctx.space.to_overrides(params)), root=root)
    layout = Layout(root)
    distill(spec, layout, progress=False)
    history = json.loads((layout.model_dir("student") / "history.json").read_text())
    assert [h["val_loss"] for h in history] == [r["val_loss"] for r in rep.reports]
    from autokd.data.text.prepare import load_prepared_text
    from autokd.evaluate.lm import lm_metrics
    from autokd.models.artifact import MODEL_FILE, load_model

    data = load_prepared_text(layout.data)
    stage = lm_metrics(load_model(layout.model_dir("student") / MODEL_FILE), None, data.test,
                       bytes_per_token=data.meta["bytes_per_token"]["test"], speed=False, prompts=2)
    assert stage["perplexity"] == final["test_perplexity"] and stage["bits_per_byte"] == final["test_bits_per_byte"]


def test_other_k_and_temperature_get_their_own_cache_once(lm_ctx, tmp_path):
    from autokd.lineage.manifest import read_manifest
    from autokd.stages.layout import Layout

    layout = Layout(Path(lm_ctx.root))
    own = (layout.teacher_outputs / "train_topk.safetensors").read_bytes()
    own_manifest = read_manifest(layout.teacher_outputs)
    ctx = type(lm_ctx)(**{**lm_ctx.__dict__, "base": {**lm_ctx.base, "distill": {**lm_ctx.base["distill"],
                                                                                  "temperature": 2.0}}})
    params = {"distill.alpha": 0.5, "distill.top_k": 16, "distill.method": "fkl"}
    run_trial(params, ctx, LocalReporter(tmp_path / "a"))
    variants = sorted((layout.root / "artifacts" / "teacher_outputs_search").glob("*/manifest.json"))
    assert len(variants) == 1
    m = json.loads(variants[0].read_text())
    assert m["spec"] == {"top_k": 16, "temperature": 2.0} and m["kind"] == "teacher_outputs"
    before = variants[0].parent.joinpath("train_topk.safetensors").stat().st_mtime_ns
    run_trial(params, ctx, LocalReporter(tmp_path / "b"))  # the same key: read, not made again
    assert variants[0].parent.joinpath("train_topk.safetensors").stat().st_mtime_ns == before
    assert read_manifest(layout.teacher_outputs) == own_manifest  # the pipeline's DVC output is untouched
    assert (layout.teacher_outputs / "train_topk.safetensors").read_bytes() == own


def test_lm_search_runs_on_optuna_and_writes_best(lm_ctx, tmp_path):
    root = Path(lm_ctx.root)
    spec_file = write_search(tmp_path, _search(root / "lm.yaml", root), name="lm_search.yaml")
    lines: list[str] = []
    outcome = run_search(spec_file, backend="optuna", out_dir=tmp_path / "out", base_dir=tmp_path,
                         log=lines.append, live=False)
    assert outcome.counts() == {"completed": 3}
    assert outcome.best is not None and outcome.best.final["val_perplexity"] == min(
        r.final["val_perplexity"] for r in outcome.records)
    best = yaml.safe_load((tmp_path / "out" / "best.yaml").read_text())
    assert best["metrics"]["test_perplexity"] > 1.0 and "distill.alpha" in best["patch"]
    header = (tmp_path / "out" / "best.yaml").read_text().splitlines()[0]
    assert "validation perplexity" in header and "test perplexity" in header
    assert f"`dvc repro {root / 'lm'}/dvc.yaml` then retrains" in (tmp_path / "out" / "best.yaml").read_text()
    rows = (tmp_path / "out" / "trials.csv").read_text().splitlines()
    assert "val_perplexity" in rows[0] and "test_bits_per_byte" in rows[0] and len(rows) == 4
    assert any("best: trial" in ln and "validation perplexity" in ln for ln in lines)


@pytest.mark.slow
def test_lm_search_on_ray_through_the_cli_records_dvc_experiments(tmp_path):
    """`autokd search hparams` (Ray Tune + Optuna) over an LM pipeline in a git + DVC repository:
    every completed trial becomes a DVC experiment holding its patched spec and its test
    perplexity under the LM evaluate stage's keys."""
    import os
    import subprocess
    import sys

    from typer.testing import CliRunner

    from autokd.cli import app

    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    work = tmp_path / "repo"
    (work / "pipelines").mkdir(parents=True)
    (work / "pipelines" / "lm.yaml").write_text(yaml.safe_dump(TINY_LM, sort_keys=False))
    (work / ".dvc").mkdir()
    (work / ".dvc" / "config").write_text("[core]\n    analytics = false\n    check_update = false\n")
    (work / ".gitignore").write_text("/runs/\n/searches/\n")
    from autokd.stages.dvcgen import pipeline_dvc_text
    from autokd.stages.lm_task import TASK as LM

    (work / "pipelines" / "lm").mkdir()  # the LM pipeline's DVC file: it declares runs/lm/reports/metrics.json
    (work / "pipelines" / "lm" / "dvc.yaml").write_text(pipeline_dvc_text(
        LM, LM.validate(TINY_LM, check_paths=False), "pipelines/lm.yaml", "runs/lm", TINY_LM, "../.."))
    search = _search(Path("pipelines/lm.yaml"), Path("runs/lm"), record_experiments=True,
                     budget={"trials": 2, "max_concurrent": 2, "resources": {"cpu": 1}})
    write_search(work, search, name="lm_search.yaml")
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "-c", "user.name=t", "-c", "user.email=t@t",
                                                              "commit", "-qm", "init"]):
        subprocess.run(cmd, cwd=work, check=True, env=env, capture_output=True)
    cwd = os.getcwd()
    os.chdir(work)
    try:
        result = CliRunner().invoke(app, ["search", "hparams", "lm_search.yaml"])
    finally:
        os.chdir(cwd)
    assert result.exit_code == 0, result.output
    assert "validation perplexity" in result.output
    shown = subprocess.run(["dvc", "exp", "show", "--json"], cwd=work, env=env, capture_output=True, text=True,
                           check=True).stdout
    exps = [e for rev in json.loads(shown) for e in (rev.get("experiments") or [])]
    names = sorted(e["name"] for e in exps)
    assert names == ["tiny_lm-t000", "tiny_lm-t001"]
    for e in exps:
        data = e["revs"][0]["data"]
        metrics = data["metrics"]["runs/lm/reports/metrics.json"]["data"]["student"]
        assert metrics["perplexity"] > 1.0 and set(metrics) == {"perplexity", "nll", "bits_per_byte", "params"}
