"""The decoder-only LM family: causality, KV-cache generation, tied weights, features, spec checks."""

from __future__ import annotations

import pytest
import torch

from autokd.models import MODELS, build_model, count_params
from autokd.models.decoder import DecoderParams
from autokd.models.features import forward_features

VOCAB, CONTEXT = 50, 16


def _model(**kw) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("decoder", {"layers": 2, "width": 32, "heads": 4, **kw}, (CONTEXT,), VOCAB).eval()


def test_registered_as_a_language_model():
    assert MODELS["decoder"].task == "lm"
    assert MODELS["mlp"].task == "classify"


def test_logits_shape_and_causality():
    model = _model()
    idx = torch.randint(0, VOCAB, (3, 10), generator=torch.Generator().manual_seed(1))
    logits = model(idx)
    assert logits.shape == (3, 10, VOCAB)
    changed = idx.clone()
    changed[:, 6:] = (changed[:, 6:] + 1) % VOCAB  # the future changes ...
    torch.testing.assert_close(model(changed)[:, :6], logits[:, :6])  # ... the past does not
    assert not torch.allclose(model(changed)[:, 6:], logits[:, 6:])


def test_explicit_attention_probabilities_match_the_fused_kernel():
    model = _model()
    idx = torch.randint(0, VOCAB, (2, 12), generator=torch.Generator().manual_seed(2))
    fused = model(idx)
    # a hook on the probabilities switches that block to explicit attention for the call
    _, feats = forward_features(model, idx, ["blocks.1.attn.probs", "blocks.0.attn.q"])
    torch.testing.assert_close(model(idx), fused, rtol=1e-5, atol=1e-5)
    probs = feats["blocks.1.attn.probs"]
    assert probs.shape == (2, 4, 12, 12)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2, 4, 12))
    assert torch.all(probs.triu(diagonal=1) == 0)  # no attention to later positions
    assert feats["blocks.0.attn.q"].shape == (2, 4, 12, 8)


def test_kv_cache_generation_equals_recomputing_the_whole_sequence():
    model = _model()
    prompt = torch.randint(0, VOCAB, (2, 4), generator=torch.Generator().manual_seed(3))
    out = model.generate(prompt, 8)
    assert out.shape == (2, 12) and torch.equal(out[:, :4], prompt)
    seq = prompt
    for _ in range(8):  # greedy without a cache, one full forward per token
        seq = torch.cat([seq, model(seq)[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(out, seq)


def test_sampling_is_seeded_and_respects_top_k():
    model = _model()
    prompt = torch.zeros(4, 1, dtype=torch.long)
    a = model.generate(prompt, 6, temperature=1.0, top_k=3, generator=torch.Generator().manual_seed(5))
    b = model.generate(prompt, 6, temperature=1.0, top_k=3, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    one = model.generate(prompt, 6, temperature=1.0, top_k=1, generator=torch.Generator().manual_seed(6))
    assert torch.equal(one, model.generate(prompt, 6))  # top-1 sampling is greedy


def test_generation_stops_at_the_context_and_long_inputs_are_refused():
    model = _model()
    out = model.generate(torch.zeros(1, 10, dtype=torch.long), 50)
    assert out.shape[1] == CONTEXT + 1  # the last token is predicted from a full context
    with pytest.raises(ValueError, match="exceed the context"):
        model(torch.zeros(1, CONTEXT + 1, dtype=torch.long))


def test_tied_embeddings_share_one_tensor_and_param_count():
    tied, untied = _model(tied_embeddings=True), _model()
    assert tied.head.weight is tied.tok.weight
    assert count_params(untied) - count_params(tied) == VOCAB * 32
    d, h = 32, 128  # per block: qkv, out, 2 LayerNorms, MLP
    block = (d * 3 * d + 3 * d) + (d * d + d) + 2 * 2 * d + (d * h + h) + (h * d + d)
    assert count_params(tied) == VOCAB * d + CONTEXT * d + 2 * block + 2 * d


def test_features_by_alias():
    model = _model()
    _, feats = model(torch.zeros(2, 5, dtype=torch.long), return_features=True)
    assert list(feats) == ["embed", "block0", "block1", "layers"]
    assert all(feats[k].shape == (2, 5, 32) for k in ("embed", "block0", "block1"))
    assert feats["layers"].shape == (2, 3, 5, 32) and torch.equal(feats["layers"][:, 2], feats["block1"])


def test_heads_must_divide_width():
    with pytest.raises(ValueError, match="must divide width"):
        DecoderParams(width=30, heads=4)


def test_classification_pipeline_refuses_a_language_model(tmp_path):
    from autokd.spec.errors import SpecError
    from autokd.stages.validate import load_pipeline_spec

    path = tmp_path / "spec.yaml"
    path.write_text("student: {model: {name: decoder}}\n")
    with pytest.raises(SpecError, match="a classifier family"):
        load_pipeline_spec(path)


def test_tied_model_saves_once_and_loads_tied(tmp_path):
    from safetensors import safe_open

    from autokd.models.artifact import load_model, save_model

    model = _model(tied_embeddings=True)
    params = {"layers": 2, "width": 32, "heads": 4, "tied_embeddings": True}
    save_model(tmp_path / "m.safetensors", model, "decoder", params, (CONTEXT,), VOCAB)
    with safe_open(str(tmp_path / "m.safetensors"), framework="pt") as fh:
        keys = set(fh.keys())
    assert "tok.weight" in keys and "head.weight" not in keys  # stored once
    back = load_model(tmp_path / "m.safetensors")
    assert back.head.weight is back.tok.weight
    idx = torch.randint(0, VOCAB, (2, 7), generator=torch.Generator().manual_seed(9))
    assert torch.equal(back(idx), model(idx))
