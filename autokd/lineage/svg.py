"""A self-contained SVG of a lineage graph (no script, no external font or stylesheet), so
an HTML report can inline it and a browser offline draws it.

Boxes come from :func:`autokd.lineage.layout.layout`; each has a ``<title>`` tooltip with
the full id, hash and metrics. Stale nodes and edges are dashed red, missing parents dotted
grey; a legend at the bottom says so.
"""

from __future__ import annotations

import json
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from autokd.lineage.layout import MISSING_COLOR, STALE_COLOR, Box, color, layout, shorten, title

LEGEND_H = 28.0


def _tooltip(node: Any) -> str:
    parts = [f"{node.kind}: {node.id}"]
    if node.sha256:
        parts.append(f"sha256: {node.sha256}")
    if node.status:
        parts.append(f"status: {node.status}")
    if node.params:
        parts.append("params: " + json.dumps(node.params, sort_keys=True, default=str))
    for k, v in list(node.metrics.items())[:8]:
        parts.append(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}")
    if node.stale:
        parts.append("STALE: a parent was rebuilt since this was made")
    if node.missing:
        parts.append("MISSING: named as a parent, no manifest found")
    return "\n".join(parts)


def _node_svg(node: Any, box: Box) -> str:
    stroke, dash, width, fill = "#374151", "", 1.2, color(node.kind)
    if node.stale:
        stroke, dash, width = STALE_COLOR, ' stroke-dasharray="6 3"', 2.5
    if node.missing:
        stroke, dash, fill = MISSING_COLOR, ' stroke-dasharray="2 3"', "#ffffff"
    cls = "node" + (" stale" if node.stale else "") + (" missing" if node.missing else "")
    second = node.headline() or node.status
    if node.stale:
        second = ("STALE · " + second) if second else "STALE: parent rebuilt"
    if node.missing:
        second = "MISSING"
    text_color = STALE_COLOR if node.stale else "#111827"
    return (
        f'<g class="{cls}" data-id={quoteattr(node.id)} data-kind={quoteattr(node.kind)}>'
        f"<title>{escape(_tooltip(node))}</title>"
        f'<rect x="{box.x:.1f}" y="{box.y:.1f}" width="{box.w:.1f}" height="{box.h:.1f}" rx="7" '
        f'fill="{fill}" stroke="{stroke}" stroke-width="{width}"{dash}/>'
        f'<text x="{box.x + 8:.1f}" y="{box.y + 18:.1f}" font-size="11" font-weight="bold" '
        f'fill="#111827">{escape(title(node))}</text>'
        f'<text x="{box.x + 8:.1f}" y="{box.y + 35:.1f}" font-size="10" fill="{text_color}">'
        f"{escape(shorten(second, 38))}</text></g>"
    )


def _edge_svg(edge: Any, a: Box, b: Box) -> str:
    x1, y1, x2, y2 = a.x + a.w, a.cy, b.x, b.cy
    mid = (x1 + x2) / 2
    stroke, marker, extra = "#6b7280", "arrow", ""
    if edge.stale:
        stroke, marker, extra = STALE_COLOR, "arrow-stale", ' stroke-dasharray="6 3"'
    tip = f"{edge.source} -> {edge.target}"
    if edge.stale:
        tip += f" (stale: recorded {edge.recorded_sha256[:12]}, now {edge.current_sha256[:12]})"
    return (
        f'<g class="edge{" stale" if edge.stale else ""}"><title>{escape(tip)}</title>'
        f'<path d="M{x1:.1f},{y1:.1f} C{mid:.1f},{y1:.1f} {mid:.1f},{y2:.1f} {x2 - 2:.1f},{y2:.1f}" '
        f'fill="none" stroke="{stroke}" stroke-width="{2 if edge.stale else 1.2}"{extra} '
        f'marker-end="url(#{marker})"/></g>'
    )


def to_svg(graph: Any) -> str:
    """The graph as one ``<svg>`` element (a string; UTF-8, no XML declaration)."""
    boxes, width, height = layout(graph.nodes, graph.edges)
    width = max(width, 520.0)
    total = height + LEGEND_H
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="autokd-lineage" width="{width:.0f}" '
        f'height="{total:.0f}" viewBox="0 0 {width:.0f} {total:.0f}" '
        f'font-family="Helvetica, Arial, sans-serif">',
        "<defs>",
        '<marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#6b7280"/></marker>',
        '<marker id="arrow-stale" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        f'orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="{STALE_COLOR}"/></marker>',
        "</defs>",
        f'<rect x="0" y="0" width="{width:.0f}" height="{total:.0f}" fill="#ffffff"/>',
    ]
    for e in graph.edges:
        if e.source in boxes and e.target in boxes:
            out.append(_edge_svg(e, boxes[e.source], boxes[e.target]))
    for nid in sorted(graph.nodes):
        out.append(_node_svg(graph.nodes[nid], boxes[nid]))
    y = height + 12
    stale_n = sum(1 for n in graph.nodes.values() if n.stale)
    out.append(
        f'<g class="legend" font-size="10" fill="#374151">'
        f'<text x="{20}" y="{y + 4:.1f}">{len(graph.nodes)} artifacts, {len(graph.edges)} links; '
        f"{stale_n} stale</text>"
        f'<line x1="230" y1="{y:.1f}" x2="262" y2="{y:.1f}" stroke="{STALE_COLOR}" stroke-width="2" '
        f'stroke-dasharray="6 3"/><text x="268" y="{y + 4:.1f}">stale (a parent was rebuilt)</text>'
        f'<line x1="420" y1="{y:.1f}" x2="452" y2="{y:.1f}" stroke="{MISSING_COLOR}" stroke-width="1.5" '
        f'stroke-dasharray="2 3"/><text x="458" y="{y + 4:.1f}">missing</text></g>'
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"
