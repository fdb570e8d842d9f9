"""Datasets that ship with a dependency: scikit-learn's 8x8 digits (``digits``)."""

from __future__ import annotations

import os

import numpy as np

from .base import DataReadError, RawDataset, finalize, register_reader


@register_reader("digits")
def read_digits(path: str | os.PathLike[str] | None = None) -> RawDataset:
    """scikit-learn's bundled 8x8 digits: ``(1797, 1, 8, 8)``, values ``/16``.

    ``path`` is ignored (the data ships with scikit-learn).
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:  # pragma: no cover - sklearn is a project dependency
        raise DataReadError(f"data source 'digits' needs scikit-learn: {e}") from e
    bunch = load_digits()
    x = (np.asarray(bunch.images, dtype=np.float32) / 16.0)[:, None, :, :]
    y = np.asarray(bunch.target, dtype=np.int64)
    return finalize(
        x, y, [str(i) for i in range(10)], "digits", {"format": "digits", "source": "sklearn"}
    )
