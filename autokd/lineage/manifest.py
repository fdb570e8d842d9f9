"""Artifact manifests: what an artifact is, its content hash, its parents and how it was made.

Each artifact folder (prepared data, teacher, teacher outputs, baseline, student, reports,
search trials) holds a ``manifest.json``::

    {"artifact": "artifacts/teacher", "kind": "teacher", "sha256": "...",
     "files": {"model.safetensors": "<sha256>"},
     "parents": [{"artifact": "artifacts/data", "kind": "dataset", "sha256": "..."}],
     "spec": {...the spec section that made it...}, "metrics": {...},
     "git": {"commit": "...", "dirty": false}, "packages": {"torch": "2.13.0", ...}}

A manifest lives inside a DVC-cached output, so it holds nothing specific to one run or one
machine (no wall times, dates, hostnames or absolute paths): the same commit, packages,
spec and inputs give a byte-identical manifest, and ``dvc.lock`` the same hash.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable

from autokd.utils.io import atomic_write_json

MANIFEST = "manifest.json"
PACKAGES = ("autokd", "torch", "numpy", "scikit-learn", "pydantic", "safetensors", "dvc", "ray", "optuna")


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def content_sha256(files: dict[str, str]) -> str:
    """One hash for a set of named file hashes."""
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(f"{name}\0{files[name]}\n".encode())
    return h.hexdigest()


def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str]:
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def is_dvc_bookkeeping(path: str) -> bool:
    """Files DVC rewrites itself while it runs (``dvc.lock``, ``.gitignore``, ``*.dvc``)."""
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return name in ("dvc.lock", ".gitignore") or name.endswith(".dvc")


def _changed_paths(porcelain_z: str) -> list[str]:
    """Paths in ``git status --porcelain -z`` output (both sides of a rename or copy)."""
    out: list[str] = []
    tokens = iter(t for t in porcelain_z.split("\0") if t)
    for entry in tokens:
        out.append(entry[3:])
        if entry[0] in "RC":
            out.append(next(tokens, ""))
    return out


def git_state(cwd: str | Path | None = None) -> dict[str, Any]:
    """The commit checked out at ``cwd`` and whether tracked files differ from it.

    ``dirty`` compares file contents (not times), ignores untracked files and ignores the
    files DVC itself rewrites during ``dvc repro`` (see :func:`is_dvc_bookkeeping`):
    otherwise a stage's manifest would depend on how far ``dvc.lock`` had been updated, and
    two fresh clones of one commit could disagree. Outside git (or without git):
    ``{"commit": "unknown", "dirty": None}``.
    """

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30)

    try:
        head = git("rev-parse", "--verify", "-q", "HEAD")
        status = git("status", "--porcelain", "-z", "--untracked-files=no") if head.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "dirty": None}
    commit = head.stdout.strip() if head.returncode == 0 else ""
    if not commit or status is None or status.returncode != 0:
        return {"commit": commit or "unknown", "dirty": None}
    changed = _changed_paths(status.stdout)
    return {"commit": commit, "dirty": any(not is_dvc_bookkeeping(p) for p in changed)}


def read_manifest(artifact: str | Path) -> dict[str, Any]:
    path = Path(artifact)
    if path.is_dir():
        path = path / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"no manifest at {path}")
    return json.loads(path.read_text())


def _rel(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return str(path.resolve().relative_to(root.resolve()))
        except ValueError:
            pass
    return str(path)


def write_manifest(
    artifact_dir: str | Path,
    *,
    kind: str,
    content: Iterable[str | Path],
    parents: Iterable[str | Path] = (),
    spec: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    root: str | Path | None = None,
) -> dict[str, Any]:
    """Hash ``content`` files (inside ``artifact_dir``), link ``parents`` by their
    manifests, and write ``artifact_dir/manifest.json`` atomically.

    ``artifact`` is recorded relative to ``root`` (the project root), whose git state is
    recorded too. Nothing time- or machine-specific is written (see the module doc).
    """
    artifact_dir = Path(artifact_dir)
    root_p = Path(root) if root is not None else None
    files = {}
    for f in content:
        p = Path(f)
        if not p.is_absolute() and not p.exists():
            p = artifact_dir / p
        files[_rel(p, artifact_dir)] = file_sha256(p)
    parent_entries = []
    for parent in parents:
        pm = read_manifest(parent)
        parent_entries.append({"artifact": pm["artifact"], "kind": pm["kind"], "sha256": pm["sha256"]})
    manifest = {
        "artifact": _rel(artifact_dir, root_p),
        "kind": kind,
        "sha256": content_sha256(files),
        "files": files,
        "parents": parent_entries,
        "spec": spec or {},
        "metrics": metrics or {},
        "git": git_state(root_p if root_p is not None else artifact_dir),
        "packages": package_versions(),
    }
    if extra:
        manifest.update(extra)
    atomic_write_json(artifact_dir / MANIFEST, manifest)
    return manifest
