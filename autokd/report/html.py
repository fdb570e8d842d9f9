"""HTML building blocks: escaping, numbers, tables (sortable), notes, images, sections.

Everything that reaches the page as text goes through :func:`esc`; attribute values too.
Builders return strings; nothing here reads files.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence


def esc(value: Any) -> str:
    """``value`` as HTML text (quotes escaped too, so it is safe inside attributes)."""
    return html.escape("" if value is None else str(value), quote=True)


def fmt(value: Any, digits: int = 4) -> str:
    """A readable cell: floats to ``digits`` significant figures, large/small in e-notation, None as a dash."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
            return f"{value:.{max(digits - 1, 1)}e}"
        return f"{value:.{digits}g}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def sort_value(value: Any) -> str:
    """What a sortable column compares: numbers as plain decimal text, everything else as text."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, (int, float)) and (not isinstance(value, float) or math.isfinite(value)):
        return repr(value)
    if value is None:
        return ""
    return fmt(value)


@dataclass(frozen=True)
class Cell:
    """A table cell: ``text`` shown (escaped), ``sort`` compared when sorting, optional title and CSS class."""

    text: str
    sort: str = ""
    title: str = ""
    cls: str = ""
    style: str = ""


def cell(value: Any, digits: int = 4, text: str | None = None, cls: str = "") -> Cell:
    shown = fmt(value, digits) if text is None else text
    num = isinstance(value, (int, float)) and not isinstance(value, bool)
    return Cell(shown, sort_value(value), cls=cls or ("num" if num else ""))


def table(headers: Sequence[str], rows: Iterable[Sequence[Cell | Any]], *, sortable: bool = False,
          table_id: str = "", caption: str = "", cls: str = "") -> str:
    """An HTML table; ``sortable`` ones sort by a click on a header (the page's inline script)."""
    classes = " ".join(c for c in ("data", "sortable" if sortable else "", cls) if c)
    attrs = f' class="{classes}"' + (f' id="{esc(table_id)}"' if table_id else "")
    out = [f"<table{attrs}>"]
    if caption:
        out.append(f"<caption>{esc(caption)}</caption>")
    hint = ' title="click to sort"' if sortable else ""
    out.append("<thead><tr>" + "".join(f'<th scope="col"{hint}>{esc(h)}</th>' for h in headers) + "</tr></thead>")
    out.append("<tbody>")
    for row in rows:
        tds = []
        for c in row:
            c = c if isinstance(c, Cell) else cell(c)
            a = f' data-v="{esc(c.sort)}"' if sortable else ""
            a += f' class="{esc(c.cls)}"' if c.cls else ""
            a += f' title="{esc(c.title)}"' if c.title else ""
            a += f' style="{esc(c.style)}"' if c.style else ""
            tds.append(f"<td{a}>{esc(c.text)}</td>")
        out.append("<tr>" + "".join(tds) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def note(text: str, cls: str = "note") -> str:
    return f'<p class="{esc(cls)}">{esc(text)}</p>'


def missing(what: str, run: str) -> str:
    """The note a section shows when its inputs are absent: what is missing and the command that makes it."""
    return f'<p class="missing">not available: {esc(what)}; run <code>{esc(run)}</code></p>'


def image(data_uri: str, alt: str, cls: str = "plot") -> str:
    if not data_uri.startswith("data:image/"):
        raise ValueError("only inline data: images belong in the report")
    return f'<img class="{esc(cls)}" alt="{esc(alt)}" src="{esc(data_uri)}">'


def heading(text: str, level: int = 3) -> str:
    return f"<h{level}>{esc(text)}</h{level}>"


def code(text: str) -> str:
    return f"<code>{esc(text)}</code>"


def para(*parts: str) -> str:
    """A paragraph of already-built HTML fragments (escape text with :func:`esc` first)."""
    return "<p>" + "".join(parts) + "</p>"


@dataclass(frozen=True)
class Section:
    """One section of the page: ``available`` is False when it shows only a 'not available' note."""

    key: str
    title: str
    body: str
    available: bool

    def render(self) -> str:
        state = "available" if self.available else "missing"
        return (f'<section id="{esc(self.key)}" class="report-section {state}" data-available="{str(self.available).lower()}">\n'
                f"<h2>{esc(self.title)}</h2>\n{self.body}\n</section>")
