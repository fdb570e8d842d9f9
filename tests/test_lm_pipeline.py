"""The language-model pipeline (``task: lm``): spec validation, the DVC file, and a tiny end-to-end run."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from autokd.cli import app
from autokd.spec.errors import SpecError
from autokd.stages.dvcgen import pipeline_dvc, pipeline_dvc_text
from autokd.stages.lm_task import CACHE_KEYS
from autokd.stages.lm_validate import load_lm_spec

REPO = Path(__file__).resolve().parents[1]

TINY = {
    "task": "lm",
    "data": {"max_documents": 12, "holdout_every": 4, "context": 32, "tokenizer": {"vocab_size": 300}},
    "teacher": {"model": {"name": "decoder", "params": {"layers": 2, "width": 32, "heads": 2}},
                "train": {"epochs": 2, "batch_size": 16, "lr": 3e-3}},
    "student": {"model": {"name": "decoder", "params": {"layers": 1, "width": 16, "heads": 2}},
                "train": {"epochs": 2, "batch_size": 16, "lr": 3e-3}},
    "distill": {"method": "fkl", "alpha": 0.5, "top_k": 8},
    "evaluate": {"prompts": 6, "prompt_tokens": 8, "new_tokens": 8, "speed": False},
    "runtime": {"device": "cpu", "num_threads": 1},
}


def _write(tmp_path, doc) -> Path:
    path = tmp_path / "lm.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_shipped_lm_spec_validates():
    spec = load_lm_spec(REPO / "pipelines" / "lm.yaml")
    assert spec.distill.method == "fkl" and spec.data.tokenizer.vocab_size == 1024


def test_cache_teacher_reads_only_its_keys():
    """cache_teacher lists distill.top_k/temperature/sequence, not the whole distill section, so a
    change of distill.alpha leaves the teacher's top-k cache cached (the slow repro test runs it)."""
    from autokd.stages.lm_task import TASK as LM

    raw = yaml.safe_load((REPO / "pipelines" / "lm.yaml").read_text())
    stages = pipeline_dvc(LM, load_lm_spec(REPO / "pipelines" / "lm.yaml"), "pipelines/lm.yaml", "runs/lm", raw,
                          "../..")
    assert stages["cache_teacher"]["params"] == [{"pipelines/lm.yaml": list(CACHE_KEYS)}]
    assert "distill" not in stages["train_baseline_equal"]["params"][0]["pipelines/lm.yaml"]
    assert "distill" in stages["distill"]["params"][0]["pipelines/lm.yaml"]
    # a key the spec file lacks falls back to its whole section: never stale, only coarser
    del raw["distill"]["temperature"]
    stages = pipeline_dvc(LM, load_lm_spec(REPO / "pipelines" / "lm.yaml"), "pipelines/lm.yaml", "runs/lm", raw,
                          "../..")
    assert stages["cache_teacher"]["params"] == [{"pipelines/lm.yaml": ["distill"]}]


def test_spec_errors_name_key_and_line(tmp_path):
    bad = {**TINY, "distill": {"method": "kd", "temperature": 2.0}}
    with pytest.raises(SpecError, match="distill.method: expected a token-level divergence"):
        load_lm_spec(_write(tmp_path, bad))
    bad = {**TINY, "distill": {"method": "jsd", "params": {"beta": 2}}}
    with pytest.raises(SpecError, match=r"distill.params.beta"):
        load_lm_spec(_write(tmp_path, bad))
    bad = {**TINY, "data": {"source": "files", "path": "no/such/folder"}}
    with pytest.raises(SpecError, match="data.path: expected an existing file or folder"):
        load_lm_spec(_write(tmp_path, bad))
    rep = {**TINY, "distill": {"method": "fkl", "representation": {"method": "fkl"}}}
    with pytest.raises(SpecError, match="representation.method: expected a representation-transfer method"):
        load_lm_spec(_write(tmp_path, rep))
    result = CliRunner().invoke(app, ["validate", str(_write(tmp_path, {**TINY, "student": {"model": {"name": "mlp"}}}))])
    assert result.exit_code == 2 and "student.model.name: expected a language-model family" in result.output
    assert "Traceback" not in result.output


def test_temperature_reaches_the_cache_and_the_loss(tmp_path):
    from autokd.stages.lm_validate import effective_lm_distill
    from autokd.stages.validate import method_params

    spec = load_lm_spec(_write(tmp_path, {**TINY, "distill": {"method": "jsd", "temperature": 2.0,
                                                                "params": {"beta": 0.1}}}))
    assert method_params(spec.distill) == {"beta": 0.1, "temperature": 2.0}
    assert effective_lm_distill(spec.distill)["params"] == {"temperature": 2.0, "chunk_tokens": 0, "beta": 0.1}


@pytest.mark.slow
def test_dvc_repro_of_the_lm_pipeline(tmp_path):
    from tests.test_pipeline import _copy_repo, _ran, _sh

    work = _copy_repo(tmp_path / "repo")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    doc = {**TINY, "distill": {**TINY["distill"], "representation": None, "temperature": None, "sequence": None,
                               "teacher_outputs": "cache"}}
    (work / "pipelines" / "lm.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    from autokd.stages.lm_task import TASK as LM  # the DVC file as `autokd dvc` writes it for this spec

    (work / "pipelines" / "lm" / "dvc.yaml").write_text(
        pipeline_dvc_text(LM, LM.validate(doc, check_paths=False), "pipelines/lm.yaml", "runs/lm", doc, "../.."))
    _sh(["git", "init", "-q"], work)
    _sh(["git", "add", "-A"], work)
    _sh(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"], work)
    out = _sh(["dvc", "repro", "pipelines/lm/dvc.yaml"], work, env)
    assert {s.split(":")[-1] for s in _ran(out)} == {"prepare", "train_teacher", "cache_teacher", "train_baseline",
                                                      "train_baseline_equal", "distill", "evaluate"}
    metrics = json.loads((work / "runs" / "lm" / "reports" / "metrics.json").read_text())
    for role in ("teacher", "baseline", "baseline_equal", "student"):
        assert metrics[role]["perplexity"] > 1 and metrics[role]["bits_per_byte"] > 0
    assert metrics["budget"]["equal_compute_epochs"] > TINY["student"]["train"]["epochs"]
    assert metrics["cache_bytes_per_token"] == 8 * 2 + 8 * 2 + 2
    assert _ran(_sh(["dvc", "repro", "pipelines/lm/dvc.yaml"], work, env)) == set()  # all cached
    doc["distill"]["alpha"] = 0.9  # only distill (and evaluate after it) reruns; the equal-compute
    (work / "pipelines" / "lm.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))  # budget reads distill
    ran = {s.split(":")[-1] for s in _ran(_sh(["dvc", "repro", "pipelines/lm/dvc.yaml"], work, env))}
    assert {"distill", "evaluate"} <= ran and "train_teacher" not in ran and "train_baseline" not in ran
    assert "cache_teacher" not in ran and "train_baseline_equal" not in ran  # neither reads distill.alpha
    doc["distill"]["top_k"] = 4  # k is what the cache depends on: it (and what reads it) reruns
    (work / "pipelines" / "lm.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    ran = {s.split(":")[-1] for s in _ran(_sh(["dvc", "repro", "pipelines/lm/dvc.yaml"], work, env))}
    assert {"cache_teacher", "distill", "evaluate"} <= ran and "train_teacher" not in ran
    manifest = json.loads((work / "runs" / "lm" / "artifacts" / "student" / "manifest.json").read_text())
    assert {p["kind"] for p in manifest["parents"]} == {"dataset", "teacher", "teacher_outputs"}
