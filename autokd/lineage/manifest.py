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
import posixpath
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable

import yaml

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


def pipeline_paths(top: str | Path, dvc_yamls: Iterable[str]) -> set[str]:
    """Paths (relative to the repository ``top``) that DVC stages write or take params from.

    For each ``dvc.yaml`` (a path relative to ``top``): every stage's ``outs``, ``metrics``
    and ``plots`` (run products, e.g. DVCLive logs committed to git) and its params files
    (the sections a stage reads are recorded in its manifest's ``spec``, so ``dvc exp run
    -S`` does not make the code "dirty"). Templated paths (``${...}``) match nothing.
    """
    found: set[str] = set()
    for rel in dvc_yamls:
        try:
            doc = yaml.safe_load((Path(top) / rel).read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue
        stages = doc.get("stages") if isinstance(doc, dict) else None
        for stage in (stages or {}).values():
            if not isinstance(stage, dict):
                continue
            base = posixpath.join(posixpath.dirname(rel), str(stage.get("wdir", ".")))
            entries = [e for key in ("outs", "metrics", "plots") for e in (stage.get(key) or [])]
            paths = [e if isinstance(e, str) else next(iter(e), None) for e in entries if isinstance(e, (str, dict))]
            for e in stage.get("params") or []:
                paths += list(e) if isinstance(e, dict) else ["params.yaml"]
            found.update(posixpath.normpath(posixpath.join(base, str(p))) for p in paths if p)
    return found


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
    """The commit checked out at ``cwd`` and whether the sources differ from it.

    ``dirty`` is true when a tracked file differs in content (not merely in its times) from
    the commit, leaving out what a pipeline run itself rewrites: DVC's bookkeeping
    (:func:`is_dvc_bookkeeping`) and the stages' outputs and params files
    (:func:`pipeline_paths`). Otherwise a stage's manifest would depend on how far
    ``dvc.lock`` and the DVCLive logs had been rewritten, and on where the run happened.
    Untracked files are ignored. Outside git: ``{"commit": "unknown", "dirty": None}``.
    """

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30)

    unknown = {"commit": "unknown", "dirty": None}
    try:
        head = git("rev-parse", "--verify", "-q", "HEAD")
        if head.returncode != 0 or not head.stdout.strip():
            return unknown
        commit = head.stdout.strip()
        top = git("rev-parse", "--show-toplevel")
        status = git("status", "--porcelain", "-z", "--untracked-files=no")
        listed = git("ls-files", "-z", "--full-name", "--", ":(top)*dvc.yaml")
    except (OSError, subprocess.SubprocessError):
        return unknown
    if any(r.returncode != 0 for r in (top, status, listed)):
        return {"commit": commit, "dirty": None}
    yamls = [f for f in listed.stdout.split("\0") if posixpath.basename(f) == "dvc.yaml"]
    products = pipeline_paths(top.stdout.strip(), yamls)

    def from_the_run(path: str) -> bool:
        return is_dvc_bookkeeping(path) or any(path == q or path.startswith(q + "/") for q in products)

    return {"commit": commit, "dirty": any(not from_the_run(p) for p in _changed_paths(status.stdout))}


def read_manifest(artifact: str | Path) -> dict[str, Any]:
    path = Path(artifact)
    if path.is_dir():
        path = path / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"no manifest at {path}")
    return json.loads(path.read_text())


def _rel(path: Path, root: Path | None) -> str:
    """``path`` relative to ``root`` where it lies inside, with ``/`` on every platform."""
    if root is not None:
        try:
            return path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            pass
    return path.as_posix()


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
        if not p.is_absolute() and (artifact_dir / p).exists():
            p = artifact_dir / p  # a name inside the artifact, whatever the working directory holds
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
