"""MNIST / Fashion-MNIST IDX files (``mnist_idx``), optionally gzipped."""

from __future__ import annotations

import gzip
import math
import os
from pathlib import Path
from typing import Sequence

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

IDX_IMAGES_MAGIC = 2051
IDX_LABELS_MAGIC = 2049
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def find_idx_file(directory: Path, name: str) -> Path:
    """Locate ``name`` (or ``name.gz``; also the ``.idx`` spelling) in ``directory``."""
    stems = [name, name.replace("-idx", ".idx")]
    for stem in stems:
        for candidate in (directory / stem, directory / f"{stem}.gz"):
            if candidate.is_file():
                return candidate
    raise DataReadError(f"data path not found: {directory / name} (nor {name}.gz) in {directory}")


def read_idx(path: Path, expected_magic: int) -> np.ndarray:
    """Parse an (optionally gzipped) IDX file of unsigned bytes into an array."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                data = fh.read()
        else:
            data = path.read_bytes()
    except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError
        raise DataReadError(f"cannot read IDX file {path}: {e}") from e
    if len(data) < 4:
        raise DataReadError(f"IDX file {path} is too short ({len(data)} bytes) to hold a header")
    magic = int.from_bytes(data[:4], "big")
    if magic != expected_magic:
        raise DataReadError(
            f"bad magic number in IDX file {path}: got {magic}, expected {expected_magic}"
        )
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataReadError(f"IDX file {path} is truncated inside its header")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = header + math.prod(dims)
    if len(data) != expected:
        raise DataReadError(
            f"wrong size for IDX file {path}: header declares dims {dims} "
            f"({expected} bytes in total) but the file has {len(data)} bytes"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


@register_reader("mnist_idx")
def read_mnist_idx(
    path: str | os.PathLike[str] | None,
    *,
    subset: str = "all",
    class_names: Sequence[str] | None = None,
) -> RawDataset:
    """MNIST / Fashion-MNIST IDX files in directory ``path``.

    Options:
        subset: ``"train"``, ``"test"`` or ``"all"`` (train then test).
        class_names: optional names for labels (default ``"0".."9"``).

    Returns images of shape ``(N, 1, H, W)`` with ``H, W`` from the header.
    """
    directory = require_dir(require_path(path, "mnist_idx"))
    subset = check_subset(subset)
    xs, ys, sizes = [], [], {}
    for split in splits_of(subset):
        img_name, lbl_name = MNIST_FILES[split]
        img_path = find_idx_file(directory, img_name)
        lbl_path = find_idx_file(directory, lbl_name)
        images = read_idx(img_path, IDX_IMAGES_MAGIC)
        labels = read_idx(lbl_path, IDX_LABELS_MAGIC)
        if images.shape[0] != labels.shape[0]:
            raise DataReadError(
                f"{img_path} holds {images.shape[0]} images but {lbl_path} holds "
                f"{labels.shape[0]} labels"
            )
        if xs and images.shape[1:] != xs[0].shape[2:]:
            raise DataReadError(
                f"{img_path}: image size {images.shape[1:]} differs from the train images "
                f"{xs[0].shape[2:]}"
            )
        xs.append(images[:, None, :, :])
        ys.append(labels)
        sizes[split] = int(images.shape[0])
    x = np.concatenate(xs).astype(np.float32) / 255.0
    y = np.concatenate(ys).astype(np.int64)
    names = list(class_names) if class_names is not None else [
        str(i) for i in range(max(10, int(y.max()) + 1))
    ]
    info = {"format": "mnist_idx", "path": str(directory), "subset": subset, "splits": sizes}
    return finalize(x, y, names, directory, info)
