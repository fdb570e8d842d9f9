"""Array-shaped files: a CSV table with a label column (``csv``) and a numpy ``.npz``
archive (``npz``, never unpickled)."""

from __future__ import annotations

import csv
import math
import os
import zipfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .base import DataReadError, RawDataset, finalize, register_reader, require_file, require_path

# ---------------------------------------------------------------------------
# CSV
# ---------------------------------------------------------------------------


def _parse_int(s: str) -> int | None:
    try:
        return int(s)
    except ValueError:
        return None


def encode_labels(labels: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Map labels to ``0..K-1`` in sorted order; returns ``(y, class names)``.

    When every label parses as an integer they sort numerically (``2 < 7 < 10``) and the
    names are the integers written back (``"07"`` becomes ``"7"``); otherwise they sort as
    strings.
    """
    as_ints = [_parse_int(v) for v in labels]
    if all(v is not None for v in as_ints):
        try:
            values = np.array(as_ints, dtype=np.int64)
        except OverflowError:  # integers beyond int64: Python ints still sort numerically
            values = np.array(as_ints, dtype=object)
    else:
        values = np.array(labels, dtype=np.str_)
    uniq, inverse = np.unique(values, return_inverse=True)
    return inverse.reshape(-1).astype(np.int64), [str(v) for v in uniq.tolist()]


def _csv_columns(
    header: list[str], file: Path, label_column: str, feature_columns: Sequence[str] | None
) -> tuple[int, list[int]]:
    """Indices of the label column and of the feature columns in ``header``."""
    if label_column not in header:
        raise DataReadError(
            f"label column {label_column!r} not found in CSV file {file}; "
            f"columns are: {', '.join(header)}"
        )
    label_idx = header.index(label_column)
    if feature_columns is None:
        feat_idx = [i for i, h in enumerate(header) if i != label_idx]
    else:
        if isinstance(feature_columns, str):
            feature_columns = [feature_columns]
        missing = [c for c in feature_columns if c not in header]
        if missing:
            raise DataReadError(
                f"feature column(s) {', '.join(map(repr, missing))} not found in CSV "
                f"file {file}; columns are: {', '.join(header)}"
            )
        if label_column in feature_columns:
            raise DataReadError(
                f"label column {label_column!r} cannot also be a feature column"
            )
        feat_idx = [header.index(c) for c in feature_columns]
    if not feat_idx:
        raise DataReadError(f"CSV file {file} has no feature columns")
    return label_idx, feat_idx


def _csv_rows(
    reader: Any, header: list[str], file: Path, label_column: str, label_idx: int, feat_idx: list[int]
) -> tuple[list[list[float]], list[str]]:
    """The feature values and the label of every non-blank data row."""
    rows: list[list[float]] = []
    labels: list[str] = []
    for row in reader:
        line = reader.line_num
        if not row or all(not c.strip() for c in row):
            continue  # blank line
        if len(row) != len(header):
            raise DataReadError(
                f"CSV file {file}, row {line}: expected {len(header)} fields, got {len(row)}"
            )
        values = []
        for i in feat_idx:
            cell = row[i].strip()
            try:
                v = float(cell)
            except ValueError:
                v = math.nan
            if not math.isfinite(v):
                raise DataReadError(
                    f"CSV file {file}, row {line}, column {header[i]!r}: "
                    f"non-numeric value {row[i]!r}"
                )
            values.append(v)
        lab = row[label_idx].strip()
        if not lab:
            raise DataReadError(
                f"CSV file {file}, row {line}, column {label_column!r}: empty label"
            )
        rows.append(values)
        labels.append(lab)
    return rows, labels


@register_reader("csv")
def read_csv(
    path: str | os.PathLike[str] | None,
    *,
    label_column: str = "label",
    feature_columns: Sequence[str] | None = None,
    delimiter: str = ",",
) -> RawDataset:
    """A CSV file with a header row: ``(N, D)`` float32 features.

    Options:
        label_column: name of the label column (default ``"label"``).
        feature_columns: names of the feature columns to use (default: every
            column except the label column).
        delimiter: field separator (default ``","``).

    Labels may be strings or integers; their sorted unique values map to
    ``0..K-1`` (integers sorted numerically) and become the class names.
    """
    file = require_file(require_path(path, "csv"))
    try:
        with open(file, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh, delimiter=delimiter)
            header = next(reader, None)
            if header is None:
                raise DataReadError(f"CSV file {file} is empty (expected a header row)")
            header = [h.strip() for h in header]
            label_idx, feat_idx = _csv_columns(header, file, label_column, feature_columns)
            rows, labels = _csv_rows(reader, header, file, label_column, label_idx, feat_idx)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataReadError(f"cannot read CSV file {file}: {e}") from e

    if not rows:
        raise DataReadError(f"CSV file {file} has a header but no data rows")
    y, names = encode_labels(labels)
    x = np.array(rows, dtype=np.float32).reshape(len(rows), len(feat_idx))
    info = {
        "format": "csv",
        "path": str(file),
        "label_column": label_column,
        "feature_columns": [header[i] for i in feat_idx],
    }
    return finalize(x, y, names, file, info)


# ---------------------------------------------------------------------------
# NPZ
# ---------------------------------------------------------------------------


def _npz_get(archive: Any, key: str, file: Path) -> np.ndarray:
    """Fetch ``key`` from an open npz archive, translating every failure."""
    if key not in archive.files:
        raise DataReadError(
            f"key {key!r} not found in {file}; keys are: {', '.join(archive.files) or '(none)'}"
        )
    try:
        return archive[key]
    except ValueError as e:
        if "allow_pickle" in str(e) or "Object arrays" in str(e):
            raise DataReadError(
                f"array {key!r} in {file} has object dtype, which would need pickle to load; "
                "pickled data is never loaded for safety. Save it as a numeric (or, for "
                "class names, string) array instead"
            ) from e
        raise DataReadError(f"cannot read array {key!r} from {file}: {e}") from e
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        raise DataReadError(f"cannot read array {key!r} from {file}: {e}") from e


def _npz_features(x: np.ndarray, x_key: str, file: Path, channels_last: bool) -> tuple[np.ndarray, bool]:
    """``x`` as float32 in ``(N, D)`` or ``(N, C, H, W)``; also whether it was uint8-scaled."""
    if x.dtype.kind not in "biuf":
        raise DataReadError(f"array {x_key!r} in {file} must be numeric, got dtype {x.dtype}")
    scaled = x.dtype == np.uint8
    x = x.astype(np.float32) / np.float32(255.0) if scaled else x.astype(np.float32)
    if x.ndim == 4 and channels_last:
        x = x.transpose(0, 3, 1, 2)
    elif x.ndim == 3:
        x = x[:, None, :, :]
    elif x.ndim not in (2, 4):
        raise DataReadError(
            f"array {x_key!r} in {file} has shape {x.shape}; expected (N, D), (N, H, W) "
            "or (N, C, H, W)"
        )
    return x, scaled


def _npz_labels(y: np.ndarray, y_key: str, file: Path) -> np.ndarray:
    """``y`` as a 1-D integer array (integral floats and ``(N, 1)`` accepted)."""
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise DataReadError(f"labels {y_key!r} in {file} must be integers")
        y = y.astype(np.int64)
    elif y.dtype.kind not in "biu":
        raise DataReadError(f"labels {y_key!r} in {file} must be integers, got dtype {y.dtype}")
    return y


def _npz_names(names_arr: np.ndarray | None, key: str, file: Path) -> list[str] | None:
    """Class names from a bytes, str or integer array (None when the archive has none)."""
    if names_arr is None:
        return None
    if names_arr.dtype.kind == "S":
        return [b.decode("utf-8", errors="replace") for b in names_arr.ravel()]
    if names_arr.dtype.kind in "Uiu":
        return [str(v) for v in names_arr.ravel()]
    raise DataReadError(
        f"class names {key!r} in {file} must be strings, got dtype {names_arr.dtype}"
    )


@register_reader("npz")
def read_npz(
    path: str | os.PathLike[str] | None,
    *,
    x_key: str = "x",
    y_key: str = "y",
    class_names_key: str = "class_names",
    channels_last: bool = False,
) -> RawDataset:
    """A numpy ``.npz`` archive, always loaded with ``allow_pickle=False``.

    Options:
        x_key, y_key: names of the feature and label arrays.
        class_names_key: optional string array of class names (used if present).
        channels_last: ``x`` is ``(N, H, W, C)``; transpose to ``(N, C, H, W)``.

    ``x`` may be ``(N, D)``, ``(N, H, W)`` (a channel axis is added) or
    ``(N, C, H, W)``.  ``uint8`` arrays are scaled by ``1/255``; other
    numeric arrays are cast to float32 unchanged.  ``y`` must hold integers
    (integral floats are accepted).
    """
    file = require_file(require_path(path, "npz"))
    try:
        archive = np.load(file, allow_pickle=False)
    except ValueError as e:
        raise DataReadError(
            f"cannot load {file} without pickle (allow_pickle=False): {e}"
        ) from e
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        raise DataReadError(f"cannot read npz file {file}: {e}") from e
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataReadError(f"{file} is a single .npy array, expected an .npz archive")
    with archive:
        x = _npz_get(archive, x_key, file)
        y = _npz_get(archive, y_key, file)
        names_arr = (
            _npz_get(archive, class_names_key, file)
            if class_names_key and class_names_key in archive.files
            else None
        )

    x, scaled = _npz_features(x, x_key, file, channels_last)
    y = _npz_labels(y, y_key, file)
    names = _npz_names(names_arr, class_names_key, file)
    info = {"format": "npz", "path": str(file), "scaled_uint8": bool(scaled)}
    return finalize(x, y, names, file, info)
