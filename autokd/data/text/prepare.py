"""``prepare`` for language models: documents -> tokenizer -> token windows, written to a folder.

Writes ``tokenizer.json`` (canonical JSON), ``{train,val,test}.safetensors`` (``windows``:
``int32`` ``(n, context + 1)``) and ``meta.json`` (vocabulary, context, token and UTF-8 byte
counts per split — bits per byte divide by those bytes — the corpus hash and source, and one
content hash over everything). Nothing time- or machine-specific is written: the same spec
and Python version give the same bytes.

Chat data (``data.format: chat``) adds ``targets`` (``int32`` ``(n, context)``: the next token,
``-100`` where no loss counts) and, packed, ``segments`` (``int32`` ``(n, context)``: the
example of each position, 0 for padding) to each split's file; the BPE is trained on the
rendered training conversations, and ``meta.json`` records the template, ``loss_on``, packing
and per split the examples truncated to the context and dropped for having no loss token left.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from autokd.data.prepare import Split
from autokd.data.readers.base import DataReadError
from autokd.data.text.corpus import SPLITS, load_corpus
from autokd.data.text.chat import assistant_spans, encode_conversations, resolve_template
from autokd.data.text.packing import chat_windows, encode_stream, pack_windows
from autokd.data.text.tokenizer import canonical_json, eot_id, load_tokenizer, train_bpe
from autokd.spec.lm import TextDataSpec
from autokd.utils.io import atomic_write_json, atomic_write_text, save_safetensors


@dataclass
class PreparedText:
    """Token windows per split and the facts about them (``meta``)."""

    windows: dict[str, torch.Tensor]
    meta: dict[str, Any]
    tokenizer_json: str
    targets: dict[str, torch.Tensor] | None = None  # chat: next tokens, -100 where no loss counts
    segments: dict[str, torch.Tensor] | None = None  # packed chat: the example of each position

    @property
    def vocab_size(self) -> int:
        return int(self.meta["vocab_size"])

    @property
    def context(self) -> int:
        return int(self.meta["context"])

    @property
    def sha256(self) -> str:
        return str(self.meta["sha256"])

    # the interface of a prepared classification dataset, so the one recipe trains both
    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.context,)

    @property
    def num_classes(self) -> int:
        return self.vocab_size

    @property
    def train(self) -> Split:
        return self.split("train")

    @property
    def val(self) -> Split:
        return self.split("val")

    @property
    def test(self) -> Split:
        return self.split("test")

    def split(self, name: str) -> Split:
        """Inputs ``windows[:, :-1]`` and next-token targets ``windows[:, 1:]``, for the one trainer."""
        w = self.windows[name]
        y = self.targets[name] if self.targets is not None else w[:, 1:].contiguous()
        segments = self.segments[name] if self.segments is not None else None
        return Split(x=w[:, :-1].contiguous(), y=y, index=torch.arange(len(w)), segments=segments)

    def tokenizer(self):
        from tokenizers import Tokenizer

        return Tokenizer.from_str(self.tokenizer_json)


def _digest(tokenizer_json: str, windows: dict[str, np.ndarray], *extra: dict[str, np.ndarray] | None) -> str:
    """One hash over the tokenizer and every array (a text split's windows; chat's targets and segments too)."""
    h = hashlib.sha256(tokenizer_json.encode("utf-8"))
    for name in SPLITS:
        for arrays in (windows, *extra):
            if arrays is None:
                continue
            w = np.ascontiguousarray(arrays[name], dtype=np.int32)
            h.update(name.encode() + str(w.shape).encode())
            h.update(w.tobytes())
    return h.hexdigest()


def _chat_splits(spec: TextDataSpec, corpus, root):
    """Chat data: the tokenizer, windows, targets, segments and facts per split."""
    template = resolve_template(spec.chat_template, spec.tokenizer.path, root)
    texts = {n: [assistant_spans(template, c)[0] for c in corpus.documents[n]] for n in SPLITS}
    if spec.tokenizer.kind == "bpe":
        tok = train_bpe(texts["train"], spec.tokenizer.vocab_size, spec.tokenizer.min_frequency)
    else:
        tok = load_tokenizer(spec.tokenizer.path, root)
    eot = eot_id(tok)
    windows, targets, segments, facts = {}, {}, {} if spec.packing else None, {}
    for name in SPLITS:
        examples = encode_conversations(tok, template, corpus.documents[name], eot, spec.loss_on)
        w, t, seg, counts = chat_windows(examples, spec.context, eot, spec.packing)
        if len(w) == 0:
            raise DataReadError(f"the {name} split has no example with a loss token inside data.context = "
                                f"{spec.context} tokens ({counts['dropped']} of {counts['examples']} dropped): give "
                                f"a longer context or shorter prompts")
        windows[name], targets[name] = w, t
        if segments is not None:
            segments[name] = seg
        tokens = sum(len(ids) for ids, _ in examples)
        nbytes = sum(len(x.encode("utf-8")) for x in texts[name])
        facts[name] = {**counts, "tokens": tokens, "utf8_bytes": nbytes,
                       "bytes_per_token": nbytes / max(1, tokens - len(examples))}
    chat = {"template": template.source, "template_sha256": hashlib.sha256(template.text.encode()).hexdigest(),
            "loss_on": spec.loss_on, "packing": spec.packing,
            "examples": {n: {k: facts[n][k] for k in ("examples", "truncated", "dropped", "loss_tokens")}
                         for n in SPLITS}}
    return tok, eot, windows, targets, segments, facts, chat


def _save(out: Path, tok_json: str, meta: dict, windows, targets=None, segments=None) -> None:
    atomic_write_text(out / "tokenizer.json", tok_json)
    for name in SPLITS:
        tensors = {"windows": torch.from_numpy(windows[name].astype(np.int32))}
        if targets is not None:
            tensors["targets"] = torch.from_numpy(targets[name].astype(np.int32))
        if segments is not None:
            tensors["segments"] = torch.from_numpy(segments[name].astype(np.int32))
        save_safetensors(out / f"{name}.safetensors", tensors, metadata={"sha256": meta["sha256"]})
    atomic_write_json(out / "meta.json", meta)


def _long(arrays: dict[str, np.ndarray] | None) -> dict[str, torch.Tensor] | None:
    return None if arrays is None else {n: torch.from_numpy(np.asarray(a).astype(np.int64)) for n, a in arrays.items()}


def prepare_chat(spec: TextDataSpec, out_dir: str | Path, root: str | Path | None = None) -> PreparedText:
    """Chat data: conversations rendered, tokenized with loss flags, one example a window or packed."""
    corpus = load_corpus(spec, root)
    tok, eot, windows, targets, segments, facts, chat = _chat_splits(spec, corpus, root)
    vocab = int(tok.get_vocab_size(with_added_tokens=True))
    if max(int(w.max()) for w in windows.values()) >= vocab:
        raise DataReadError("the tokenizer produced ids outside its vocabulary")
    tok_json = canonical_json(tok)
    meta = {
        "task": "lm", "format": "chat", "vocab_size": vocab, "context": spec.context, "eot_id": eot,
        "tokenizer": spec.tokenizer.model_dump(), "corpus": corpus.info, "chat": chat,
        "counts": {n: int(len(windows[n])) for n in SPLITS},
        "tokens": {n: facts[n]["tokens"] for n in SPLITS},
        "utf8_bytes": {n: facts[n]["utf8_bytes"] for n in SPLITS},
        "bytes_per_token": {n: facts[n]["bytes_per_token"] for n in SPLITS},
        "sha256": _digest(tok_json, windows, targets, segments),
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _save(out, tok_json, meta, windows, targets, segments)
    return PreparedText(_long(windows), meta, tok_json, _long(targets), _long(segments))


def prepare_text(spec: TextDataSpec, out_dir: str | Path, root: str | Path | None = None) -> PreparedText:
    """Read and split the corpus, train (or load) the tokenizer on the training split, pack windows."""
    if spec.format == "chat":
        return prepare_chat(spec, out_dir, root)
    corpus = load_corpus(spec, root)
    if spec.tokenizer.kind == "bpe":
        tok = train_bpe(corpus.documents["train"], spec.tokenizer.vocab_size, spec.tokenizer.min_frequency)
    else:
        tok = load_tokenizer(spec.tokenizer.path, root)
    eot = eot_id(tok)
    windows, tokens = {}, {}
    for name in SPLITS:
        stream = encode_stream(tok, corpus.documents[name], eot)
        tokens[name] = int(len(stream))
        windows[name] = pack_windows(stream, spec.context)
        if len(windows[name]) == 0:
            raise DataReadError(f"the {name} split has {len(stream)} tokens: fewer than one window of "
                                f"data.context + 1 = {spec.context + 1}; give more text or a shorter context")
    vocab = int(tok.get_vocab_size(with_added_tokens=True))
    if max(int(w.max()) for w in windows.values()) >= vocab:
        raise DataReadError("the tokenizer produced ids outside its vocabulary")
    tok_json = canonical_json(tok)
    meta = {
        "task": "lm",
        "vocab_size": vocab,
        "context": spec.context,
        "eot_id": eot,
        "tokenizer": spec.tokenizer.model_dump(),
        "corpus": corpus.info,
        "counts": {n: int(len(windows[n])) for n in SPLITS},
        "tokens": tokens,
        "utf8_bytes": {n: corpus.utf8_bytes(n) for n in SPLITS},
        "bytes_per_token": {n: corpus.utf8_bytes(n) / max(1, tokens[n] - len(corpus.documents[n])) for n in SPLITS},
        "sha256": _digest(tok_json, windows),
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _save(out, tok_json, meta, windows)
    return PreparedText(_long(windows), meta, tok_json)


def load_prepared_text(data_dir: str | Path) -> PreparedText:
    """A prepared folder; the content hash is checked against ``meta.json``."""
    d = Path(data_dir)
    try:
        meta = json.loads((d / "meta.json").read_text())
        tok_json = (d / "tokenizer.json").read_text(encoding="utf-8")
        files = {n: load_file(str(d / f"{n}.safetensors")) for n in SPLITS}
        arrays = {n: files[n]["windows"] for n in SPLITS}
    except (OSError, KeyError, ValueError) as exc:
        raise DataReadError(f"{d}: not a prepared text folder ({exc}); run the prepare stage") from None

    def optional(key: str) -> dict[str, torch.Tensor] | None:
        return {n: files[n][key] for n in SPLITS} if all(key in files[n] for n in SPLITS) else None

    targets, segments = optional("targets"), optional("segments")
    numpy = (lambda a: None if a is None else {n: t.numpy() for n, t in a.items()})
    if _digest(tok_json, numpy(arrays), numpy(targets), numpy(segments)) != meta.get("sha256"):
        raise DataReadError(f"{d}: the token windows or tokenizer do not match meta.json's sha256 (modified?)")
    long = (lambda a: None if a is None else {n: t.long() for n, t in a.items()})
    return PreparedText(long(arrays), meta, tok_json, long(targets), long(segments))
