"""``autokd report``: one self-contained HTML page of the project (no network requests).

    autokd report                                  reports/report.html under the current folder
    autokd report --root runs/x --out /tmp/x.html
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from autokd.cli.errors import fail, guard


def report(
    root: Path = typer.Option(Path("."), "--root", help="project root: reports/, dvclive/, searches/, artifacts/ are read"),
    out: Optional[Path] = typer.Option(None, "--out", help="HTML file to write (default: ROOT/reports/report.html)"),
) -> None:
    """Write one self-contained HTML report: metrics, curves, confusion, methods, searches, lineage."""
    from autokd.report import write_report

    if not root.is_dir():
        fail(f"{root}: not a folder (--root names the project root)", 2)
    if out is not None and out.is_dir():
        fail(f"{out}: is a folder; --out names the HTML file to write", 2)
    path, rep = guard(write_report, root, out, bad_input=(OSError,))  # e.g. --out not writable
    missing = [s.key for s in rep.sections if not s.available]
    typer.echo(f"wrote {path} ({len(rep.html.encode('utf-8')):,} bytes; {len(rep.available)} of "
               f"{len(rep.sections)} sections available" + (f"; not available: {', '.join(missing)}" if missing else "")
               + ")")
