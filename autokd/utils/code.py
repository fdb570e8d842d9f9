"""A digest of the library code that decides what a training run learns.

A checkpoint is resumed only when its run fingerprint matches, and the fingerprint includes
this digest: after a change to the code that trains (batch order, augmentation, a loss, a
default), DVC reruns the stage *and* the stage trains afresh instead of restoring the old
run's final checkpoint. Same checkout, same digest: a crashed run still resumes.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]
#: The packages whose code can change a trained model (not the CLI, the search or evaluation).
TRAINING_CODE = ("spec", "data", "models", "losses", "train", "stages", "utils")


def source_digest(root: Path, packages: tuple[str, ...]) -> str:
    """sha256 over the (relative path, bytes) of every ``.py`` file under ``root/<package>``."""
    h = hashlib.sha256()
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


@lru_cache(maxsize=1)
def training_code_digest() -> str:
    """The digest of this installation's training code (computed once per process)."""
    return source_digest(PACKAGE, TRAINING_CODE)
