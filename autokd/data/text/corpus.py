"""Documents of a text corpus, in a fixed order, split deterministically.

* ``pydoc_topics``: CPython's ``pydoc_data.topics`` (ships with every Python; its text changes
  between versions, so the Python version and a content hash are recorded), topics in key
  order, concatenated and cut into ``block_chars`` blocks, each block a document.
* ``files``: a ``.txt`` / ``.md`` file (one document) or ``.jsonl`` (one document per line,
  from ``text_field``), or a folder searched recursively for them, sorted by relative path.

With ``data.format: chat`` the documents are conversations (:mod:`autokd.data.text.chat`):
``pydoc_topics`` gives one per topic ("Explain the Python topic 'X'." → its text), ``files``
reads ``.jsonl`` files of ``{prompt, completion}`` or ``{messages}`` lines, and a user's source
returns such records (or message lists).
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autokd.data.readers.base import DataReadError
from autokd.data.text.chat import as_messages, jsonl_records, pydoc_conversations, read_chat_jsonl
from autokd.data.text.sources import get_corpus, register_corpus
from autokd.spec.lm import TextDataSpec

TEXT_SUFFIXES = (".txt", ".md", ".jsonl")
SPLITS = ("train", "val", "test")


@dataclass
class Corpus:
    """Documents per split, and where they came from."""

    documents: dict[str, list]  # strings, or conversations (data.format: chat)
    info: dict[str, Any] = field(default_factory=dict)

    def chars(self, split: str) -> int:
        return sum(len(d) for d in self.documents[split])

    def utf8_bytes(self, split: str) -> int:
        return sum(len(d.encode("utf-8")) for d in self.documents[split])


def text_sha256(documents: list[str]) -> str:
    h = hashlib.sha256()
    for doc in documents:
        data = doc.encode("utf-8")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def pydoc_documents(block_chars: int) -> tuple[list[str], dict[str, Any]]:
    from pydoc_data.topics import topics

    text = "\n\n".join(topics[k] for k in sorted(topics))
    blocks = [text[i:i + block_chars] for i in range(0, len(text), block_chars)]
    return blocks, {"source": "pydoc_topics", "python": platform.python_version(), "topics": len(topics)}


def _jsonl_documents(path: Path, text_field: str, shown: str) -> list[str]:
    docs = []
    for where, record in jsonl_records(path, shown):
        if not isinstance(record, dict) or text_field not in record:
            keys = sorted(record) if isinstance(record, dict) else type(record).__name__
            raise DataReadError(f"{where}: expected an object with a {text_field!r} field "
                                f"(data.text_field), found {keys}")
        if not isinstance(record[text_field], str):
            raise DataReadError(f"{where}: field {text_field!r} must be a string, "
                                f"found {type(record[text_field]).__name__}")
        docs.append(record[text_field])
    return docs


def file_documents(path: str | Path, text_field: str = "text", root: str | Path | None = None) -> list[str]:
    """The documents of a file or a folder (sorted by relative path); ``path`` relative to ``root``."""
    p = Path(path)
    if not p.is_absolute() and root is not None:
        p = Path(root) / p
    if not p.exists():
        raise DataReadError(f"data.path {str(path)!r}: no such file or folder ({p})")
    if p.is_dir():
        files = sorted((f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in TEXT_SUFFIXES),
                       key=lambda f: f.relative_to(p).as_posix())
        if not files:
            raise DataReadError(f"data.path {str(path)!r}: a folder with no {', '.join(TEXT_SUFFIXES)} files")
    elif p.suffix.lower() in TEXT_SUFFIXES:
        files = [p]
    else:
        raise DataReadError(f"data.path {str(path)!r}: expected a {', '.join(TEXT_SUFFIXES)} file or a folder, "
                            f"found a {p.suffix or 'suffix-less'} file")
    docs: list[str] = []
    for f in files:
        shown = f.relative_to(p).as_posix() if p.is_dir() else str(path)
        if f.suffix.lower() == ".jsonl":
            docs += _jsonl_documents(f, text_field, shown)
        else:
            try:
                docs.append(f.read_text(encoding="utf-8"))
            except UnicodeDecodeError as exc:
                raise DataReadError(f"{shown}: not UTF-8 text (byte {exc.start})") from None
    return [d for d in docs if d]


def split_documents(documents: list[str], holdout_every: int) -> dict[str, list[str]]:
    """Document ``i`` to val when ``i % n == n - 1``, to test when ``i % n == n - 2``, else to train."""
    out: dict[str, list[str]] = {s: [] for s in SPLITS}
    for i, doc in enumerate(documents):
        r = i % holdout_every
        out["val" if r == holdout_every - 1 else "test" if r == holdout_every - 2 else "train"].append(doc)
    return out


def chat_files(path: str | Path, root: str | Path | None = None) -> list[list[dict[str, str]]]:
    """The conversations of a ``.jsonl`` file, or of a folder's ``.jsonl`` files (sorted by relative path)."""
    p = Path(path)
    if not p.is_absolute() and root is not None:
        p = Path(root) / p
    if p.is_dir():
        files = sorted((f for f in p.rglob("*.jsonl") if f.is_file()), key=lambda f: f.relative_to(p).as_posix())
        if not files:
            raise DataReadError(f"data.path {str(path)!r}: chat data is .jsonl, and the folder has none")
    elif p.is_file() and p.suffix.lower() == ".jsonl":
        files = [p]
    elif p.exists():
        raise DataReadError(f"data.path {str(path)!r}: chat data is .jsonl ({{prompt, completion}} or {{messages}} "
                            f"per line), found a {p.suffix or 'suffix-less'} file")
    else:
        raise DataReadError(f"data.path {str(path)!r}: no such file or folder ({p})")
    out: list[list[dict[str, str]]] = []
    for f in files:
        out += read_chat_jsonl(f, f.relative_to(p).as_posix() if p.is_dir() else str(path))
    return out


@register_corpus("pydoc_topics")
def pydoc_source(spec: TextDataSpec, root: str | Path | None = None) -> tuple[list, dict[str, Any]]:
    if spec.format == "chat":
        convs = pydoc_conversations()
        return convs, {"source": "pydoc_topics", "python": platform.python_version(), "topics": len(convs)}
    return pydoc_documents(spec.block_chars)


@register_corpus("files")
def files_source(spec: TextDataSpec, root: str | Path | None = None) -> tuple[list, dict[str, Any]]:
    if spec.format == "chat":
        return chat_files(spec.path, root), {"source": "files", "path": spec.path}
    return file_documents(spec.path, spec.text_field, root), {"source": "files", "path": spec.path}


def conversations_sha256(conversations: list[list[dict[str, str]]]) -> str:
    return text_sha256([json.dumps(c, sort_keys=True, ensure_ascii=False) for c in conversations])


def load_corpus(spec: TextDataSpec, root: str | Path | None = None) -> Corpus:
    """The spec's documents, split; ``info`` records the source, counts and the content hash."""
    documents, info = get_corpus(spec.source)(spec, root)
    documents = list(documents)
    if spec.format == "chat":
        documents = [as_messages({"messages": d} if isinstance(d, list) else d, f"corpus {spec.source!r}, example {i}")
                     for i, d in enumerate(documents)]
    elif not all(isinstance(d, str) for d in documents):
        raise DataReadError(f"corpus {spec.source!r}: documents must be strings")
    if spec.max_documents:
        documents = documents[: spec.max_documents]
    splits = split_documents(documents, spec.holdout_every)
    empty = [s for s in SPLITS if not splits[s]]
    if empty:
        raise DataReadError(f"{len(documents)} document(s) leave the {' and '.join(empty)} split empty "
                            f"(every {spec.holdout_every}th document is held out: give at least "
                            f"{spec.holdout_every} documents, or lower data.holdout_every)")
    digest = conversations_sha256(documents) if spec.format == "chat" else text_sha256(documents)
    info.update(documents={s: len(v) for s, v in splits.items()}, text_sha256=digest)
    return Corpus(splits, info)
