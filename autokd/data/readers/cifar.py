"""CIFAR-10 / CIFAR-100 "binary version" files (``cifar10``, ``cifar100``)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .base import (
    DataReadError,
    RawDataset,
    check_subset,
    finalize,
    register_reader,
    require_dir,
    require_path,
    splits_of,
)

CIFAR_PIXELS = 3 * 32 * 32

CIFAR10_CLASS_NAMES = [
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
]


def resolve_cifar_dir(path: Path, subdir: str, marker: str) -> Path:
    """Accept the data directory itself or a parent containing ``subdir``."""
    require_dir(path)
    if (path / marker).exists():
        return path
    if (path / subdir).is_dir():
        return path / subdir
    return path  # missing files are reported by read_cifar_records


def read_cifar_records(path: Path, label_bytes: int) -> np.ndarray:
    """Read a CIFAR binary file as an ``(n, label_bytes + 3072)`` uint8 array."""
    if not path.is_file():
        raise DataReadError(f"data path not found: {path}")
    record = label_bytes + CIFAR_PIXELS
    size = path.stat().st_size
    if size == 0 or size % record:
        raise DataReadError(
            f"wrong size for CIFAR file {path}: {size} bytes is not a whole number of "
            f"{record}-byte records"
        )
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        raise DataReadError(f"cannot read CIFAR file {path}: {e}") from e
    return data.reshape(-1, record)


def read_names_file(path: Path) -> list[str] | None:
    """Non-empty stripped lines of a class-names text file, or None if absent."""
    if not path.is_file():
        return None
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise DataReadError(f"cannot read class names file {path}: {e}") from e
    return [line.strip() for line in text.splitlines() if line.strip()]


def read_cifar(
    directory: Path,
    files: dict[str, list[str]],
    subset: str,
    label_bytes: int,
    label_index: int,
) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Read the files of the requested splits; returns (x, y, split sizes)."""
    xs, ys, sizes = [], [], {}
    for split in splits_of(subset):
        n = 0
        for name in files[split]:
            rec = read_cifar_records(directory / name, label_bytes)
            ys.append(rec[:, label_index])
            xs.append(rec[:, label_bytes:].reshape(-1, 3, 32, 32))
            n += rec.shape[0]
        sizes[split] = n
    x = np.concatenate(xs).astype(np.float32) / 255.0
    y = np.concatenate(ys).astype(np.int64)
    return x, y, sizes


def check_names(names: list[str] | None, k: int, names_path: Path) -> list[str]:
    """The first ``k`` names (``"0".."k-1"`` without a names file); too few is an error."""
    if names is None:
        return [str(i) for i in range(k)]
    if len(names) < k:
        raise DataReadError(f"class names file {names_path} lists {len(names)} names, expected {k}")
    return names[:k]


@register_reader("cifar10")
def read_cifar10(path: str | os.PathLike[str] | None, *, subset: str = "all") -> RawDataset:
    """CIFAR-10 binary version: ``(N, 3, 32, 32)`` images, 10 classes.

    ``path`` is ``cifar-10-batches-bin`` itself or a directory containing it.
    Class names come from ``batches.meta.txt`` when present.
    """
    root = require_path(path, "cifar10")
    directory = resolve_cifar_dir(root, "cifar-10-batches-bin", "data_batch_1.bin")
    subset = check_subset(subset)
    files = {"train": [f"data_batch_{i}.bin" for i in range(1, 6)], "test": ["test_batch.bin"]}
    x, y, sizes = read_cifar(directory, files, subset, label_bytes=1, label_index=0)
    meta = directory / "batches.meta.txt"
    names = read_names_file(meta)
    names = CIFAR10_CLASS_NAMES if names is None else check_names(names, 10, meta)
    info = {"format": "cifar10", "path": str(directory), "subset": subset, "splits": sizes}
    return finalize(x, y, names, directory, info)


@register_reader("cifar100")
def read_cifar100(
    path: str | os.PathLike[str] | None, *, subset: str = "all", label: str = "fine"
) -> RawDataset:
    """CIFAR-100 binary version: ``(N, 3, 32, 32)`` images.

    Options:
        subset: ``"train"``, ``"test"`` or ``"all"``.
        label: ``"fine"`` (100 classes, default) or ``"coarse"`` (20 classes).

    Class names come from ``fine_label_names.txt`` / ``coarse_label_names.txt``.
    """
    root = require_path(path, "cifar100")
    directory = resolve_cifar_dir(root, "cifar-100-binary", "train.bin")
    subset = check_subset(subset)
    if label not in ("fine", "coarse"):
        raise DataReadError(f"invalid label {label!r} for cifar100; expected 'fine' or 'coarse'")
    files = {"train": ["train.bin"], "test": ["test.bin"]}
    label_index = 1 if label == "fine" else 0
    x, y, sizes = read_cifar(directory, files, subset, label_bytes=2, label_index=label_index)
    k = 100 if label == "fine" else 20
    names_path = directory / f"{label}_label_names.txt"
    names = check_names(read_names_file(names_path), k, names_path)
    info = {
        "format": "cifar100",
        "path": str(directory),
        "subset": subset,
        "label": label,
        "splits": sizes,
    }
    return finalize(x, y, names, directory, info)
