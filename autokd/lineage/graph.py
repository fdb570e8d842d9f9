"""Walk manifests from an artifact to its roots (data -> teacher -> student)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autokd.lineage.manifest import read_manifest


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
