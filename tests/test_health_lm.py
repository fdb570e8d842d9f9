"""``autokd doctor`` on language-model pipelines: capacity gap, vocabulary agreement, teacher vs labels-only."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from typer.testing import CliRunner

from autokd.cli import app
from autokd.data.text.tokenizer import train_bpe
from autokd.stages.lm_health import lm_capacity_gap, lm_teacher_vs_baseline, vocabulary
from tests.test_lm_pipeline import TINY


def _doctor(tmp_path, doc, *extra):
    (tmp_path / "lm.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return CliRunner().invoke(app, ["doctor", "lm.yaml", "--root", ".", *extra])


def test_doctor_on_an_lm_pipeline_runs_every_check_it_can(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = _doctor(tmp_path, TINY)
    assert res.exit_code == 0, res.output
    lines = res.output.strip().splitlines()
    assert lines[0].startswith("skip teacher_vs_baseline: not checked: needs the teacher")
    assert any(line.startswith("ok capacity_gap: teacher") for line in lines)
    assert any(line.startswith("ok vocabulary: teacher decoder: built at the tokenizer's") for line in lines)
    res = _doctor(tmp_path, TINY, "--train-teacher")
    assert (tmp_path / "artifacts" / "teacher" / "model.safetensors").exists()
    from autokd.stages.lm import run_lm_stage

    run_lm_stage("train_baseline", "lm.yaml", ".", progress=False)
    res = _doctor(tmp_path, TINY)
    line = next(x for x in res.output.splitlines() if "teacher_vs_baseline" in x)
    assert line.startswith(("ok teacher_vs_baseline: teacher validation perplexity",
                            "WARN teacher_vs_baseline: teacher validation perplexity"))
    t = json.loads((tmp_path / "artifacts" / "teacher" / "manifest.json").read_text())["metrics"]["val_loss"]
    b = json.loads((tmp_path / "artifacts" / "baseline" / "manifest.json").read_text())["metrics"]["val_loss"]
    assert line.startswith("WARN") == (t > b)


def test_checks_warn_on_a_gap_a_teacher_worse_than_labels_and_another_tokenizer(tmp_path):
    assert lm_capacity_gap(151_000, 1_000).status == "warn" and lm_capacity_gap(10_000, 1_000).status == "ok"
    assert lm_teacher_vs_baseline(4.0, 3.5).status == "warn"
    assert lm_teacher_vs_baseline(3.0, 3.5).status == "ok"
    transformers = pytest.importorskip("transformers")
    ours = train_bpe(["alpha beta gamma delta " * 50], 280)
    other = train_bpe(["zeta eta theta iota " * 50], 280)
    cfg = transformers.GPT2Config(vocab_size=300, n_positions=16, n_embd=8, n_layer=1, n_head=2)
    torch.manual_seed(0)
    transformers.GPT2LMHeadModel(cfg).save_pretrained(tmp_path / "gpt2", safe_serialization=True)
    ok = vocabulary({"teacher": ("hf_causal_lm", {"path": "gpt2"})}, ours, tmp_path)
    size = ours.get_vocab_size(with_added_tokens=True)  # the merges a short text allows (< 280)
    assert ok.status == "ok" and f"padded: logits cut to {size}" in ok.message
    other.save(str(tmp_path / "gpt2" / "tokenizer.json"))
    bad = vocabulary({"teacher": ("hf_causal_lm", {"path": "gpt2"})}, ours, tmp_path)
    assert bad.status == "warn" and "tokenizer.json differs from the pipeline's" in bad.message
    ours.save(str(tmp_path / "gpt2" / "tokenizer.json"))
    assert "its tokenizer.json is the pipeline's" in vocabulary(
        {"teacher": ("hf_causal_lm", {"path": "gpt2"})}, ours, tmp_path).message
    small = transformers.GPT2Config(vocab_size=100, n_positions=16, n_embd=8, n_layer=1, n_head=2)
    transformers.GPT2LMHeadModel(small).save_pretrained(tmp_path / "tiny", safe_serialization=True)
    assert f"100 vocabulary rows for the tokenizer's {size}" in vocabulary(
        {"student": ("hf_causal_lm", {"path": "tiny"})}, ours, tmp_path).message
