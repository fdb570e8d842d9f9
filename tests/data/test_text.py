"""Language-model text data: corpus reading and splitting, byte-level BPE, windows, prepare."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from autokd.data.readers.base import DataReadError
from autokd.data.text.corpus import file_documents, load_corpus, split_documents
from autokd.data.text.packing import pack_windows
from autokd.data.text.prepare import load_prepared_text, prepare_text
from autokd.data.text.tokenizer import EOT, train_bpe
from autokd.spec.lm import TextDataSpec


def _files_hash(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_split_by_document_position():
    docs = [f"d{i}" for i in range(25)]
    s = split_documents(docs, 10)
    assert s["val"] == ["d9", "d19"] and s["test"] == ["d8", "d18"]
    assert len(s["train"]) == 21 and not set(s["train"]) & set(s["val"] + s["test"])


def test_pack_windows_predict_every_token_once():
    stream = np.arange(23)
    w = pack_windows(stream, 5)
    assert w.shape == (4, 6)
    assert all(w[i, -1] == w[i + 1, 0] for i in range(3))  # consecutive windows share one token
    targets = w[:, 1:].ravel()
    assert list(targets) == list(range(1, 21))  # each predicted once; the short tail dropped


def test_embedded_corpus_prepare_is_deterministic_and_round_trips(tmp_path):
    spec = TextDataSpec(tokenizer={"vocab_size": 300}, context=32, max_documents=60)
    a = prepare_text(spec, tmp_path / "a")
    b = prepare_text(spec, tmp_path / "b")
    assert _files_hash(tmp_path / "a") == _files_hash(tmp_path / "b")  # same bytes, tokenizer included
    meta = a.meta
    assert meta["vocab_size"] == 300 and meta["context"] == 32
    assert meta["corpus"]["source"] == "pydoc_topics" and meta["corpus"]["python"]
    assert len(meta["corpus"]["text_sha256"]) == 64
    assert all(a.windows[s].shape[1] == 33 and len(a.windows[s]) > 0 for s in ("train", "val", "test"))
    assert 1.2 < meta["bytes_per_token"]["train"] < 4.0  # merges compress; bytes alone would be 1.0
    # byte-level BPE decodes exactly
    corpus = load_corpus(spec)
    tok = a.tokenizer()
    doc = corpus.documents["val"][0]
    assert tok.decode(tok.encode(doc).ids) == doc
    loaded = load_prepared_text(tmp_path / "a")
    assert loaded.meta == meta and all((loaded.windows[s] == a.windows[s]).all() for s in a.windows)
    # a modified window is caught
    from safetensors.torch import load_file, save_file

    arr = load_file(str(tmp_path / "b" / "val.safetensors"))
    arr["windows"][0, 0] += 1
    save_file(arr, str(tmp_path / "b" / "val.safetensors"))
    with pytest.raises(DataReadError, match="do not match"):
        load_prepared_text(tmp_path / "b")


def _write_folder(root):
    d = root / "texts"
    (d / "sub").mkdir(parents=True)
    (d / "a.txt").write_text("alpha document about tokens. " * 40)
    (d / "sub" / "b.md").write_text("# beta\n\nmarkdown words and more words. " * 40)
    lines = [json.dumps({"text": f"line {i}: the quick brown fox jumps over the lazy dog. " * 8, "id": i})
             for i in range(12)]
    (d / "c.jsonl").write_text("\n".join(lines) + "\n")
    (d / "ignored.csv").write_text("x,y\n1,2\n")
    return d


def test_user_folder_of_txt_md_jsonl(tmp_path):
    d = _write_folder(tmp_path)
    docs = file_documents(d)
    assert len(docs) == 14  # a.txt, the 12 jsonl lines (c.jsonl sorts before sub/), sub/b.md
    assert docs[0].startswith("alpha") and docs[1].startswith("line 0") and docs[-1].startswith("# beta")
    spec = TextDataSpec(source="files", path="texts", context=16, tokenizer={"vocab_size": 280}, holdout_every=5)
    prep = prepare_text(spec, tmp_path / "out", root=tmp_path)
    assert prep.meta["corpus"]["documents"] == {"train": 9, "val": 2, "test": 3}  # val: 4, 9; test: 3, 8, 13


def test_jsonl_errors_name_file_and_line(tmp_path):
    f = tmp_path / "x.jsonl"
    f.write_text('{"text": "ok"}\n{"body": "no text field"}\n')
    with pytest.raises(DataReadError, match=r"x.jsonl:2: expected an object with a 'text' field"):
        file_documents(f)
    f.write_text('{"text": "ok"}\nnot json\n')
    with pytest.raises(DataReadError, match=r"x.jsonl:2: not a JSON object"):
        file_documents(f)
    g = tmp_path / "bad.txt"
    g.write_bytes(b"caf\xe9")
    with pytest.raises(DataReadError, match="not UTF-8"):
        file_documents(g)
    with pytest.raises(DataReadError, match="no such file"):
        file_documents(tmp_path / "missing")


def test_too_few_documents_is_a_clear_error(tmp_path):
    (tmp_path / "one.txt").write_text("only one document")
    spec = TextDataSpec(source="files", path=str(tmp_path / "one.txt"))
    with pytest.raises(DataReadError, match="leave the val and test split empty"):
        load_corpus(spec)


def test_users_tokenizer_file_from_a_folder(tmp_path):
    d = _write_folder(tmp_path)
    tok = train_bpe(file_documents(d), 270)
    model_dir = tmp_path / "hf_model"
    model_dir.mkdir()
    tok.save(str(model_dir / "tokenizer.json"))
    spec = TextDataSpec(source="files", path=str(d), context=16, holdout_every=5,
                        tokenizer={"kind": "file", "path": str(model_dir)})
    prep = prepare_text(spec, tmp_path / "out")
    assert prep.vocab_size == 270 and prep.meta["eot_id"] == tok.token_to_id(EOT)
    with pytest.raises(DataReadError, match="no tokenizer.json"):
        prepare_text(spec.model_copy(update={"tokenizer": spec.tokenizer.model_copy(update={"path": str(tmp_path)})}),
                     tmp_path / "out2")


def test_spec_rules():
    with pytest.raises(ValueError, match="needs data.path"):
        TextDataSpec(source="files")
    with pytest.raises(ValueError, match="needs tokenizer.path"):
        TextDataSpec(tokenizer={"kind": "file"})
    with pytest.raises(ValueError):
        TextDataSpec(tokenizer={"vocab_size": 100})
