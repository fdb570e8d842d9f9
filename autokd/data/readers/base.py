"""The reader contract: :class:`RawDataset`, :class:`DataReadError`, the :data:`READERS`
registry with its :func:`register_reader` decorator, :func:`read_dataset`, and the checks
every reader shares (paths, subsets, final validation of the arrays)."""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np


class DataReadError(Exception):
    """A dataset could not be read; the message says which path and why."""


@dataclass(eq=False)
class RawDataset:
    """A dataset held in memory as numpy arrays.

    Attributes:
        x: ``float32`` features; ``(N, C, H, W)`` in ``[0, 1]`` for images,
            ``(N, D)`` for tabular data.
        y: ``int64`` labels, shape ``(N,)``, values ``0..K-1``.
        class_names: ``K`` human-readable class names; ``class_names[i]``
            names label ``i``.
        info: extra facts about where the data came from (format, path,
            split sizes, ...).
    """

    x: np.ndarray
    y: np.ndarray
    class_names: list[str]
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def num_classes(self) -> int:
        """Number of classes ``K``."""
        return len(self.class_names)


Reader = Callable[..., RawDataset]

#: Registry of readers keyed by source name.  Each reader is called as
#: ``reader(path, **options)`` and returns a :class:`RawDataset`.
READERS: dict[str, Reader] = {}

SUBSETS = ("all", "train", "test")


def register_reader(name: str) -> Callable[[Reader], Reader]:
    """Decorator registering ``fn`` in :data:`READERS` under ``name``."""

    def deco(fn: Reader) -> Reader:
        READERS[name] = fn
        return fn

    return deco


def get_reader(source: str) -> Reader:
    """The reader of ``source``: a registered name, or a user's ``pkg.module:function`` import path
    (:mod:`autokd.utils.imports`) called like a registered reader; DataReadError otherwise."""
    from autokd.utils.imports import lookup

    return lookup(source, READERS, "data source", "a function reader(path, **options) -> RawDataset", DataReadError)


def read_dataset(source: str, path: str | os.PathLike[str] | None, **options: Any) -> RawDataset:
    """Read dataset ``source`` from ``path`` with reader-specific ``options``.

    Raises:
        DataReadError: unknown source, unknown option, or any problem with
            the data on disk.
    """
    reader = get_reader(source)
    check_options(source, reader, options)
    return reader(path, **options)


# ---------------------------------------------------------------------------
# shared checks
# ---------------------------------------------------------------------------


def check_options(source: str, reader: Reader, options: dict[str, Any]) -> None:
    """Reject options the reader does not accept, with a readable message."""
    params = inspect.signature(reader).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    accepted = [n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise DataReadError(
            f"unknown option(s) for data source {source!r}: {', '.join(unknown)}; "
            f"accepted options: {', '.join(accepted) or '(none)'}"
        )


def require_path(path: str | os.PathLike[str] | None, source: str) -> Path:
    """Return ``path`` as an existing :class:`Path` or raise DataReadError."""
    if path is None or str(path) == "":
        raise DataReadError(f"data source {source!r} needs a data path, but none was given")
    p = Path(path).expanduser()
    if not p.exists():
        raise DataReadError(f"data path not found: {p}")
    return p


def require_dir(p: Path) -> Path:
    """``p`` if it is a directory, else DataReadError."""
    if not p.is_dir():
        raise DataReadError(f"data path is not a directory: {p}")
    return p


def require_file(p: Path) -> Path:
    """``p`` if it is a regular file, else DataReadError."""
    if not p.is_file():
        raise DataReadError(f"data path is not a file: {p}")
    return p


def check_subset(subset: Any) -> str:
    """``subset`` if it is one of :data:`SUBSETS`, else DataReadError."""
    if subset not in SUBSETS:
        raise DataReadError(f"invalid subset {subset!r}; expected one of {', '.join(SUBSETS)}")
    return subset


def splits_of(subset: str) -> list[str]:
    """The splits a subset reads, in order (``all`` is train then test)."""
    return ["train", "test"] if subset == "all" else [subset]


def default_class_names(y: np.ndarray) -> list[str]:
    """Names ``"0".."max(y)"`` for datasets without stored class names."""
    k = int(y.max()) + 1 if y.size else 0
    return [str(i) for i in range(k)]


def finalize(
    x: np.ndarray,
    y: np.ndarray,
    class_names: Sequence[str] | None,
    where: str | Path,
    info: dict[str, Any],
) -> RawDataset:
    """Validate arrays and build the :class:`RawDataset` (float32 x, int64 y)."""
    x = np.asarray(x)
    y = np.asarray(y)
    if y.ndim != 1:
        raise DataReadError(f"{where}: labels must be one-dimensional, got shape {y.shape}")
    if x.ndim < 1 or x.shape[0] != y.shape[0]:
        raise DataReadError(
            f"{where}: number of samples differs between features ({x.shape[0] if x.ndim else 0}) "
            f"and labels ({y.shape[0]})"
        )
    if y.shape[0] == 0:
        raise DataReadError(f"{where}: dataset contains no samples")
    if not (np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_):
        raise DataReadError(f"{where}: labels must be integers, got dtype {y.dtype}")
    y = y.astype(np.int64, copy=False)
    if int(y.min()) < 0:
        raise DataReadError(f"{where}: labels must be non-negative, found {int(y.min())}")
    if class_names is None:
        class_names = default_class_names(y)
    class_names = [str(c) for c in class_names]
    if int(y.max()) >= len(class_names):
        raise DataReadError(
            f"{where}: label {int(y.max())} is out of range for {len(class_names)} class name(s)"
        )
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise DataReadError(f"{where}: features contain NaN or infinite values")
    return RawDataset(x=x, y=np.ascontiguousarray(y), class_names=class_names, info=info)
