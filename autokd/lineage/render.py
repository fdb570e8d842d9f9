"""Text renderings of a lineage graph: Mermaid flowcharts and Graphviz DOT.

Both take any object with ``nodes`` (id -> :class:`~autokd.lineage.nodes.Node`) and
``edges`` (a list of :class:`~autokd.lineage.nodes.Edge`). Stale nodes and edges (a parent
rebuilt since) are drawn dashed red, missing parents dotted grey.
"""

from __future__ import annotations

from typing import Any

from autokd.lineage.layout import MISSING_COLOR, STALE_COLOR, color


def _lines(node: Any) -> list[str]:
    lines = [f"{node.kind}: {node.label}"]
    if node.headline():
        lines.append(node.headline())
    if node.status:
        lines.append(node.status)
    if node.stale:
        lines.append("STALE: a parent was rebuilt")
    if node.missing:
        lines.append("MISSING")
    return lines


def _mermaid_text(text: str) -> str:
    """Text safe inside a quoted Mermaid label (entity codes for the characters it parses)."""
    for ch, code in (("&", "#amp;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;"), ("|", "#124;")):
        text = text.replace(ch, code)
    return text


def to_mermaid(graph: Any) -> str:
    """A Mermaid ``flowchart LR`` (GitHub and most Markdown viewers draw it)."""
    ids = {nid: f"n{k}" for k, nid in enumerate(sorted(graph.nodes))}
    out = ["flowchart LR"]
    for nid in sorted(graph.nodes):
        node = graph.nodes[nid]
        label = "<br/>".join(_mermaid_text(line) for line in _lines(node))
        out.append(f'    {ids[nid]}["{label}"]')
    stale_links = []
    for k, e in enumerate(graph.edges):
        if e.stale:
            out.append(f"    {ids[e.source]} -. stale .-> {ids[e.target]}")
            stale_links.append(str(k))
        else:
            out.append(f"    {ids[e.source]} --> {ids[e.target]}")
    kinds = sorted({n.kind for n in graph.nodes.values()})
    for kind in kinds:
        out.append(f"    classDef k_{_ident(kind)} fill:{color(kind)},stroke:#374151")
    out.append(f"    classDef stale stroke:{STALE_COLOR},stroke-width:2px,stroke-dasharray:6 3")
    out.append(f"    classDef missing fill:#ffffff,stroke:{MISSING_COLOR},stroke-dasharray:2 2")
    for kind in kinds:
        members = [ids[i] for i in sorted(graph.nodes) if graph.nodes[i].kind == kind]
        out.append(f"    class {','.join(members)} k_{_ident(kind)}")
    for flag in ("stale", "missing"):
        members = [ids[i] for i in sorted(graph.nodes) if getattr(graph.nodes[i], flag)]
        if members:
            out.append(f"    class {','.join(members)} {flag}")
    if stale_links:
        out.append(f"    linkStyle {','.join(stale_links)} stroke:{STALE_COLOR},stroke-width:2px")
    return "\n".join(out) + "\n"


def _ident(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in text)


def _dot_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(graph: Any) -> str:
    """A Graphviz ``digraph`` (``dot -Tsvg`` draws it where Graphviz is installed)."""
    out = ["digraph lineage {", "  rankdir=LR;",
           '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10];',
           '  edge [color="#6b7280"];']
    for nid in sorted(graph.nodes):
        node = graph.nodes[nid]
        attrs = {"label": "\n".join(_lines(node)), "fillcolor": color(node.kind),
                 "tooltip": f"{nid} sha256:{node.sha256[:16]}"}
        if node.stale:
            attrs.update(color=STALE_COLOR, style="rounded,filled,dashed", penwidth="2")
        if node.missing:
            attrs.update(color=MISSING_COLOR, style="rounded,dotted", fillcolor="white")
        out.append(f"  {_dot_str(nid)} [" + ", ".join(f"{k}={_dot_str(v)}" for k, v in attrs.items()) + "];")
    for e in graph.edges:
        attrs = ' [color="%s", style=dashed, penwidth=2, label="stale"]' % STALE_COLOR if e.stale else ""
        out.append(f"  {_dot_str(e.source)} -> {_dot_str(e.target)}{attrs};")
    out.append("}")
    return "\n".join(out) + "\n"
