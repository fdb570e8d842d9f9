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
