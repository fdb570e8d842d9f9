"""Reading what the report shows: JSON/YAML/TSV/CSV under a project root, tolerant of absence.

A missing file is ``None`` (the section then says what to run); a file that exists but cannot
be read raises :class:`ReportInputError` naming it, which the section shows instead of its
content (one broken file never hides the rest of the report). YAML via ``safe_load`` only.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any


class ReportInputError(ValueError):
    """An input file exists but is not what the report expects."""


def rel(root: Path, path: Path) -> str:
    """``path`` as shown on the page: relative to the root, with forward slashes."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def read_json(root: Path, relpath: str | Path) -> Any | None:
    path = root / relpath
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportInputError(f"{rel(root, path)}: not readable JSON ({exc})") from exc


def read_yaml(root: Path, relpath: str | Path) -> Any | None:
    import yaml

    path = root / relpath
    if not path.is_file():
        return None
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ReportInputError(f"{rel(root, path)}: not readable YAML ({exc})") from exc


def read_csv_rows(root: Path, relpath: str | Path) -> list[dict[str, str]] | None:
    path = root / relpath
    if not path.is_file():
        return None
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ReportInputError(f"{rel(root, path)}: not readable CSV ({exc})") from exc


def read_series(root: Path, path: Path) -> tuple[list[float], list[float]]:
    """A DVCLive ``.tsv`` (``step<TAB>value``): the steps and the values (non-numbers skipped)."""
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh, delimiter="\t"))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ReportInputError(f"{rel(root, path)}: not readable TSV ({exc})") from exc
    xs, ys = [], []
    for row in rows[1:]:
        if len(row) < 2:
            continue
        x, y = number(row[0]), number(row[-1])
        if x is not None and y is not None:
            xs.append(x)
            ys.append(y)
    return xs, ys


def number(value: Any) -> float | int | None:
    """A finite number from JSON or CSV text, else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            v = float(text)
        except ValueError:
            return None
        return v if math.isfinite(v) else None
    return None


def subdirs(path: Path) -> list[Path]:
    """Sorted child folders (empty if ``path`` is not a folder)."""
    return sorted((p for p in path.iterdir() if p.is_dir()), key=lambda p: p.name) if path.is_dir() else []
