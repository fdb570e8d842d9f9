"""A layered layout of the lineage graph (left to right), shared by the SVG and PNG renderers.

Rank = the longest path from a root (an artifact with no parents), so every edge points to
the right. Within a rank, nodes are ordered by the mean position of their parents (a few
barycentre sweeps, the usual Sugiyama heuristic), which keeps a chain's artifacts on one
line and cuts crossings; ties keep the id order, so the layout is deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

NODE_W = 230.0
NODE_H = 46.0
GAP_X = 80.0
GAP_Y = 16.0
MARGIN = 20.0


@dataclass
class Box:
    x: float  # left
    y: float  # top
    w: float = NODE_W
    h: float = NODE_H

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    @property
    def cy(self) -> float:
        return self.y + self.h / 2


def ranks(ids: Iterable[str], edges: Iterable[Any]) -> dict[str, int]:
    """Longest-path depth of each node from the roots (cycles, which manifests cannot form,
    are cut by ignoring back edges)."""
    ids = list(ids)
    parents: dict[str, list[str]] = {i: [] for i in ids}
    for e in edges:
        if e.source in parents and e.target in parents and e.source != e.target:
            parents[e.target].append(e.source)
    depth: dict[str, int] = {}
    visiting: set[str] = set()

    def visit(n: str) -> int:
        if n in depth:
            return depth[n]
        if n in visiting:
            return 0
        visiting.add(n)
        d = max((visit(p) + 1 for p in parents[n]), default=0)
        visiting.discard(n)
        depth[n] = d
        return d

    for i in ids:
        visit(i)
    return depth


def layout(ids: Iterable[str], edges: Iterable[Any], sweeps: int = 4) -> tuple[dict[str, Box], float, float]:
    """Boxes for every node id, and the canvas width and height."""
    ids = sorted(ids)
    edges = list(edges)
    depth = ranks(ids, edges)
    columns: dict[int, list[str]] = {}
    for i in ids:
        columns.setdefault(depth[i], []).append(i)
    parents: dict[str, list[str]] = {i: [] for i in ids}
    children: dict[str, list[str]] = {i: [] for i in ids}
    for e in edges:
        if e.source in parents and e.target in parents:
            parents[e.target].append(e.source)
            children[e.source].append(e.target)
    order = {i: float(k) for col in columns.values() for k, i in enumerate(col)}
    for sweep in range(sweeps):
        forward = sweep % 2 == 0
        for r in sorted(columns, reverse=not forward):
            col = columns[r]
            near = parents if forward else children

            def key(n: str, near=near) -> tuple[float, float]:
                ps = [order[p] for p in near[n]]
                return (sum(ps) / len(ps) if ps else order[n], order[n])

            col.sort(key=key)
            for k, n in enumerate(col):
                order[n] = float(k)
    tallest = max((len(c) for c in columns.values()), default=0)
    height = 2 * MARGIN + tallest * NODE_H + max(tallest - 1, 0) * GAP_Y
    boxes = {}
    for r, col in columns.items():
        span = len(col) * NODE_H + max(len(col) - 1, 0) * GAP_Y
        top = MARGIN + (height - 2 * MARGIN - span) / 2
        for k, n in enumerate(col):
            boxes[n] = Box(MARGIN + r * (NODE_W + GAP_X), top + k * (NODE_H + GAP_Y))
    width = 2 * MARGIN + len(columns) * NODE_W + max(len(columns) - 1, 0) * GAP_X
    return boxes, max(width, 2 * MARGIN), max(height, 2 * MARGIN)


#: Fill colour of each kind (anything else is grey).
KIND_COLORS = {
    "dataset": "#dbeafe", "teacher": "#fde68a", "teacher_outputs": "#fef3c7", "baseline": "#e5e7eb",
    "student": "#bbf7d0", "ta": "#fed7aa", "evaluation": "#e9d5ff", "report": "#e9d5ff",
    "search": "#fbcfe8", "arch_search": "#fbcfe8", "trial": "#fce7f3",
}
STALE_COLOR = "#dc2626"
MISSING_COLOR = "#9ca3af"


def color(kind: str) -> str:
    if kind in KIND_COLORS:
        return KIND_COLORS[kind]
    if kind.endswith("_outputs"):
        return KIND_COLORS["teacher_outputs"]
    return "#f3f4f6"


def shorten(text: str, limit: int = 34) -> str:
    """``text`` cut to ``limit`` characters, keeping its end (the telling part of a path)."""
    return text if len(text) <= limit else "…" + text[-(limit - 1):]


def title(node: Any, limit: int = 34) -> str:
    """A box's first line: ``kind: label``, the label cut from the left to fit ``limit``."""
    room = max(limit - len(node.kind) - 2, 8)
    return f"{node.kind}: {shorten(node.label, room)}"
