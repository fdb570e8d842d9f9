"""``autokd export --format hf``: LM students as transformers folders, loaded back offline and checked."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from typer.testing import CliRunner

from autokd.cli import app
from autokd.models.artifact import load_model
from autokd.stages.layout import Layout
from autokd.stages.lm import run_lm_stage
from tests.test_lm_chat import _examples
from tests.test_lm_pipeline import TINY

transformers = pytest.importorskip("transformers")


def _project(tmp_path, monkeypatch, student: dict, data: dict):
    monkeypatch.chdir(tmp_path)
    doc = {**TINY, "data": data, "student": {**TINY["student"], "model": student}}
    (tmp_path / "lm.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    for stage in ("prepare", "train_baseline"):
        run_lm_stage(stage, "lm.yaml", ".", progress=False)
    return Layout(tmp_path)


def _export(out, *extra):
    res = CliRunner().invoke(app, ["export", "artifacts/baseline", "--format", "hf", "--out", str(out), *extra])
    return res


def test_decoder_student_exports_as_gpt2_with_the_same_logits_and_chat_template(tmp_path, monkeypatch):
    _examples(tmp_path / "chat.jsonl")
    layout = _project(tmp_path, monkeypatch, TINY["student"]["model"],
                      {"source": "files", "path": "chat.jsonl", "format": "chat", "holdout_every": 6,
                       "context": 48, "tokenizer": {"vocab_size": 300}})
    res = _export(tmp_path / "hf")
    assert res.exit_code == 0, res.output
    assert "argmax agreement 100.00%" in res.output and "tokenizer round trip ok" in res.output
    model = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf", local_files_only=True)
    assert type(model).__name__ == "GPT2LMHeadModel"
    ours = load_model(layout.model_dir("baseline") / "model.safetensors")
    x = torch.randint(0, 300, (3, 48), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=x).logits, ours(x), atol=1e-5, rtol=1e-5)
    tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf", local_files_only=True)
    messages = [{"role": "user", "content": "Spell 3 in words."}]
    assert tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == \
        "<|user|>\nSpell 3 in words.\n<|assistant|>\n"  # the plain template the data was rendered with
    record = json.loads((tmp_path / "hf" / "export.json").read_text())
    assert record["check"]["passed"] and record["check"]["max_abs_diff"] <= 1e-4
    assert "GPT2LMHeadModel" in (tmp_path / "hf" / "README.md").read_text()
    assert json.loads((tmp_path / "hf" / "manifest.json").read_text())["kind"] == "export"
    assert _export(tmp_path / "again").exit_code == 0  # the same bytes on a rerun
    for name in ("model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json", "README.md"):
        assert (tmp_path / "hf" / name).read_bytes() == (tmp_path / "again" / name).read_bytes(), name


def test_hf_student_with_a_padded_vocabulary_exports_as_itself(tmp_path, monkeypatch):
    cfg = transformers.GPT2Config(vocab_size=320, n_positions=32, n_embd=16, n_layer=1, n_head=2)
    torch.manual_seed(0)
    transformers.GPT2LMHeadModel(cfg).save_pretrained(tmp_path / "gpt2", safe_serialization=True)
    _project(tmp_path, monkeypatch, {"name": "hf_causal_lm", "params": {"path": "gpt2"}}, TINY["data"])
    res = _export(tmp_path / "hf")
    assert res.exit_code == 0, res.output
    record = json.loads((tmp_path / "hf" / "export.json").read_text())
    assert record["architecture"].startswith("GPT2LMHeadModel") and "320 vocabulary rows" in record["vocabulary"]
    loaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf", local_files_only=True)
    assert loaded.config.vocab_size == 320  # saved as it is; the card says rows 300… are no token


def test_classifier_with_format_hf_is_refused(project, tmp_path):
    res = CliRunner().invoke(app, ["export", str(project.student), "--format", "hf", "--out", str(tmp_path / "o"),
                                   "--root", str(project.root)])
    assert res.exit_code == 2 and "is a classifier" in res.output and "Traceback" not in res.output
