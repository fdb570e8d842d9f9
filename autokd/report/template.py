"""The page around the sections: inline CSS, the small inline sorting script, the contents list.

The page requests nothing: no external stylesheet, script, font or image; every image is a
``data:`` URI or inline SVG. A Content-Security-Policy ``default-src 'none'`` says so to the
browser too (inline style/script and data: images only).
"""

from __future__ import annotations

from typing import Sequence

from autokd.report.html import Section, esc

CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
       "base-uri 'none'; form-action 'none'")

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #1d2430; background: #f6f7f9; }
header { background: #1f3a5f; color: #fff; padding: 14px 28px; }
header h1 { margin: 0; font-size: 22px; }
header p { margin: 4px 0 0; opacity: .85; }
nav { padding: 8px 28px; background: #e8ecf2; border-bottom: 1px solid #d0d6df; }
nav a { margin-right: 14px; color: #1f3a5f; text-decoration: none; }
nav a.missing { color: #8a94a3; }
main { padding: 8px 28px 40px; max-width: 1400px; }
section.report-section { background: #fff; border: 1px solid #d8dde5; border-radius: 6px; padding: 6px 18px 16px; margin: 16px 0; }
section h2 { font-size: 18px; border-bottom: 1px solid #e3e7ee; padding-bottom: 4px; }
section h3 { font-size: 15px; margin: 18px 0 6px; }
table.data { border-collapse: collapse; margin: 8px 0; font-size: 13px; }
table.data th, table.data td { border: 1px solid #d8dde5; padding: 3px 8px; text-align: left; }
table.data th { background: #eef1f5; }
table.data td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th[aria-sort=ascending]::after { content: " \\25B2"; font-size: 10px; }
table.sortable th[aria-sort=descending]::after { content: " \\25BC"; font-size: 10px; }
table.confusion td { text-align: center; min-width: 24px; }
.scroll { overflow-x: auto; max-height: 520px; overflow-y: auto; }
img.plot { max-width: 100%; height: auto; display: block; margin: 8px 0; }
p.missing { color: #8a4b00; background: #fff6e5; border-left: 4px solid #e0a030; padding: 6px 10px; }
p.note { color: #4a5566; font-size: 13px; }
code { background: #f0f2f5; padding: 1px 4px; border-radius: 3px; }
.lineage { overflow: auto; max-height: 1200px; }
.lineage svg { max-width: 100%; height: auto; }
.pair { display: flex; flex-wrap: wrap; gap: 18px; align-items: flex-start; }
"""

# Hand-written: a click on a sortable table's header sorts its rows by the cells' data-v
# (numerically when every non-blank value is a number; blanks always last).
SCRIPT = """
(function () {
  function sortBy(table, th, col) {
    var asc = th.getAttribute("aria-sort") !== "ascending";
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    function key(r) { return r.cells[col] ? r.cells[col].getAttribute("data-v") || "" : ""; }
    var numeric = rows.every(function (r) { var v = key(r); return v === "" || !isNaN(Number(v)); });
    rows.sort(function (a, b) {
      var x = key(a), y = key(b);
      if (x === "" || y === "") { return (x === "") - (y === ""); }
      var c = numeric ? Number(x) - Number(y) : x.localeCompare(y);
      return asc ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
      th.addEventListener("click", function () { sortBy(table, th, col); });
    });
  });
})();
"""


def render_page(sections: Sequence[Section], title: str = "autokd report", subtitle: str = "") -> str:
    """The whole document: header, contents, the sections in order, the script last."""
    nav = "".join(
        f'<a href="#{esc(s.key)}" class="{"available" if s.available else "missing"}">{esc(s.title)}</a>'
        for s in sections
    )
    body = "\n".join(s.render() for s in sections)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f'<meta http-equiv="Content-Security-Policy" content="{esc(CSP)}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<link rel=\"icon\" href=\"data:,\">\n<style>{CSS}</style>\n</head>\n<body>\n"
        f"<header><h1>{esc(title)}</h1>" + (f"<p>{esc(subtitle)}</p>" if subtitle else "") + "</header>\n"
        f"<nav>{nav}</nav>\n<main>\n{body}\n</main>\n<script>{SCRIPT}</script>\n</body>\n</html>\n"
    )
