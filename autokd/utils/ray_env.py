"""The environment autokd runs Ray in, for the searches and for data-parallel training alike:
no auth token, no chdir into trial folders, a TMPDIR and a short socket folder we own."""

from __future__ import annotations

import os
import tempfile


def short_temp_dir() -> str:
    """A short folder we own for Ray's sockets (Unix socket paths are limited to ~107 bytes)."""
    base = os.environ.get("TMPDIR") or tempfile.gettempdir()
    if len(base) > 40:
        base = "/tmp"
    path = os.path.join(base, f"akd-ray-{os.getuid()}")
    os.makedirs(path, exist_ok=True)
    return path


def configure_environment() -> dict[str, str]:
    """Environment for Ray here and in its workers: no auth token, no chdir into trial dirs,
    a TMPDIR we own. Returns the variables workers need."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ["RAY_CHDIR_TO_TRIAL_DIR"] = "0"
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # snapshot the experiment state often (it is small): a resume after a crash repeats less
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "3")  # with verbose=0: no Tune tables; we print our own
    if not os.environ.get("TMPDIR"):
        tmp = os.path.join(tempfile.gettempdir(), f"akd-{os.getuid()}")
        os.makedirs(tmp, exist_ok=True)
        os.environ["TMPDIR"] = tmp
    return {"RAY_CHDIR_TO_TRIAL_DIR": "0", "RAY_AUTH_MODE": os.environ["RAY_AUTH_MODE"]}
