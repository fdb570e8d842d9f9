"""The lineage graph of every artifact under a root, and one artifact's chain to its roots.

:func:`build_graph` collects every ``manifest.json`` under a root (and every trial of every
hyperparameter search) into a :class:`LineageGraph`: nodes, parent -> child edges, and the
stale marks (a parent rebuilt since its child was made). :func:`lineage_tree` walks one
artifact's parents recursively (``autokd lineage show``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autokd.lineage.manifest import read_manifest
from autokd.lineage.nodes import Edge, Node, load_manifests, resolve_parent, trial_nodes


@dataclass
class LineageGraph:
    """Nodes by id (artifact folders relative to ``root``, and search trials) and edges."""

    root: str
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def parents(self, nid: str) -> list[str]:
        return [e.source for e in self.edges if e.target == nid]

    def children(self, nid: str) -> list[str]:
        return [e.target for e in self.edges if e.source == nid]

    def stale(self) -> list[str]:
        return sorted(n for n, node in self.nodes.items() if node.stale)

    def focus(self, nid: str) -> "LineageGraph":
        """The subgraph of ``nid``, its ancestors and its descendants."""
        if nid not in self.nodes:
            raise KeyError(nid)
        keep = {nid}
        for step in (self.parents, self.children):
            todo = [nid]
            while todo:
                for other in step(todo.pop()):
                    if other not in keep:
                        keep.add(other)
                        todo.append(other)
        return LineageGraph(self.root, {k: v for k, v in self.nodes.items() if k in keep},
                            [e for e in self.edges if e.source in keep and e.target in keep], list(self.warnings))

    def to_dict(self) -> dict[str, Any]:
        return {"root": self.root, "nodes": [self.nodes[k].to_dict() for k in sorted(self.nodes)],
                "edges": [e.to_dict() for e in self.edges], "warnings": list(self.warnings)}

    def to_mermaid(self) -> str:
        from autokd.lineage.render import to_mermaid

        return to_mermaid(self)

    def to_dot(self) -> str:
        from autokd.lineage.render import to_dot

        return to_dot(self)

    def to_svg(self) -> str:
        from autokd.lineage.svg import to_svg

        return to_svg(self)

    def to_png(self) -> bytes:
        from autokd.lineage.png import to_png

        return to_png(self)


def _label(nid: str) -> str:
    return nid


def build_graph(root: str | Path = ".") -> LineageGraph:
    """Every artifact under ``root`` with its parents and, for searches, trials.

    A node is ``stale`` when one of its parents' current manifest hash differs from the hash
    it recorded (the parent was rebuilt since), and that edge is stale too; a parent named
    in a manifest but found nowhere under ``root`` becomes a ``missing`` node.
    """
    root = Path(root)
    manifests, warnings = load_manifests(root)
    graph = LineageGraph(root=str(root), warnings=warnings)
    for nid, m in manifests.items():
        graph.nodes[nid] = Node(id=nid, kind=m["kind"], label=_label(nid), sha256=m["sha256"],
                                metrics=dict(m.get("metrics") or {}), manifest=m)
    for nid, m in sorted(manifests.items()):
        for parent in m.get("parents") or []:
            if not isinstance(parent, dict):
                continue
            pid = resolve_parent(nid, m, parent, manifests)
            recorded = str(parent.get("sha256", ""))
            if pid not in graph.nodes:
                graph.nodes[pid] = Node(id=pid, kind=str(parent.get("kind", "?")), label=pid,
                                        sha256=recorded, missing=True)
            current = graph.nodes[pid].sha256
            stale = not graph.nodes[pid].missing and current != recorded
            graph.edges.append(Edge(pid, nid, recorded, current, stale))
            if stale:
                graph.nodes[nid].stale = True
        if m.get("kind") == "search":
            for trial in trial_nodes(nid, root / nid):
                graph.nodes[trial.id] = trial
                graph.edges.append(Edge(nid, trial.id, m["sha256"], m["sha256"], False))
    return graph


def lineage_tree(artifact: str | Path, root: str | Path = ".", _seen: set | None = None) -> dict[str, Any]:
    """The manifest of ``artifact`` with ``parents`` expanded recursively.

    Each parent entry is checked: if the parent's current manifest has another hash than
    the one recorded, the entry is marked ``stale`` (the parent was rebuilt since).
    """
    root = Path(root)
    path = Path(artifact)
    if not path.is_absolute() and not path.exists():
        path = root / path
    manifest = read_manifest(path)
    seen = set() if _seen is None else _seen
    node = {k: manifest[k] for k in ("artifact", "kind", "sha256", "metrics", "git", "created") if k in manifest}
    node["parents"] = []
    for parent in manifest.get("parents", []):
        ppath = root / parent["artifact"]
        if parent["artifact"] in seen or not (ppath / "manifest.json").exists():
            node["parents"].append({**parent, "missing": not (ppath / "manifest.json").exists()})
            continue
        seen.add(parent["artifact"])
        sub = lineage_tree(ppath, root, seen)
        sub["stale"] = sub["sha256"] != parent["sha256"]
        sub["recorded_sha256"] = parent["sha256"]
        node["parents"].append(sub)
    return node


def render_tree(node: dict[str, Any], depth: int = 0) -> list[str]:
    """Text lines of a lineage tree (the CLI prints them)."""
    metrics = node.get("metrics") or {}
    shown = ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in list(metrics.items())[:4])
    git = node.get("git") or {}
    commit = (git.get("commit") or "")[:10]
    flags = []
    if node.get("stale"):
        flags.append("STALE: rebuilt since")
    if node.get("missing"):
        flags.append("MISSING")
    indent = "    " * (depth - 1) + "<- " if depth else ""
    line = f"{indent}{node.get('kind', '?')}: {node.get('artifact')}  sha256:{str(node.get('sha256'))[:12]}"
    if commit:
        line += f"  git:{commit}{'+dirty' if git.get('dirty') else ''}"
    if shown:
        line += f"  [{shown}]"
    if flags:
        line += "  (" + "; ".join(flags) + ")"
    lines = [line]
    for parent in node.get("parents", []):
        lines += render_tree(parent, depth + 1)
    return lines
