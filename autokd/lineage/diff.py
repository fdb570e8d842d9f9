"""What differs between two artifacts' recipes: spec keys, parents, git, packages, metrics.

Either side is an artifact folder (or its ``manifest.json``), or a search trial
(``searches/<name>/trials/<trial>``, compared by its spec patch and final metrics).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autokd.lineage.manifest import MANIFEST, read_manifest
from autokd.lineage.nodes import TRIALS, trial_nodes

_MISSING = object()


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted key paths to leaves; a list of mappings is indexed (``features[0].student``),
    a list of plain values stays one leaf."""
    out: dict[str, Any] = {}
    if isinstance(value, dict):
        if not value and prefix:
            out[prefix] = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        for i, v in enumerate(value):
            out.update(flatten(v, f"{prefix}[{i}]"))
        if not value:
            out[prefix] = []
    else:
        out[prefix] = value
    return out


@dataclass
class Change:
    key: str
    a: Any = None
    b: Any = None
    change: str = "changed"  # changed | added (only in B) | removed (only in A)

    def to_dict(self) -> dict[str, Any]:
        out = {"key": self.key, "a": self.a, "b": self.b, "change": self.change}
        if _is_num(self.a) and _is_num(self.b):
            out["delta"] = self.b - self.a
        return out


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def compare_maps(a: dict[str, Any], b: dict[str, Any]) -> list[Change]:
    out = []
    for key in list(a) + [k for k in b if k not in a]:
        va, vb = a.get(key, _MISSING), b.get(key, _MISSING)
        if va is _MISSING:
            out.append(Change(key, None, vb, "added"))
        elif vb is _MISSING:
            out.append(Change(key, va, None, "removed"))
        elif va != vb:
            out.append(Change(key, va, vb))
    return out


@dataclass
class RecipeDiff:
    a: dict[str, Any]
    b: dict[str, Any]
    sections: dict[str, list[Change]] = field(default_factory=dict)

    @property
    def identical(self) -> bool:
        return not any(self.sections.values())

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "identical": self.identical,
                **{name: [c.to_dict() for c in changes] for name, changes in self.sections.items()}}


def load_side(ref: str | Path, root: str | Path = ".") -> dict[str, Any]:
    """The manifest-like record of an artifact folder, a manifest file, or a search trial."""
    root = Path(root)
    path = Path(ref)
    for cand in (root / path, path):  # from the root first, then from here
        if (cand.is_dir() and (cand / MANIFEST).is_file()) or (cand.is_file() and cand.name == MANIFEST):
            return read_manifest(cand)
    parts = Path(ref).as_posix().rsplit("/trials/", 1)
    if len(parts) == 2:
        for base in (root / parts[0], Path(parts[0])):
            if (base / TRIALS).is_file():
                for node in trial_nodes(parts[0], base):
                    if node.id == f"{parts[0]}/trials/{parts[1]}":
                        return {"artifact": node.id, "kind": "trial", "sha256": node.sha256,
                                "spec": node.manifest.get("patch") or {}, "metrics": node.metrics,
                                "parents": [], "params": node.params}
                raise FileNotFoundError(f"no trial {parts[1]!r} in {base / TRIALS}")
    raise FileNotFoundError(f"no manifest at {path} (nor under {root}); expected an artifact folder, "
                            "its manifest.json, or searches/<name>/trials/<trial>")


def _parents(m: dict[str, Any]) -> dict[str, Any]:
    return {str(p.get("artifact")): str(p.get("sha256", "")) for p in m.get("parents") or [] if isinstance(p, dict)}


def _git(m: dict[str, Any]) -> dict[str, Any]:
    git = m.get("git") or {}
    return {"commit": git.get("commit"), "dirty": git.get("dirty")} if git else {}


def diff_manifests(a: dict[str, Any], b: dict[str, Any]) -> RecipeDiff:
    """Section by section: ``spec`` (flattened key paths), ``parents`` (recorded hashes),
    ``git``, ``packages``, ``metrics`` (with deltas) and ``files`` (their hashes)."""

    def head(m: dict[str, Any]) -> dict[str, Any]:
        return {"artifact": m.get("artifact"), "kind": m.get("kind"), "sha256": m.get("sha256")}

    d = RecipeDiff(head(a), head(b))
    d.sections["spec"] = compare_maps(flatten(a.get("spec") or {}), flatten(b.get("spec") or {}))
    if a.get("params") or b.get("params"):
        d.sections["params"] = compare_maps(a.get("params") or {}, b.get("params") or {})
    d.sections["parents"] = compare_maps(_parents(a), _parents(b))
    d.sections["git"] = compare_maps(_git(a), _git(b))
    d.sections["packages"] = compare_maps(a.get("packages") or {}, b.get("packages") or {})
    d.sections["metrics"] = compare_maps(flatten(a.get("metrics") or {}), flatten(b.get("metrics") or {}))
    d.sections["files"] = compare_maps(a.get("files") or {}, b.get("files") or {})
    return d


def diff_artifacts(a: str | Path, b: str | Path, root: str | Path = ".") -> RecipeDiff:
    """:func:`diff_manifests` of two artifacts (each shown by the path given)."""
    d = diff_manifests(load_side(a, root), load_side(b, root))
    d.a["path"], d.b["path"] = Path(a).as_posix(), Path(b).as_posix()
    return d


def _fmt(v: Any) -> str:
    if isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v):
        return v[:12]
    if isinstance(v, float):
        return repr(v) if len(repr(v)) <= 10 else f"{v:.6g}"
    return json.dumps(v, default=str) if not isinstance(v, str) else v


def render_diff(d: RecipeDiff) -> list[str]:
    """Text lines: ``key: old -> new`` per change, ``+``/``-`` for keys on one side only."""
    lines = [f"{side}: {h.get('path', h['artifact'])} ({h['kind']}, sha256:{str(h['sha256'])[:12]})"
             for side, h in (("A", d.a), ("B", d.b))]
    if d.identical:
        return lines + ["same recipe, parents, code, packages, metrics and files"]
    for name, changes in d.sections.items():
        if not changes:
            continue
        lines.append(f"{name}:")
        for c in changes:
            if c.change == "added":
                lines.append(f"  + {c.key}: {_fmt(c.b)}  (only in B)")
            elif c.change == "removed":
                lines.append(f"  - {c.key}: {_fmt(c.a)}  (only in A)")
            else:
                text = f"  {c.key}: {_fmt(c.a)} -> {_fmt(c.b)}"
                if name == "metrics" and _is_num(c.a) and _is_num(c.b):
                    text += f"  ({c.b - c.a:+.6g})"
                lines.append(text)
    return lines
