"""Check every artifact under a root against its manifest.

For each manifest: every file in its ``files`` map is hashed again (by content, so a
DVC-tracked file checks the same as a plain one; a file DVC has not pulled is reported as
missing), the recorded ``sha256`` must equal the hash of that map, and each parent's
recorded hash must equal the parent's current manifest hash (else the parent was rebuilt
since: the artifact is stale). A search's ``trials.json`` is one of its files, so its trials
are checked with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autokd.lineage.manifest import MANIFEST, content_sha256, file_sha256
from autokd.lineage.nodes import load_manifests, resolve_parent


@dataclass
class Problem:
    """One failed check: which artifact, what (a file, a parent, the manifest), expected vs found."""

    artifact: str
    what: str
    expected: str
    found: str
    hint: str = ""

    def line(self) -> str:
        text = f"{self.artifact}: {self.what}: expected {self.expected}, found {self.found}"
        return text + (f" ({self.hint})" if self.hint else "")

    def to_dict(self) -> dict[str, Any]:
        return {"artifact": self.artifact, "what": self.what, "expected": self.expected, "found": self.found,
                "hint": self.hint}


@dataclass
class VerifyReport:
    artifacts: int = 0
    files: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "artifacts": self.artifacts, "files": self.files,
                "problems": [p.to_dict() for p in self.problems]}


def _short(sha: str) -> str:
    return f"sha256:{sha[:16]}" if sha else "nothing"


def verify_artifact(root: Path, nid: str, manifest: dict[str, Any], manifests: dict[str, dict[str, Any]],
                    report: VerifyReport) -> None:
    folder = root / nid if nid != "." else root
    files = manifest.get("files")
    if not isinstance(files, dict):
        report.problems.append(Problem(nid, f"{MANIFEST} files", "a map of file -> sha256", repr(files)))
        return
    all_there = True
    for name, recorded in sorted(files.items()):
        path = folder / name
        report.files += 1
        if not path.is_file():
            all_there = False
            report.problems.append(Problem(nid, f"file {name}", _short(str(recorded)), "no such file",
                                           "not pulled? run `dvc pull` or `dvc repro`"))
            continue
        found = file_sha256(path)
        if found != recorded:
            all_there = False
            report.problems.append(Problem(nid, f"file {name}", _short(str(recorded)), _short(found),
                                           "changed since the manifest was written"))
    expected = content_sha256({str(k): str(v) for k, v in files.items()})
    if all_there and manifest.get("sha256") != expected:
        report.problems.append(Problem(nid, f"{MANIFEST} sha256", f"{_short(expected)} (the hash of its files)",
                                       _short(str(manifest.get("sha256"))), "the manifest was edited"))
    for parent in manifest.get("parents") or []:
        pid = resolve_parent(nid, manifest, parent, manifests)
        recorded = str(parent.get("sha256", ""))
        if pid not in manifests:
            report.problems.append(Problem(nid, f"parent {pid}", _short(recorded), "no manifest",
                                           "the parent is gone or lies outside the root"))
        elif manifests[pid]["sha256"] != recorded:
            report.problems.append(Problem(nid, f"parent {pid}", _short(recorded),
                                           _short(manifests[pid]["sha256"]),
                                           "the parent was rebuilt since: this artifact is stale"))


def verify_tree(root: str | Path = ".") -> VerifyReport:
    """Verify every manifest under ``root`` (see the module doc)."""
    root = Path(root)
    manifests, warnings = load_manifests(root)
    report = VerifyReport()
    for warning in warnings:
        where, _, why = warning.partition(": ")
        report.problems.append(Problem(where, "manifest", "a lineage manifest (JSON with kind and sha256)", why))
    for nid in sorted(manifests):
        report.artifacts += 1
        verify_artifact(root, nid, manifests[nid], manifests, report)
    return report
