"""Chat data: templates, completion-only targets, packing with per-example attention."""

from __future__ import annotations

import json

import pytest
import torch

from autokd.data.readers.base import DataReadError
from autokd.data.text.chat import (PLAIN_TEMPLATE, ChatTemplate, assistant_spans, encode_conversations,
                                   resolve_template)
from autokd.data.text.packing import IGNORE, chat_windows
from autokd.data.text.prepare import load_prepared_text, prepare_text
from autokd.data.text.tokenizer import EOT, train_bpe
from autokd.models.registry import build_model
from autokd.spec.lm import TextDataSpec

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")

CONVERSATION = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+2?"},
                {"role": "assistant", "content": "Four."}, {"role": "user", "content": "And 3+3?"},
                {"role": "assistant", "content": "Six."}]


def _tok(texts=("What is two plus two? Four. Six. Be brief. ",) * 20):
    return train_bpe(list(texts), 300)


def _loss_text(tok, ids, flags):
    """The loss tokens' text (the end-of-text id shown as EOT)."""
    eot = tok.token_to_id(EOT)
    return "".join("EOT" if i == eot else tok.decode([i], skip_special_tokens=False) for i, f in zip(ids, flags) if f)


def test_plain_template_marks_each_assistant_turn_and_the_closing_end_of_text():
    tok = _tok()
    eot = tok.token_to_id(EOT)
    plain = ChatTemplate("plain", PLAIN_TEMPLATE)
    text, spans = assistant_spans(plain, CONVERSATION)
    assert text == ("<|system|>\nBe brief.\n<|user|>\nWhat is 2+2?\n<|assistant|>\nFour.\n"
                    "<|user|>\nAnd 3+3?\n<|assistant|>\nSix.\n")
    assert [text[a:b] for a, b in spans] == ["Four.\n", "Six.\n"]  # the turn and its end-of-turn newline
    [(ids, flags)] = encode_conversations(tok, plain, [CONVERSATION], eot, "completion")
    assert ids[-1] == eot and flags[-1]  # the last turn is the assistant's: it learns to stop
    assert _loss_text(tok, ids, flags) == "Four.\nSix.\nEOT"
    [(_, every)] = encode_conversations(tok, plain, [CONVERSATION], eot, "all")
    assert all(every)
    [(_, user_last)] = encode_conversations(tok, plain, [CONVERSATION[:4]], eot, "completion")
    assert not user_last[-1]  # a conversation ending on the user: its end-of-text is no completion


def test_auto_takes_the_tokenizer_folders_template_with_its_special_tokens(tmp_path):
    tok = _tok()
    tok.add_special_tokens(["<|im_start|>", "<|im_end|>"])
    folder = tmp_path / "tok"
    folder.mkdir()
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({"chat_template": CHATML, "eos_token": EOT}))
    template = resolve_template("auto", str(folder))
    assert template.source.endswith("tokenizer_config.json")
    [(ids, flags)] = encode_conversations(tok, template, [CONVERSATION], tok.token_to_id(EOT), "completion")
    im_end = tok.token_to_id("<|im_end|>")
    assert ids.count(im_end) == 5  # the special tokens are single ids, not their characters
    assert _loss_text(tok, ids, flags) == "Four.<|im_end|>\nSix.<|im_end|>\nEOT"
    (folder / "chat_template.jinja").write_text(PLAIN_TEMPLATE)  # transformers 5 writes the template here
    assert resolve_template("auto", str(folder)).source.endswith("chat_template.jinja")
    assert resolve_template("auto", None).source == "plain"  # a trained BPE has no template


def test_a_template_that_rewrites_earlier_turns_is_refused_naming_the_turn():
    rewrite = ChatTemplate("odd.jinja", "{% for m in messages %}{{ m['content'] }}{% if loop.last %}!{% endif %}"
                                        "{% endfor %}")
    with pytest.raises(DataReadError, match="turn 2 is not a prefix"):
        assistant_spans(rewrite, CONVERSATION)


def test_unpacked_and_packed_windows_targets_and_segments():
    a = ([5, 6, 7, 0], [False, True, True, True])  # prompt 5, completion 6 7, end-of-text 0
    b = ([8, 9, 0], [False, True, True])
    c = ([1, 2, 3, 4, 5, 6], [False] * 6)  # no completion: dropped
    long = ([1, 2, 3, 4, 5, 6, 7, 8], [False, False, False, False, False, False, True, True])  # cut to 6: no loss
    w, t, seg, counts = chat_windows([a, b, c, long], context=5, pad=0, pack=False)
    assert w.tolist() == [[5, 6, 7, 0, 0, 0], [8, 9, 0, 0, 0, 0]]
    assert t.tolist() == [[6, 7, 0, IGNORE, IGNORE], [9, 0, IGNORE, IGNORE, IGNORE]]
    assert seg is None and counts == {"examples": 4, "truncated": 1, "dropped": 2, "windows": 2, "loss_tokens": 5}
    w, t, seg, counts = chat_windows([a, b, a], context=7, pad=0, pack=True)
    assert w.tolist() == [[5, 6, 7, 0, 8, 9, 0, 0], [5, 6, 7, 0, 0, 0, 0, 0]]  # b fits after a; a again does not
    assert seg.tolist() == [[1, 1, 1, 1, 2, 2, 2], [1, 1, 1, 1, 0, 0, 0]]
    # a's end-of-text (input 3) does not predict b's first token; b's prompt is no target either
    assert t.tolist() == [[6, 7, 0, IGNORE, 9, 0, IGNORE], [6, 7, 0, IGNORE, IGNORE, IGNORE, IGNORE]]
    assert counts["loss_tokens"] == 8


def _packed_pair(vocab: int):
    g = torch.Generator().manual_seed(0)
    first, second = torch.randint(1, vocab, (5,), generator=g), torch.randint(1, vocab, (7,), generator=g)
    packed = torch.cat([first, second, torch.zeros(4, dtype=torch.long)])[None]  # context 16, padding last
    segments = torch.tensor([[1] * 5 + [2] * 7 + [0] * 4])
    return first, second, packed, segments


@pytest.mark.parametrize("probs", [False, True], ids=["sdpa", "explicit-probs"])
def test_no_token_of_a_packed_decoder_window_attends_across_examples(probs):
    """Each example's logits in the packed window equal its logits alone, and changing the first
    example's tokens changes nothing of the second's (the causal mask alone would leak them)."""
    torch.manual_seed(0)
    model = build_model("decoder", {"layers": 2, "width": 32, "heads": 4}, (16,), 50).eval()
    for block in model.blocks:
        block.attn.keep_probs = probs
    first, second, packed, segments = _packed_pair(50)
    with torch.no_grad():
        out = model(packed, segments=segments)
        alone = model(second[None])
        other = packed.clone()
        other[0, :5] = (other[0, :5] + 1) % 50
        moved = model(other, segments=segments)
        plain = model(packed)
    torch.testing.assert_close(out[0, :5], model(first[None])[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[0, 5:12], alone[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(moved[0, 5:12], out[0, 5:12], atol=1e-6, rtol=1e-6)
    assert (plain[0, 5:12] - alone[0]).abs().max() > 1e-3  # without segments the second sees the first


def test_no_token_of_a_packed_hf_window_attends_across_examples(tmp_path):
    transformers = pytest.importorskip("transformers")
    cfg = transformers.GPT2Config(vocab_size=50, n_positions=16, n_embd=16, n_layer=2, n_head=2)
    torch.manual_seed(0)
    transformers.GPT2LMHeadModel(cfg).save_pretrained(tmp_path / "gpt2", safe_serialization=True)
    model = build_model("hf_causal_lm", {"path": str(tmp_path / "gpt2")}, (16,), 50).eval()
    first, second, packed, segments = _packed_pair(50)
    with torch.no_grad():
        out = model(packed, segments=segments)
        torch.testing.assert_close(out[0, :5], model(first[None])[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out[0, 5:12], model(second[None])[0], atol=1e-5, rtol=1e-5)


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _rows(n=30):
    out = []
    for i in range(n):
        if i % 2:
            out.append({"prompt": f"Add {i} and {i}.", "completion": f"{i} plus {i} is {2 * i}."})
        else:
            out.append({"messages": [{"role": "user", "content": f"Double {i}?"},
                                     {"role": "assistant", "content": f"It is {2 * i}."}]})
    return out


@pytest.mark.parametrize("packing", [False, True])
def test_prepare_chat_jsonl_round_trip(tmp_path, packing):
    data = _jsonl(tmp_path / "chat.jsonl", _rows())
    spec = TextDataSpec(source="files", path=str(data), format="chat", packing=packing, context=64,
                        holdout_every=5, tokenizer={"vocab_size": 300, "min_frequency": 1})
    prep = prepare_text(spec, tmp_path / "out")
    again = load_prepared_text(tmp_path / "out")
    assert again.sha256 == prep.sha256 and again.meta["chat"]["packing"] is packing
    split = again.train
    assert torch.equal(split.y, prep.train.y) and (split.segments is not None) is packing
    tok = again.tokenizer()
    first = split.y[0][split.y[0] != IGNORE].tolist()
    assert tok.decode(first).startswith("It is 0.")  # the first example's completion, not its prompt
    assert again.meta["chat"]["examples"]["train"]["examples"] == 18
    if packing:
        assert len(split) < 18 and int(split.segments.max()) > 1  # several examples per window
    else:
        assert len(split) == 18
    prepare_text(spec, tmp_path / "twice")
    assert (tmp_path / "twice" / "train.safetensors").read_bytes() == (tmp_path / "out" / "train.safetensors").read_bytes()


def test_chat_errors_name_the_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "a", "completion": "b"}) + "\n" + json.dumps({"text": "x"}) + "\n")
    spec = TextDataSpec(source="files", path=str(bad), format="chat")
    with pytest.raises(DataReadError, match=r"bad.jsonl:2: a chat example needs 'prompt' and 'completion'"):
        prepare_text(spec, tmp_path / "out")
    bad.write_text(json.dumps({"messages": [{"role": "robot", "content": "x"}]}) + "\n")
    with pytest.raises(DataReadError, match=r"bad.jsonl:1: message role 'robot'"):
        prepare_text(spec, tmp_path / "out")
    txt = tmp_path / "a.txt"
    txt.write_text("hello")
    with pytest.raises(DataReadError, match="chat data is .jsonl"):
        prepare_text(TextDataSpec(source="files", path=str(txt), format="chat"), tmp_path / "out")


def test_chat_only_keys_are_refused_for_text_and_left_out_of_its_dump():
    with pytest.raises(ValueError, match="for data.format 'chat'"):
        TextDataSpec(packing=True)
    assert "format" not in TextDataSpec().model_dump()  # the text spec's manifests keep their bytes
    assert TextDataSpec(format="chat").model_dump()["loss_on"] == "completion"
