"""Record a run as a DVC experiment of the repository, with git plumbing only.

A DVC experiment is a git commit whose parent is its *baseline* commit, under the ref
``refs/exps/<baseline[:2]>/<baseline[2:]>/<name>`` (the layout of DVC's
``dvc/repo/experiments/refs.py``: ``ExpRefInfo``). ``dvc exp show`` reads params and metrics
from that commit's tree, ``dvc exp apply <name>`` checks it out into the workspace.

:meth:`ExperimentRepo.record` builds that commit without touching the workspace, the index or
``HEAD``: it reads the baseline's tree into a *temporary* index (``GIT_INDEX_FILE``), writes
the replaced files as blobs (``hash-object -w``), points the temporary index at them
(``update-index --cacheinfo``), writes the tree and the commit (``write-tree``,
``commit-tree -p <baseline>``) and sets the ref (``update-ref``). Seven short git processes
(tens of milliseconds; ``benchmarks/dvc_exp_record.py``) instead of opening a DVC repo and
running ``dvc exp save`` in a worktree (seconds). Git writes objects atomically
(content-addressed, written to a temporary file and renamed) and locks each ref while it
updates it, so several processes recording different names at once cannot corrupt the
repository.

This module knows nothing of searches or stages: callers pass the files' new contents.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

EXPS_NAMESPACE = "refs/exps"  # dvc.repo.experiments.refs.EXPS_NAMESPACE
#: Namespaces under refs/exps that are not experiments (stash, apply, queue, executors).
RESERVED = {"stash", "apply", "celery", "exec", "temp"}
_FALLBACK_IDENTITY = {"GIT_AUTHOR_NAME": "autokd", "GIT_AUTHOR_EMAIL": "autokd@localhost",
                      "GIT_COMMITTER_NAME": "autokd", "GIT_COMMITTER_EMAIL": "autokd@localhost"}
_BAD_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")


class NotRecordable(RuntimeError):
    """The path is not inside a git + DVC repository with a commit (or git is missing)."""


class ExperimentError(RuntimeError):
    """A git command failed while recording an experiment."""


def exp_name(*parts: str) -> str:
    """A valid DVC experiment name from ``parts`` joined by ``-``: characters outside
    ``[A-Za-z0-9_.-]`` become ``-``, no ``..``, no leading ``.``/``-``, no trailing ``.`` or
    ``.lock`` (git's check-ref-format rules, and no ``/``, which ``dvc exp`` refuses)."""
    cleaned = (_BAD_CHARS.sub("-", p).strip("-") for p in parts)
    name = "-".join(p for p in cleaned if p)
    while ".." in name:
        name = name.replace("..", ".")
    name = name.lstrip(".-").rstrip(".")
    if name.endswith(".lock"):
        name = name[: -len(".lock")] + "-lock"
    if not name or name in RESERVED:
        raise ValueError(f"cannot make an experiment name from {parts!r}")
    return name


def exp_ref(baseline: str, name: str) -> str:
    """The ref DVC keeps experiment ``name`` of ``baseline`` (a full commit sha) under."""
    return f"{EXPS_NAMESPACE}/{baseline[:2]}/{baseline[2:]}/{name}"


def _git(args: list[str], cwd: Path, env: Mapping[str, str] | None = None, data: bytes | None = None) -> str:
    try:
        res = subprocess.run(["git", *args], cwd=cwd, input=data, capture_output=True, env=dict(env) if env else None)
    except FileNotFoundError:
        raise NotRecordable("git is not installed") from None
    if res.returncode != 0:
        msg = res.stderr.decode(errors="replace").strip().splitlines()
        raise ExperimentError(f"git {args[0]} failed: {msg[-1] if msg else f'exit {res.returncode}'}")
    return res.stdout.decode().strip()


@dataclass(frozen=True)
class Recorded:
    name: str
    ref: str
    commit: str


@dataclass
class ExperimentRepo:
    """A git + DVC repository and the baseline commit experiments are recorded on."""

    git_root: Path
    dvc_root: Path
    baseline: str
    env: dict[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def discover(cls, path: str | Path) -> ExperimentRepo:
        """The repository holding ``path``, its baseline ``HEAD``; :class:`NotRecordable` if
        there is no git repository, no DVC repository (``.dvc/``) or no commit yet."""
        start = Path(path).resolve()
        if start.is_file():
            start = start.parent
        while not start.exists():
            start = start.parent
        env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
        env.pop("GIT_INDEX_FILE", None)
        try:
            top = Path(_git(["rev-parse", "--show-toplevel"], start, env))
        except ExperimentError:
            raise NotRecordable(f"{start} is not in a git repository") from None
        dvc_root = next((d for d in (start, *start.parents) if (d / ".dvc").is_dir()
                         and (d == top or top in d.parents)), None)
        if dvc_root is None:
            raise NotRecordable(f"{top} is not a DVC repository (no .dvc/; `dvc init` makes one)")
        try:
            baseline = _git(["rev-parse", "--verify", "-q", "HEAD^{commit}"], top, env)
        except ExperimentError:
            raise NotRecordable(f"the git repository {top} has no commit yet") from None
        try:
            _git(["var", "GIT_COMMITTER_IDENT"], top, env)
        except ExperimentError:  # no user.name/email: commit as autokd rather than fail
            env.update({k: v for k, v in _FALLBACK_IDENTITY.items() if k not in os.environ})
        return cls(git_root=top, dvc_root=dvc_root, baseline=baseline, env=env)

    def relpath(self, path: str | Path) -> str:
        """``path`` relative to the git root (POSIX); :class:`NotRecordable` if outside it."""
        p = Path(path).resolve()
        try:
            return p.relative_to(self.git_root).as_posix()
        except ValueError:
            raise NotRecordable(f"{p} is outside the git repository {self.git_root}") from None

    def ref(self, name: str) -> str:
        return exp_ref(self.baseline, name)

    def show(self, rel: str, rev: str | None = None) -> bytes | None:
        """The content of ``rel`` at ``rev`` (default: the baseline), None if absent."""
        res = subprocess.run(["git", "cat-file", "blob", f"{rev or self.baseline}:{rel}"], cwd=self.git_root,
                             capture_output=True, env=self.env)
        return res.stdout if res.returncode == 0 else None

    def dirty(self, exclude: list[str] = ()) -> bool:
        """Whether tracked files differ from the baseline (``exclude``: paths to ignore).
        Reads the index without refreshing or rewriting it."""
        spec = ["."] + [f":(exclude){e}" for e in exclude]
        res = subprocess.run(["git", "diff", "--quiet", self.baseline, "--", *spec], cwd=self.git_root,
                             capture_output=True, env=self.env)
        return res.returncode == 1

    def experiments(self) -> dict[str, str]:
        """The experiments recorded on the baseline: name -> commit."""
        prefix = exp_ref(self.baseline, "")
        out = _git(["for-each-ref", "--format=%(refname) %(objectname)", prefix], self.git_root, self.env)
        return {ref[len(prefix):]: sha for ref, sha in (ln.split() for ln in out.splitlines() if ln)}

    def record(self, name: str, files: Mapping[str, bytes | str], message: str) -> Recorded:
        """Commit the baseline's tree with ``files`` (repo-relative path -> new content) on top
        of the baseline, as experiment ``name`` (an existing one of that name is replaced)."""
        if exp_name(name) != name:
            raise ValueError(f"invalid experiment name {name!r} (try {exp_name(name)!r})")
        tmp = tempfile.mkdtemp(prefix="autokd-exp-")
        env = {**self.env, "GIT_INDEX_FILE": os.path.join(tmp, "index")}
        root = self.git_root
        try:
            _git(["read-tree", self.baseline], root, env)
            cacheinfo: list[str] = []
            for rel, content in files.items():
                data = content.encode() if isinstance(content, str) else bytes(content)
                blob = _git(["hash-object", "-w", "--stdin", f"--path={rel}"], root, env, data)
                cacheinfo += ["--cacheinfo", f"100644,{blob},{rel}"]
            _git(["update-index", "--add", *cacheinfo], root, env)
            tree = _git(["write-tree"], root, env)
            commit = _git(["commit-tree", tree, "-p", self.baseline], root, env, message.encode())
            ref = self.ref(name)
            _git(["update-ref", "-m", f"autokd: record experiment {name}", ref, commit], root, env)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return Recorded(name=name, ref=ref, commit=commit)
