"""On-disk dataset readers.

Every reader turns one on-disk dataset format into a :class:`RawDataset`:
plain numpy arrays plus class names, with no torch dependency.  Readers only
read local files; nothing here ever downloads anything.

Conventions shared by all readers:

* ``x`` is ``float32``.  Images have shape ``(N, C, H, W)`` with values in
  ``[0, 1]`` (``uint8 / 255``); tabular data has shape ``(N, D)``.
* ``y`` is ``int64`` with shape ``(N,)`` and values in ``0..K-1`` where
  ``K == len(class_names)``.
* Every problem with the input (missing path, bad magic number, truncated
  file, non-numeric CSV cell, unknown option, ...) raises
  :class:`DataReadError` with a message naming the file and what is wrong.

Sources (keys of :data:`READERS`):

``digits``       scikit-learn's bundled 8x8 digits (``path`` is ignored).
``mnist_idx``    MNIST / Fashion-MNIST IDX files, optionally gzipped.
``cifar10``      CIFAR-10 "binary version" (``data_batch_*.bin``, ``test_batch.bin``).
``cifar100``     CIFAR-100 "binary version" (``train.bin``, ``test.bin``).
``image_folder`` ``path/<class_name>/*.png|jpg|jpeg|bmp|gif``.
``csv``          a CSV file with a header row and a label column.
``npz``          a numpy ``.npz`` archive (loaded with ``allow_pickle=False``).

Use :func:`read_dataset` as the entry point::

    ds = read_dataset("mnist_idx", "data/mnist", subset="train")
"""

from __future__ import annotations

import csv
import gzip
import inspect
import math
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

__all__ = [
    "DataReadError",
    "RawDataset",
    "READERS",
    "read_dataset",
    "register_reader",
]


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

_SUBSETS = ("all", "train", "test")
_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
_GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"})

CIFAR10_CLASS_NAMES = [
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
]


def register_reader(name: str) -> Callable[[Reader], Reader]:
    """Decorator registering ``fn`` in :data:`READERS` under ``name``."""

    def deco(fn: Reader) -> Reader:
        READERS[name] = fn
        return fn

    return deco


def read_dataset(source: str, path: str | os.PathLike[str] | None, **options: Any) -> RawDataset:
    """Read dataset ``source`` from ``path`` with reader-specific ``options``.

    Raises:
        DataReadError: unknown source, unknown option, or any problem with
            the data on disk.
    """
    try:
        reader = READERS[source]
    except KeyError:
        raise DataReadError(
            f"unknown data source {source!r}; known sources: {', '.join(sorted(READERS))}"
        ) from None
    _check_options(source, reader, options)
    return reader(path, **options)


# ---------------------------------------------------------------------------
# shared helpers
# ---------------------------------------------------------------------------


def _check_options(source: str, reader: Reader, options: dict[str, Any]) -> None:
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


def _require_path(path: str | os.PathLike[str] | None, source: str) -> Path:
    """Return ``path`` as an existing :class:`Path` or raise DataReadError."""
    if path is None or str(path) == "":
        raise DataReadError(f"data source {source!r} needs a data path, but none was given")
    p = Path(path).expanduser()
    if not p.exists():
        raise DataReadError(f"data path not found: {p}")
    return p


def _require_dir(p: Path) -> Path:
    if not p.is_dir():
        raise DataReadError(f"data path is not a directory: {p}")
    return p


def _require_file(p: Path) -> Path:
    if not p.is_file():
        raise DataReadError(f"data path is not a file: {p}")
    return p


def _check_subset(subset: Any) -> str:
    if subset not in _SUBSETS:
        raise DataReadError(f"invalid subset {subset!r}; expected one of {', '.join(_SUBSETS)}")
    return subset


def _default_class_names(y: np.ndarray) -> list[str]:
    """Names ``"0".."max(y)"`` for datasets without stored class names."""
    k = int(y.max()) + 1 if y.size else 0
    return [str(i) for i in range(k)]


def _finalize(
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
        class_names = _default_class_names(y)
    class_names = [str(c) for c in class_names]
    if int(y.max()) >= len(class_names):
        raise DataReadError(
            f"{where}: label {int(y.max())} is out of range for {len(class_names)} class name(s)"
        )
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise DataReadError(f"{where}: features contain NaN or infinite values")
    return RawDataset(x=x, y=np.ascontiguousarray(y), class_names=class_names, info=info)


# ---------------------------------------------------------------------------
# digits (scikit-learn)
# ---------------------------------------------------------------------------


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
    return _finalize(
        x, y, [str(i) for i in range(10)], "digits", {"format": "digits", "source": "sklearn"}
    )


# ---------------------------------------------------------------------------
# MNIST IDX
# ---------------------------------------------------------------------------

_IDX_IMAGES_MAGIC = 2051
_IDX_LABELS_MAGIC = 2049
_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _find_idx_file(directory: Path, name: str) -> Path:
    """Locate ``name`` (or ``name.gz``; also the ``.idx`` spelling) in ``directory``."""
    stems = [name, name.replace("-idx", ".idx")]
    for stem in stems:
        for candidate in (directory / stem, directory / f"{stem}.gz"):
            if candidate.is_file():
                return candidate
    raise DataReadError(f"data path not found: {directory / name} (nor {name}.gz) in {directory}")


def _read_idx(path: Path, expected_magic: int) -> np.ndarray:
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
    directory = _require_dir(_require_path(path, "mnist_idx"))
    subset = _check_subset(subset)
    splits = ["train", "test"] if subset == "all" else [subset]
    xs, ys, sizes = [], [], {}
    for split in splits:
        img_name, lbl_name = _MNIST_FILES[split]
        img_path = _find_idx_file(directory, img_name)
        lbl_path = _find_idx_file(directory, lbl_name)
        images = _read_idx(img_path, _IDX_IMAGES_MAGIC)
        labels = _read_idx(lbl_path, _IDX_LABELS_MAGIC)
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
    return _finalize(x, y, names, directory, info)


# ---------------------------------------------------------------------------
# CIFAR binary
# ---------------------------------------------------------------------------

_CIFAR_PIXELS = 3 * 32 * 32


def _resolve_cifar_dir(path: Path, subdir: str, marker: str) -> Path:
    """Accept the data directory itself or a parent containing ``subdir``."""
    _require_dir(path)
    if (path / marker).exists():
        return path
    if (path / subdir).is_dir():
        return path / subdir
    return path  # missing files are reported by _read_cifar_records


def _read_cifar_records(path: Path, label_bytes: int) -> np.ndarray:
    """Read a CIFAR binary file as an ``(n, label_bytes + 3072)`` uint8 array."""
    if not path.is_file():
        raise DataReadError(f"data path not found: {path}")
    record = label_bytes + _CIFAR_PIXELS
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


def _read_names_file(path: Path) -> list[str] | None:
    """Non-empty stripped lines of a class-names text file, or None if absent."""
    if not path.is_file():
        return None
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise DataReadError(f"cannot read class names file {path}: {e}") from e
    return [line.strip() for line in text.splitlines() if line.strip()]


def _read_cifar(
    directory: Path,
    files: dict[str, list[str]],
    subset: str,
    label_bytes: int,
    label_index: int,
) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Read the files of the requested splits; returns (x, y, split sizes)."""
    splits = ["train", "test"] if subset == "all" else [subset]
    xs, ys, sizes = [], [], {}
    for split in splits:
        n = 0
        for name in files[split]:
            rec = _read_cifar_records(directory / name, label_bytes)
            ys.append(rec[:, label_index])
            xs.append(rec[:, label_bytes:].reshape(-1, 3, 32, 32))
            n += rec.shape[0]
        sizes[split] = n
    x = np.concatenate(xs).astype(np.float32) / 255.0
    y = np.concatenate(ys).astype(np.int64)
    return x, y, sizes


def _check_names(names: list[str] | None, k: int, names_path: Path) -> list[str]:
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
    root = _require_path(path, "cifar10")
    directory = _resolve_cifar_dir(root, "cifar-10-batches-bin", "data_batch_1.bin")
    subset = _check_subset(subset)
    files = {"train": [f"data_batch_{i}.bin" for i in range(1, 6)], "test": ["test_batch.bin"]}
    x, y, sizes = _read_cifar(directory, files, subset, label_bytes=1, label_index=0)
    meta = directory / "batches.meta.txt"
    names = _read_names_file(meta)
    names = CIFAR10_CLASS_NAMES if names is None else _check_names(names, 10, meta)
    info = {"format": "cifar10", "path": str(directory), "subset": subset, "splits": sizes}
    return _finalize(x, y, names, directory, info)


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
    root = _require_path(path, "cifar100")
    directory = _resolve_cifar_dir(root, "cifar-100-binary", "train.bin")
    subset = _check_subset(subset)
    if label not in ("fine", "coarse"):
        raise DataReadError(f"invalid label {label!r} for cifar100; expected 'fine' or 'coarse'")
    files = {"train": ["train.bin"], "test": ["test.bin"]}
    label_index = 1 if label == "fine" else 0
    x, y, sizes = _read_cifar(directory, files, subset, label_bytes=2, label_index=label_index)
    k = 100 if label == "fine" else 20
    names_path = directory / f"{label}_label_names.txt"
    names = _check_names(_read_names_file(names_path), k, names_path)
    info = {
        "format": "cifar100",
        "path": str(directory),
        "subset": subset,
        "label": label,
        "splits": sizes,
    }
    return _finalize(x, y, names, directory, info)


# ---------------------------------------------------------------------------
# image folder
# ---------------------------------------------------------------------------


def _parse_image_size(image_size: Any) -> tuple[int, int] | None:
    if image_size is None:
        return None
    if isinstance(image_size, int) and not isinstance(image_size, bool):
        image_size = [image_size, image_size]
    try:
        h, w = (int(v) for v in image_size)
    except (TypeError, ValueError):
        raise DataReadError(
            f"invalid image_size {image_size!r}; expected [height, width]"
        ) from None
    if h <= 0 or w <= 0:
        raise DataReadError(f"invalid image_size {image_size!r}; both sides must be positive")
    return h, w


@register_reader("image_folder")
def read_image_folder(
    path: str | os.PathLike[str] | None,
    *,
    image_size: Sequence[int] | int | None = None,
    channels: int | None = None,
) -> RawDataset:
    """Images in ``path/<class_name>/*.{png,jpg,jpeg,bmp,gif}``.

    Classes are the sub-directories sorted by name; files are sorted too.

    Options:
        image_size: ``[H, W]`` to resize every image to (bilinear).  Without
            it all images must already share one size.
        channels: ``1`` (grayscale) or ``3`` (RGB).  Default: ``1`` when every
            image is grayscale, else ``3``.
    """
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError as e:  # pragma: no cover - Pillow is a project dependency
        raise DataReadError(f"data source 'image_folder' needs Pillow: {e}") from e

    root = _require_dir(_require_path(path, "image_folder"))
    size = _parse_image_size(image_size)
    if channels not in (None, 1, 3):
        raise DataReadError(f"invalid channels {channels!r}; expected 1 or 3")

    class_dirs = sorted(
        (d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")),
        key=lambda d: d.name,
    )
    if not class_dirs:
        raise DataReadError(f"no class sub-directories found in image folder {root}")
    files: list[tuple[Path, int]] = []
    for label, d in enumerate(class_dirs):
        imgs = sorted(
            (f for f in d.iterdir()
             if f.is_file() and not f.name.startswith(".")
             and f.suffix.lower() in _IMAGE_EXTENSIONS),
            key=lambda f: f.name,
        )
        if not imgs:
            raise DataReadError(
                f"class folder {d} contains no image files ({', '.join(_IMAGE_EXTENSIONS)})"
            )
        files.extend((f, label) for f in imgs)

    # Pass 1: headers only (lazy open) to decide channels and check sizes.
    modes: list[str] = []
    first_size: tuple[int, int] | None = None
    first_file: Path | None = None
    for f, _ in files:
        try:
            with Image.open(f) as im:
                mode, (w, h) = im.mode, im.size
        except (UnidentifiedImageError, OSError) as e:
            raise DataReadError(f"cannot read image {f}: {e}") from e
        modes.append(mode)
        if size is None:
            if first_size is None:
                first_size, first_file = (h, w), f
            elif (h, w) != first_size:
                raise DataReadError(
                    f"images have different sizes: {f} is {h}x{w} (HxW) but {first_file} is "
                    f"{first_size[0]}x{first_size[1]}; set the image_size option to resize them"
                )
    if channels is None:
        channels = 1 if all(m in _GRAY_MODES for m in modes) else 3
    out_h, out_w = size if size is not None else first_size  # type: ignore[misc]
    pil_mode = "L" if channels == 1 else "RGB"

    # Pass 2: decode, convert and (optionally) resize.
    x = np.empty((len(files), channels, out_h, out_w), dtype=np.float32)
    for i, (f, _) in enumerate(files):
        try:
            with Image.open(f) as im:
                im = im.convert(pil_mode)
                if im.size != (out_w, out_h):
                    im = im.resize((out_w, out_h), Image.BILINEAR)
                arr = np.asarray(im, dtype=np.uint8)
        except (UnidentifiedImageError, OSError) as e:
            raise DataReadError(f"cannot read image {f}: {e}") from e
        if arr.ndim == 2:
            arr = arr[None, :, :]
        else:
            arr = arr.transpose(2, 0, 1)
        x[i] = arr / np.float32(255.0)
    y = np.array([label for _, label in files], dtype=np.int64)
    names = [d.name for d in class_dirs]
    info = {"format": "image_folder", "path": str(root), "channels": channels}
    return _finalize(x, y, names, root, info)


# ---------------------------------------------------------------------------
# CSV
# ---------------------------------------------------------------------------


def _parse_int(s: str) -> int | None:
    try:
        return int(s)
    except ValueError:
        return None


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
    file = _require_file(_require_path(path, "csv"))
    try:
        with open(file, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh, delimiter=delimiter)
            header = next(reader, None)
            if header is None:
                raise DataReadError(f"CSV file {file} is empty (expected a header row)")
            header = [h.strip() for h in header]
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

            rows: list[list[float]] = []
            labels: list[str] = []
            for row in reader:
                line = reader.line_num
                if not row or all(not c.strip() for c in row):
                    continue  # blank line
                if len(row) != len(header):
                    raise DataReadError(
                        f"CSV file {file}, row {line}: expected {len(header)} fields, "
                        f"got {len(row)}"
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
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataReadError(f"cannot read CSV file {file}: {e}") from e

    if not rows:
        raise DataReadError(f"CSV file {file} has a header but no data rows")
    as_ints = [_parse_int(v) for v in labels]
    if all(v is not None for v in as_ints):
        uniq_int = sorted(set(as_ints))  # type: ignore[type-var]
        index = {v: i for i, v in enumerate(uniq_int)}
        y = np.array([index[v] for v in as_ints], dtype=np.int64)
        names = [str(v) for v in uniq_int]
    else:
        uniq = sorted(set(labels))
        index_s = {v: i for i, v in enumerate(uniq)}
        y = np.array([index_s[v] for v in labels], dtype=np.int64)
        names = uniq
    x = np.array(rows, dtype=np.float32).reshape(len(rows), len(feat_idx))
    info = {
        "format": "csv",
        "path": str(file),
        "label_column": label_column,
        "feature_columns": [header[i] for i in feat_idx],
    }
    return _finalize(x, y, names, file, info)


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
    file = _require_file(_require_path(path, "npz"))
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

    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise DataReadError(f"labels {y_key!r} in {file} must be integers")
        y = y.astype(np.int64)
    elif y.dtype.kind not in "biu":
        raise DataReadError(f"labels {y_key!r} in {file} must be integers, got dtype {y.dtype}")

    names: list[str] | None = None
    if names_arr is not None:
        if names_arr.dtype.kind == "S":
            names = [b.decode("utf-8", errors="replace") for b in names_arr.ravel()]
        elif names_arr.dtype.kind in "Uiu":
            names = [str(v) for v in names_arr.ravel()]
        else:
            raise DataReadError(
                f"class names {class_names_key!r} in {file} must be strings, "
                f"got dtype {names_arr.dtype}"
            )
    info = {"format": "npz", "path": str(file), "scaled_uint8": bool(scaled)}
    return _finalize(x, y, names, file, info)
