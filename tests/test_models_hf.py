"""Causal LMs from a local Hugging Face folder: a tiny GPT-2 the test builds and saves, offline."""

from __future__ import annotations

import pytest
import torch
import yaml

transformers = pytest.importorskip("transformers")

from autokd.models import ModelBuildError, build_model  # noqa: E402

VOCAB, CONTEXT = 300, 32


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_gpt2")
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=VOCAB, n_positions=CONTEXT, n_embd=16, n_layer=2, n_head=2,
                                  bos_token_id=0, eos_token_id=0)
    transformers.GPT2LMHeadModel(cfg).save_pretrained(folder)  # model.safetensors + config.json
    return folder


def test_loads_offline_with_the_lm_interface(hf_folder):
    model = build_model("hf_causal_lm", {"path": str(hf_folder)}, (CONTEXT,), VOCAB).eval()
    idx = torch.randint(0, VOCAB, (2, 10), generator=torch.Generator().manual_seed(1))
    logits, feats = model(idx, return_features=True)
    assert logits.shape == (2, 10, VOCAB) and model.num_layers == 2
    assert set(feats) == {"embed", "block0", "block1", "layers"} and feats["layers"].shape == (2, 3, 10, 16)
    out = model.generate(idx[:, :4], 6)
    seq = idx[:, :4]
    for _ in range(6):  # the cached generation equals full recomputation
        seq = torch.cat([seq, model(seq)[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(out, seq)


def test_vocabulary_context_and_pickles_are_refused(hf_folder, tmp_path):
    with pytest.raises(ModelBuildError, match="vocabulary has 300 tokens.*tokenizer 1024"):
        build_model("hf_causal_lm", {"path": str(hf_folder)}, (CONTEXT,), 1024)
    with pytest.raises(ModelBuildError, match="exceeds its 32 positions"):
        build_model("hf_causal_lm", {"path": str(hf_folder)}, (64,), VOCAB)
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text((hf_folder / "config.json").read_text())
    (pickled / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ModelBuildError, match="no model.safetensors"):
        build_model("hf_causal_lm", {"path": str(pickled)}, (CONTEXT,), VOCAB)


def test_a_padded_vocabulary_is_cut_to_the_tokenizers(hf_folder, tmp_path):
    """The folder's 300 rows with a 260-token tokenizer (a padded embedding, as Qwen2.5's): logits,
    features and generation cover the 260 tokens only, equal to the full model's first 260 columns;
    the spec validates and the trained artifact's manifest names the cut."""
    from autokd.stages.lm_validate import load_lm_spec

    full = build_model("hf_causal_lm", {"path": str(hf_folder)}, (CONTEXT,), VOCAB).eval()
    cut = build_model("hf_causal_lm", {"path": str(hf_folder)}, (CONTEXT,), 260).eval()
    idx = torch.randint(0, 260, (2, 10), generator=torch.Generator().manual_seed(1))
    logits, feats = cut(idx, return_features=True)
    assert logits.shape == (2, 10, 260) and torch.equal(logits, full(idx)[..., :260])
    out = cut.generate(idx[:, :4], 12, temperature=2.0, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 16) and int(out.max()) < 260
    assert "300 vocabulary rows, the tokenizer 260 tokens" in cut.vocab_note and full.vocab_note is None
    spec = {"task": "lm", "data": {"tokenizer": {"vocab_size": 260}, "context": CONTEXT},
            "teacher": {"model": {"name": "hf_causal_lm", "params": {"path": str(hf_folder)}}}}
    (tmp_path / "lm.yaml").write_text(yaml.safe_dump(spec))
    assert load_lm_spec(tmp_path / "lm.yaml").teacher.model.name == "hf_causal_lm"

    from autokd.lineage.manifest import read_manifest
    from autokd.stages.layout import Layout
    from autokd.stages.recipe import save_role
    from autokd.train.trainer import TrainResult

    class Data:  # what save_role reads of the prepared data
        input_shape, num_classes = (CONTEXT,), 260

    role = load_lm_spec(tmp_path / "lm.yaml").teacher
    save_role(Layout(tmp_path), "teacher", cut, role, Data(), TrainResult(history=[], epochs_run=0,
              resumed_from=None, seconds=0.0), [], {})
    assert "logits cut to 260" in read_manifest(tmp_path / "artifacts" / "teacher")["vocabulary"]


def test_spec_names_both_vocabularies(hf_folder, tmp_path):
    from autokd.spec.errors import SpecError
    from autokd.stages.lm_validate import load_lm_spec

    spec = {"task": "lm", "data": {"tokenizer": {"vocab_size": 512}, "context": CONTEXT},
            "teacher": {"model": {"name": "hf_causal_lm", "params": {"path": str(hf_folder)}}}}
    path = tmp_path / "lm.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(SpecError, match=r"teacher.model.params.path: expected a model whose vocabulary is "
                                        r"data.tokenizer.vocab_size \(512\).*300 tokens"):
        load_lm_spec(path)


def _hf_teacher_spec(hf_folder, teacher_train, method: str) -> dict:
    """A tiny LM pipeline with the folder as teacher (its tokenizer, trained here on pydoc text)."""
    from autokd.data.text.corpus import pydoc_documents
    from autokd.data.text.tokenizer import train_bpe

    train_bpe(pydoc_documents(4096)[0][:8], VOCAB).save(str(hf_folder / "tokenizer.json"))
    return {"task": "lm",
            "data": {"max_documents": 12, "holdout_every": 4, "context": CONTEXT,
                     "tokenizer": {"kind": "file", "path": str(hf_folder)}},
            "teacher": {"model": {"name": "hf_causal_lm", "params": {"path": str(hf_folder)}}, "train": teacher_train},
            "student": {"model": {"name": "decoder", "params": {"layers": 1, "width": 16, "heads": 2}},
                        "train": {"epochs": 1, "batch_size": 16}},
            "distill": {"method": method, "top_k": 8},
            "evaluate": {"prompts": 4, "prompt_tokens": 8, "new_tokens": 8, "speed": False},
            "runtime": {"device": "cpu", "num_threads": 1}}


@pytest.mark.slow
def test_distill_a_decoder_from_an_hf_teacher(hf_folder, tmp_path, monkeypatch):
    """The pipeline with an HF teacher: its folder's tokenizer, fine-tuned, cached, distilled."""
    from autokd.stages.lm import LM_STAGES, run_lm_stage

    spec = _hf_teacher_spec(hf_folder, {"epochs": 1, "batch_size": 16}, "jsd")
    (tmp_path / "lm.yaml").write_text(yaml.safe_dump(spec))
    monkeypatch.chdir(tmp_path)
    for stage in LM_STAGES:
        out = run_lm_stage(stage, "lm.yaml", "run", progress=False)
    assert out["teacher"]["perplexity"] < VOCAB and out["student"]["perplexity"] > 1


def test_a_pretrained_teacher_is_used_as_it_is(hf_folder, tmp_path, monkeypatch):
    """``teacher.train: null``: the HF folder's weights are the teacher's, unchanged (evaluated,
    saved, cached, never trained); the student distils from them. A decoder teacher with
    ``train: null`` (random weights) is a spec error at ``teacher.train``."""
    from safetensors.torch import load_file
    from typer.testing import CliRunner

    from autokd.cli import app
    from autokd.stages.lm import run_lm_stage

    spec = _hf_teacher_spec(hf_folder, None, "fkl")
    (tmp_path / "lm.yaml").write_text(yaml.safe_dump(spec))
    monkeypatch.chdir(tmp_path)
    for stage in ("prepare", "train_teacher", "cache_teacher"):
        run_lm_stage(stage, "lm.yaml", "run", progress=False)
    original = load_file(str(hf_folder / "model.safetensors"))
    saved = load_file("run/artifacts/teacher/model.safetensors")
    matched = 0
    for name, tensor in original.items():
        key = next(k for k in saved if k == name or k.endswith("." + name))
        assert torch.equal(saved[key], tensor), name
        matched += 1
    assert matched == len(original) > 0
    import json

    manifest = json.loads((tmp_path / "run/artifacts/teacher/manifest.json").read_text())
    assert manifest["metrics"]["train_epochs"] == 0 and manifest["metrics"]["val_loss"] > 0
    assert json.loads((tmp_path / "run/artifacts/teacher/history.json").read_text()) == []
    assert (tmp_path / "run/dvclive/teacher/metrics.json").exists() and (tmp_path / "run/checkpoints/teacher").is_dir()
    assert (tmp_path / "run/artifacts/teacher_outputs").is_dir()

    spec["teacher"] = {"model": {"name": "decoder", "params": {"layers": 1, "width": 16, "heads": 2}}, "train": None}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(spec))
    res = CliRunner().invoke(app, ["validate", "bad.yaml"])
    assert res.exit_code == 2 and "teacher.train" in res.output and "hf_causal_lm" in res.output

    # `train: {epochs: 0}` is the other spelling of `train: null`
    from autokd.stages.lm_validate import validate_lm_pipeline

    spec = _hf_teacher_spec(hf_folder, None, "fkl")
    spec["teacher"]["train"] = {"epochs": 0, "lr": 0.1}
    assert validate_lm_pipeline(spec, root=tmp_path).teacher.train is None
