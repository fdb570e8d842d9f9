"""Layer maps: which student layer learns from which teacher layer when depths differ.

Layers are numbered 1 … L (block outputs); with ``embeddings=True`` the embedding output is
layer 0 and is always mapped to the teacher's 0.

* ``uniform`` (TinyBERT): student layer m faces teacher layer ⌈m · L_t / L_s⌉ — evenly
  spaced, the last to the last;
* ``last``: the student's last layer faces the teacher's last;
* ``explicit``: the user's own ``[[student, teacher], …]`` pairs, checked against both depths.
"""

from __future__ import annotations

import math
from typing import Iterable


def layer_pairs(kind: str, student_layers: int, teacher_layers: int, *, embeddings: bool = False,
                explicit: Iterable[Iterable[int]] | None = None) -> list[tuple[int, int]]:
    """``(student_layer, teacher_layer)`` pairs of the map ``kind``."""
    if student_layers < 1 or teacher_layers < 1:
        raise ValueError(f"layer map: depths must be ≥ 1, got student {student_layers}, teacher {teacher_layers}")
    if kind == "uniform":
        pairs = [(m, math.ceil(m * teacher_layers / student_layers)) for m in range(1, student_layers + 1)]
    elif kind == "last":
        pairs = [(student_layers, teacher_layers)]
    elif kind == "explicit":
        pairs = [tuple(int(v) for v in p) for p in (explicit or [])]
        low = 0 if embeddings else 1
        for s, t in pairs:
            if not (low <= s <= student_layers and low <= t <= teacher_layers):
                raise ValueError(f"layer map: pair ({s}, {t}) outside the student's layers {low}…{student_layers} "
                                 f"or the teacher's {low}…{teacher_layers}")
        if not pairs:
            raise ValueError("layer map 'explicit' needs at least one [student, teacher] pair")
        return pairs
    else:
        raise ValueError(f"layer map: expected 'uniform', 'last' or 'explicit', found {kind!r}")
    return ([(0, 0)] if embeddings else []) + pairs
