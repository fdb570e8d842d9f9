"""A PNG of a lineage graph, drawn with matplotlib (Agg) from the same layout as the SVG."""

from __future__ import annotations

import io
from typing import Any

from autokd.lineage.layout import MISSING_COLOR, STALE_COLOR, color, layout, shorten, title

DPI = 100


def to_png(graph: Any) -> bytes:
    """The graph as PNG bytes (stale nodes and edges dashed red, missing parents dotted grey)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
    from matplotlib.path import Path as MplPath

    boxes, width, height = layout(graph.nodes, graph.edges)
    width = max(width, 300.0)
    fig = plt.figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)  # y grows downwards, as in the SVG
    ax.axis("off")
    for e in graph.edges:
        if e.source not in boxes or e.target not in boxes:
            continue
        a, b = boxes[e.source], boxes[e.target]
        x1, y1, x2, y2 = a.x + a.w, a.cy, b.x, b.cy
        mid = (x1 + x2) / 2
        path = MplPath([(x1, y1), (mid, y1), (mid, y2), (x2, y2)],
                       [MplPath.MOVETO, MplPath.CURVE4, MplPath.CURVE4, MplPath.CURVE4])
        ax.add_patch(FancyArrowPatch(path=path, arrowstyle="-|>", mutation_scale=10,
                                     color=STALE_COLOR if e.stale else "#6b7280",
                                     linewidth=2 if e.stale else 1.0, linestyle="--" if e.stale else "-"))
    for nid, node in graph.nodes.items():
        box = boxes[nid]
        edge_color, style, lw, fill = "#374151", "-", 1.0, color(node.kind)
        if node.stale:
            edge_color, style, lw = STALE_COLOR, "--", 2.2
        if node.missing:
            edge_color, style, fill = MISSING_COLOR, ":", "#ffffff"
        ax.add_patch(FancyBboxPatch((box.x, box.y), box.w, box.h, boxstyle="round,pad=0,rounding_size=7",
                                    facecolor=fill, edgecolor=edge_color, linewidth=lw, linestyle=style))
        ax.text(box.x + 8, box.y + 17, title(node), fontsize=8, weight="bold",
                va="baseline", color="#111827")
        second = node.headline() or node.status
        if node.stale:
            second = "STALE · " + second if second else "STALE: parent rebuilt"
        if node.missing:
            second = "MISSING"
        ax.text(box.x + 8, box.y + 34, shorten(second, 38), fontsize=7.5, va="baseline",
                color=STALE_COLOR if node.stale else "#111827")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, facecolor="white")
    plt.close(fig)
    return buf.getvalue()
