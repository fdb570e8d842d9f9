"""``prepare`` for language models: documents -> tokenizer -> token windows, written to a folder.

Writes ``tokenizer.json`` (canonical JSON), ``{train,val,test}.safetensors`` (``windows``:
``int32`` ``(n, context + 1)``) and ``meta.json`` (vocabulary, context, token and UTF-8 byte
counts per split — bits per byte divide by those bytes — the corpus hash and source, and one
content hash over everything). Nothing time- or machine-specific is written: the same spec
and Python version give the same bytes.
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
from autokd.data.text.packing import encode_stream, pack_windows
from autokd.data.text.tokenizer import canonical_json, eot_id, load_tokenizer, train_bpe
from autokd.spec.lm import TextDataSpec
from autokd.utils.io import atomic_write_json, atomic_write_text, save_safetensors


@dataclass
class PreparedText:
    """Token windows per split and the facts about them (``meta``)."""

    windows: dict[str, torch.Tensor]
    meta: dict[str, Any]
    tokenizer_json: str

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
        return Split(x=w[:, :-1].contiguous(), y=w[:, 1:].contiguous(), index=torch.arange(len(w)))

    def tokenizer(self):
        from tokenizers import Tokenizer

        return Tokenizer.from_str(self.tokenizer_json)


def _digest(tokenizer_json: str, windows: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256(tokenizer_json.encode("utf-8"))
    for name in SPLITS:
        w = np.ascontiguousarray(windows[name], dtype=np.int32)
        h.update(name.encode() + str(w.shape).encode())
        h.update(w.tobytes())
    return h.hexdigest()


def prepare_text(spec: TextDataSpec, out_dir: str | Path, root: str | Path | None = None) -> PreparedText:
    """Read and split the corpus, train (or load) the tokenizer on the training split, pack windows."""
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
    atomic_write_text(out / "tokenizer.json", tok_json)
    for name in SPLITS:
        save_safetensors(out / f"{name}.safetensors", {"windows": torch.from_numpy(windows[name].astype(np.int32))},
                         metadata={"sha256": meta["sha256"]})
    atomic_write_json(out / "meta.json", meta)
    return PreparedText({n: torch.from_numpy(windows[n].astype(np.int64)) for n in SPLITS}, meta, tok_json)


def load_prepared_text(data_dir: str | Path) -> PreparedText:
    """A prepared folder; the content hash is checked against ``meta.json``."""
    d = Path(data_dir)
    try:
        meta = json.loads((d / "meta.json").read_text())
        tok_json = (d / "tokenizer.json").read_text(encoding="utf-8")
        arrays = {n: load_file(str(d / f"{n}.safetensors"))["windows"] for n in SPLITS}
    except (OSError, KeyError, ValueError) as exc:
        raise DataReadError(f"{d}: not a prepared text folder ({exc}); run the prepare stage") from None
    if _digest(tok_json, {n: arrays[n].numpy() for n in SPLITS}) != meta.get("sha256"):
        raise DataReadError(f"{d}: the token windows or tokenizer do not match meta.json's sha256 (modified?)")
    return PreparedText({n: arrays[n].long() for n in SPLITS}, meta, tok_json)
