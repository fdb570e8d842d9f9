"""Image files sorted into one sub-directory per class (``image_folder``), read with Pillow."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .base import DataReadError, RawDataset, finalize, register_reader, require_dir, require_path

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"})


def parse_image_size(image_size: Any) -> tuple[int, int] | None:
    """``image_size`` (an int or ``[H, W]``) as ``(H, W)``; None stays None."""
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


def list_images(root: Path) -> tuple[list[Path], list[tuple[Path, int]]]:
    """The class directories (sorted) and every ``(image file, label)`` (sorted per class)."""
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
             and f.suffix.lower() in IMAGE_EXTENSIONS),
            key=lambda f: f.name,
        )
        if not imgs:
            raise DataReadError(
                f"class folder {d} contains no image files ({', '.join(IMAGE_EXTENSIONS)})"
            )
        files.extend((f, label) for f in imgs)
    return class_dirs, files


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

    root = require_dir(require_path(path, "image_folder"))
    size = parse_image_size(image_size)
    if channels not in (None, 1, 3):
        raise DataReadError(f"invalid channels {channels!r}; expected 1 or 3")
    class_dirs, files = list_images(root)

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
        channels = 1 if all(m in GRAY_MODES for m in modes) else 3
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
    return finalize(x, y, names, root, info)
