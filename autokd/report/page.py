"""Assemble the report: every section in a fixed order, one self-contained HTML string.

Deterministic: the same files under ``root`` give the same bytes (no timestamps, no absolute
paths from this module, sections and search folders in a fixed order, PNGs without metadata).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from autokd.report.html import Section
from autokd.report.searches import arch_section, hparams_section
from autokd.report.sections import confusion_section, curves_section, lineage_section, methods_section, metrics_section
from autokd.report.template import render_page
from autokd.utils.io import atomic_path

DEFAULT_OUT = Path("reports") / "report.html"

#: (section key, builder), in page order.
BUILDERS: tuple[tuple[str, Callable[[Path], Section]], ...] = (
    ("metrics", metrics_section),
    ("curves", curves_section),
    ("confusion", confusion_section),
    ("methods", methods_section),
    ("hparams", hparams_section),
    ("arch", arch_section),
    ("lineage", lineage_section),
)
SECTION_KEYS = tuple(k for k, _ in BUILDERS)


@dataclass(frozen=True)
class Report:
    html: str
    sections: tuple[Section, ...]

    @property
    def available(self) -> list[str]:
        return [s.key for s in self.sections if s.available]


def build_report(root: str | Path = ".") -> Report:
    """Every section of the project under ``root`` (absent inputs give 'not available' notes)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a folder (--root names the project root)")
    sections = tuple(build(root) for _, build in BUILDERS)
    n = sum(s.available for s in sections)
    subtitle = f"{n} of {len(sections)} sections available; a self-contained page (no network requests)."
    return Report(render_page(sections, "autokd report", subtitle), sections)


def write_report(root: str | Path = ".", out: str | Path | None = None) -> tuple[Path, Report]:
    """Build the report and write it atomically to ``out`` (default ``<root>/reports/report.html``)."""
    report = build_report(root)
    path = Path(root) / DEFAULT_OUT if out is None else Path(out)
    with atomic_path(path) as tmp:  # UTF-8 whatever the locale (the page has λ, τ, ±)
        tmp.write_bytes(report.html.encode("utf-8"))
    return path, report
