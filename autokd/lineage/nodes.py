"""The pieces of the lineage graph: nodes, edges, and finding every manifest under a root.

A node is an artifact folder (its id is the folder relative to the scanned root, with ``/``)
or one trial of a hyperparameter search (``searches/<name>/trials/<trial>``, read from the
search's ``trials.json``). Edges run parent -> child and come from each manifest's
``parents`` entries: a parent is found by its recorded path, relative to the root its child
was written from (a chain under ``runs/takd`` records ``artifacts/data`` for
``runs/takd/artifacts/data``), and, failing that, by its recorded hash.
"""

from __future__ import annotations

import json
import os
import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from autokd.lineage.manifest import MANIFEST

#: Folders never scanned (besides hidden ones and virtual environments).
SKIP_DIRS = frozenset({".venv", "venv", ".git", ".dvc", "node_modules", "__pycache__", ".pytest_cache"})
TRIALS = "trials.json"
#: The metric a node shows first, in this order of preference.
HEADLINE = ("accuracy", "val_accuracy", "student.accuracy", "best.val_accuracy", "test_accuracy", "trials")


@dataclass
class Node:
    """One artifact (or search trial) in the graph."""

    id: str
    kind: str
    label: str
    sha256: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    stale: bool = False  # a parent was rebuilt since this artifact was made
    missing: bool = False  # named as a parent, but no manifest was found
    params: dict[str, Any] = field(default_factory=dict)  # a trial's sampled parameters
    status: str = ""  # a trial's status (completed / stopped / failed)
    manifest: dict[str, Any] = field(default_factory=dict, repr=False)

    def headline(self) -> str:
        """``key=value`` of the node's most telling metric ('' when it has none)."""
        for key in HEADLINE:
            value = self.metrics.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return f"{key}={value:.4f}" if isinstance(value, float) else f"{key}={value}"
        return ""

    def to_dict(self) -> dict[str, Any]:
        out = {"id": self.id, "kind": self.kind, "label": self.label, "sha256": self.sha256,
               "metrics": self.metrics, "stale": self.stale, "missing": self.missing}
        if self.kind == "trial":
            out.update(params=self.params, status=self.status)
        return out


@dataclass
class Edge:
    """parent -> child; ``stale`` when the child recorded another hash than the parent has now."""

    source: str
    target: str
    recorded_sha256: str = ""
    current_sha256: str = ""
    stale: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "target": self.target, "recorded_sha256": self.recorded_sha256,
                "current_sha256": self.current_sha256, "stale": self.stale}


def iter_manifest_files(root: str | Path) -> Iterator[Path]:
    """Every ``manifest.json`` under ``root``, sorted, skipping hidden folders, virtual
    environments, ``.git``, ``.dvc`` and ``node_modules``."""
    root = Path(root)
    found = []
    for here, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.startswith(".")
                   and not (Path(here) / d / "pyvenv.cfg").exists()]
        if MANIFEST in files:
            found.append(Path(here) / MANIFEST)
    return iter(sorted(found))


def node_id(folder: Path, root: Path) -> str:
    """``folder`` relative to ``root`` with ``/`` ('.' for the root itself)."""
    try:
        rel = folder.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return folder.resolve().as_posix()
    return rel or "."


def is_manifest(doc: Any) -> bool:
    return isinstance(doc, dict) and isinstance(doc.get("sha256"), str) and isinstance(doc.get("kind"), str)


def load_manifests(root: str | Path) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """``{node id: manifest}`` for every readable lineage manifest, and one warning per file
    that is not one (unreadable, not JSON, or JSON without ``kind``/``sha256``)."""
    root = Path(root)
    manifests: dict[str, dict[str, Any]] = {}
    warnings: list[str] = []
    for path in iter_manifest_files(root):
        nid = node_id(path.parent, root)
        try:
            doc = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            warnings.append(f"{nid}/{MANIFEST}: not readable JSON ({exc})")
            continue
        if not is_manifest(doc):
            warnings.append(f"{nid}/{MANIFEST}: not a lineage manifest (no kind/sha256)")
            continue
        manifests[nid] = doc
    return manifests, warnings


def write_root(nid: str, manifest: dict[str, Any]) -> str | None:
    """The folder (relative to the scanned root) the manifest's paths are relative to: the
    node id minus the recorded ``artifact`` path ('' for the scanned root itself); None
    when the recorded path is not a tail of the node id (e.g. an absolute path)."""
    recorded = str(manifest.get("artifact") or "").strip("/")
    if recorded and (nid == recorded or nid.endswith("/" + recorded)):
        return nid[: len(nid) - len(recorded)].rstrip("/")
    return None


def resolve_parent(nid: str, manifest: dict[str, Any], parent: dict[str, Any],
                   manifests: dict[str, dict[str, Any]]) -> str:
    """The node id of a ``parents`` entry: by recorded path from the child's write root (or,
    when the child's recorded path does not tell it, from each folder above the child), then
    by hash (the nearest node with that hash); else the recorded path itself (missing)."""
    recorded = str(parent.get("artifact") or "")
    if posixpath.isabs(recorded) and recorded in manifests:
        return recorded
    base = write_root(nid, manifest)
    bases = [base] if base is not None else _ancestors(nid)
    for b in bases:
        cand = posixpath.normpath(posixpath.join(b, recorded)) if b else posixpath.normpath(recorded)
        if cand in manifests and cand != nid:
            return cand
    sha = parent.get("sha256")
    same = [k for k, m in manifests.items() if m.get("sha256") == sha and k != nid]
    if same:
        return max(same, key=lambda k: (_common_prefix(k, nid), -len(k)))
    return posixpath.normpath(posixpath.join(base, recorded)) if base else posixpath.normpath(recorded)


def _ancestors(nid: str) -> list[str]:
    parts = nid.split("/")
    return ["/".join(parts[:i]) for i in range(len(parts) - 1, -1, -1)]


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a.split("/"), b.split("/")):
        if x != y:
            break
        n += 1
    return n


def trial_nodes(search_id: str, folder: Path) -> list[Node]:
    """One node per row of ``folder/trials.json`` (a hyperparameter search's trials)."""
    path = folder / TRIALS
    try:
        rows = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return []
    if not isinstance(rows, list):
        return []
    out = []
    for row in rows:
        if not isinstance(row, dict) or "trial" not in row:
            continue
        name = str(row["trial"])
        metrics = dict(row.get("final") or {})
        best = row.get("best") or {}
        metrics.update({f"best.{k}": v for k, v in best.items() if k != "epoch"})
        if "epoch" in best:
            metrics["best.epoch"] = best["epoch"]
        lineage = row.get("lineage") or {}
        out.append(Node(id=f"{search_id}/trials/{name}", kind="trial", label=name,
                        sha256=str(lineage.get("trial_sha256", "")), metrics=metrics,
                        params=dict(row.get("params") or {}), status=str(row.get("status", "")),
                        manifest={"patch": row.get("patch") or {}, "lineage": lineage,
                                  "epochs": row.get("epochs"), "reason": row.get("reason", ""),
                                  "experiment": row.get("experiment", "")}))
    return out
