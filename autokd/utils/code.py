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


#: What every stage command imports (the library but the search): the code a stage's outputs depend on.
#: ``dvcgen.CODE_DEPS`` (this checkout's stage deps) and :func:`installed_code` (a user project's) both come from it.
STAGE_FILES = ("__init__.py", "__main__.py")
STAGE_CODE = ("cli", "spec", "utils", "data", "models", "losses", "train", "evaluate", "lineage", "stages", "export")


def installed_code() -> dict[str, str]:
    """The installed autokd a stage runs: its version and a digest of :data:`STAGE_CODE` (with
    ``__init__.py``/``__main__.py``). In a user's project every stage depends on this record (the
    file ``.autokd/code.json``, written by ``autokd code-record``), not on source folders: an
    upgrade that changes the code reruns the stages, a reinstall of the same files does not."""
    from autokd import __version__

    h = hashlib.sha256(source_digest(PACKAGE, STAGE_CODE).encode())
    for name in STAGE_FILES:
        h.update(name.encode() + b"\0" + (PACKAGE / name).read_bytes() + b"\0")
    return {"autokd": __version__, "code": h.hexdigest()[:16]}
