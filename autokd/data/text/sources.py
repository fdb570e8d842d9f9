"""The corpus sources of ``data.source`` (text): name -> ``source(spec, root) -> (documents, info)``.

A source registers itself with :func:`register_corpus`; a user's own source is named by import
path (``data.source: my_pkg.corpora:load``, the rule of :mod:`autokd.utils.imports`) and called
the same way: ``load(spec, root)`` returning ``(documents, info)``, the documents a list of
strings in a fixed order, ``info`` a JSON-able mapping recorded in the prepared data. The
built-in sources (``pydoc_topics``, ``files``) register in :mod:`.corpus`.
"""

from __future__ import annotations

from typing import Any, Callable

from autokd.data.readers.base import DataReadError
from autokd.utils.imports import lookup

CorpusSource = Callable[..., tuple[list[str], dict[str, Any]]]

#: Registered corpus sources keyed by ``data.source``.
CORPORA: dict[str, CorpusSource] = {}


def register_corpus(name: str) -> Callable[[CorpusSource], CorpusSource]:
    """Decorator registering ``fn`` in :data:`CORPORA` under ``name``."""

    def deco(fn: CorpusSource) -> CorpusSource:
        if name in CORPORA:
            raise ValueError(f"corpus source {name!r} registered twice")
        CORPORA[name] = fn
        return fn

    return deco


def get_corpus(source: str) -> CorpusSource:
    """The corpus source ``source`` (a registered name or ``pkg.module:function``); DataReadError otherwise."""
    return lookup(source, CORPORA, "corpus source", "a function source(spec, root) -> (documents, info)",
                  DataReadError)
