"""Byte-level BPE tokenizers (the ``tokenizers`` library): trained on the training split, or a
user's ``tokenizer.json``.

Byte-level: every string encodes (no unknown token) and decodes back exactly. Training is run
with one thread so the merges, and so the saved file, are the same bytes on every run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

from autokd.data.readers.base import DataReadError

EOT = "<|endoftext|>"


def _tokenizers():
    os.environ.setdefault("RAYON_NUM_THREADS", "1")  # one thread: deterministic merges
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import tokenizers

    return tokenizers


def train_bpe(documents: Iterable[str], vocab_size: int, min_frequency: int = 2):
    """A byte-level BPE tokenizer of ``vocab_size`` tokens (256 bytes, ``EOT``, merges)."""
    tk = _tokenizers()
    from tokenizers import decoders, models, pre_tokenizers, trainers

    tok = tk.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(list(documents), trainer=trainer)
    return tok


def load_tokenizer(path: str | Path, root: str | Path | None = None):
    """A ``tokenizer.json`` (or a folder holding one, e.g. a local Hugging Face model folder)."""
    tk = _tokenizers()
    p = Path(path)
    if not p.is_absolute() and root is not None:
        p = Path(root) / p
    if p.is_dir():
        p = p / "tokenizer.json"
    if not p.is_file():
        raise DataReadError(f"tokenizer.path {str(path)!r}: no tokenizer.json at {p}")
    try:
        return tk.Tokenizer.from_file(str(p))
    except Exception as exc:  # the library raises its own Exception type for a malformed file
        raise DataReadError(f"tokenizer.path {str(path)!r}: not a tokenizers JSON file ({exc})") from None


def eot_id(tok) -> int:
    """The end-of-text id: ``<|endoftext|>``, else the file's ``eos``/``</s>`` token."""
    for name in (EOT, "</s>", "<eos>", "<|end_of_text|>"):
        idx = tok.token_to_id(name)
        if idx is not None:
            return int(idx)
    raise DataReadError(f"the tokenizer has no end-of-text token ({EOT!r} or '</s>'): documents need a separator")


def canonical_json(tok) -> str:
    """The tokenizer as JSON with sorted keys (the library's own order is not guaranteed)."""
    return json.dumps(json.loads(tok.to_str()), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
