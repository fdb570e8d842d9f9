"""Token windows: documents encoded, joined by the end-of-text token, cut into windows.

A split's documents become one stream ``d0 EOT d1 EOT …``; window ``j`` holds tokens
``[j·C, j·C + C + 1)`` (C the context): inputs are the first C, targets the last C, so every
token of the stream but the first is predicted exactly once. The tail shorter than C + 1 is
dropped.
"""

from __future__ import annotations

import numpy as np


def encode_stream(tok, documents: list[str], eot: int) -> np.ndarray:
    """All documents' ids with ``eot`` after each, as one ``int64`` array."""
    ids: list[int] = []
    for enc in tok.encode_batch(documents, add_special_tokens=False):
        ids.extend(enc.ids)
        ids.append(eot)
    return np.asarray(ids, dtype=np.int64)


def pack_windows(stream: np.ndarray, context: int) -> np.ndarray:
    """``(n, context + 1)`` windows with stride ``context`` (consecutive windows share one token)."""
    n = (len(stream) - 1) // context
    if n <= 0:
        return np.zeros((0, context + 1), dtype=np.int64)
    idx = np.arange(n)[:, None] * context + np.arange(context + 1)[None, :]
    return stream[idx]


IGNORE = -100  # the target of a position no loss counts (F.cross_entropy's ignore_index)


def chat_windows(examples: list[tuple[list[int], list[bool]]], context: int, pad: int, pack: bool
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict[str, int]]:
    """Chat examples as ``(windows, targets, segments, counts)``.

    Each example (ids with a loss flag per token, the end-of-text id last) is cut to ``context + 1``
    tokens (``counts['truncated']``) and dropped when no loss token is left in it
    (``counts['dropped']``). Unpacked, one example a window, padded with ``pad``; packed, examples
    go in order into the current window while they fit (first fit in order, never split), and a
    new window starts when one does not. ``windows`` ``(n, context + 1)`` are the token ids;
    ``targets`` ``(n, context)`` the next token at each input position, :data:`IGNORE` where it is
    padding, not a loss token, or (packed) the first token of the next example; ``segments``
    ``(n, context)`` (packed only) the example of each input position, 1, 2, … within a window, 0
    for padding.
    """
    width = context + 1
    rows: list[tuple[list[int], list[bool], list[int]]] = []
    ids_row: list[int] = []
    flag_row: list[bool] = []
    seg_row: list[int] = []
    counts = {"examples": len(examples), "truncated": 0, "dropped": 0}

    def flush():
        if ids_row:
            fill = width - len(ids_row)
            rows.append((ids_row + [pad] * fill, flag_row + [False] * fill, seg_row + [0] * fill))

    for ids, flags in examples:
        if len(ids) > width:
            ids, flags = ids[:width], flags[:width]
            counts["truncated"] += 1
        if not any(flags[1:]):  # the first token is never a target
            counts["dropped"] += 1
            continue
        if not pack or len(ids_row) + len(ids) > width:
            flush()
            ids_row, flag_row, seg_row = [], [], []
        seg = (seg_row[-1] + 1) if seg_row else 1
        ids_row, flag_row, seg_row = ids_row + ids, flag_row + flags, seg_row + [seg] * len(ids)
    flush()
    counts["windows"] = len(rows)
    if not rows:
        empty = np.zeros((0, context), dtype=np.int64)
        return np.zeros((0, width), dtype=np.int64), empty, empty.copy() if pack else None, counts
    windows = np.asarray([r[0] for r in rows], dtype=np.int64)
    flags = np.asarray([r[1] for r in rows], dtype=bool)
    segs = np.asarray([r[2] for r in rows], dtype=np.int64)
    keep = flags[:, 1:] & (segs[:, 1:] == segs[:, :-1]) & (segs[:, :-1] > 0)
    targets = np.where(keep, windows[:, 1:], IGNORE)
    counts["loss_tokens"] = int(keep.sum())
    return windows, targets, (segs[:, :-1] if pack else None), counts
