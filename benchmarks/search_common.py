"""Shared by the search benchmarks: write a search spec over the default pipeline, run it on
the Ray backend in this process's Ray session, and time it (Ray's start-up excluded)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"

# the space of the efficiency benchmark: 4 temperatures x 4 lambdas x 3 methods
GRID_SPACE: dict[str, Any] = {
    "distill.temperature": {"type": "choice", "values": [1.0, 2.0, 4.0, 8.0]},
    "distill.alpha": {"type": "choice", "values": [0.3, 0.5, 0.7, 0.9]},
    "distill.method": {"type": "choice", "values": ["kd", "dkd", "lskd"],
                       "conditional": {"dkd": {"distill.params.warmup_epochs": 5}}},
}


def private_root(tmp: Path) -> Path:
    """A pipeline root of our own: a snapshot of the repo's prepared data and teacher outputs
    (a `dvc repro` elsewhere deletes and rewrites artifacts/ while it runs). If the repo has
    none, the search makes them there once."""
    import shutil

    root = Path(tmp) / "root"
    src = REPO / "artifacts"
    parts = ("data", "teacher", "teacher_outputs")
    if all((src / p / "manifest.json").exists() for p in parts):
        for p in parts:
            shutil.copytree(src / p, root / "artifacts" / p)
    else:
        root.mkdir(parents=True, exist_ok=True)
    return root


def search_doc(name: str, space: dict, *, trials: int, sampler: dict, scheduler: dict, fixed: dict | None = None,
               max_concurrent: int = 2, pipeline: str = "pipelines/default.yaml", root: Path = REPO) -> dict:
    return {
        "name": name, "pipeline": str(REPO / pipeline), "root": str(root),
        "objectives": {"student.accuracy": "max"}, "fixed": dict(fixed or {}), "space": space,
        "budget": {"trials": trials, "max_concurrent": max_concurrent, "resources": {"cpu": 1, "gpu": 0}},
        "scheduler": scheduler, "sampler": sampler, "max_failures": 0,
    }


def run(doc: dict, workdir: Path, quiet: bool = True):
    """Run one search; return (outcome, wall seconds of run_search)."""
    from autokd.search.hparams.run import run_search

    workdir.mkdir(parents=True, exist_ok=True)
    spec = workdir / f"{doc['name']}.yaml"
    spec.write_text(yaml.safe_dump(doc, sort_keys=False))
    t0 = time.perf_counter()
    # record_experiments=False: a benchmark's trials are no experiments of this repository
    outcome = run_search(spec, out_dir=workdir / doc["name"], base_dir=REPO, overwrite=True, live=False,
                         log=(lambda _: None) if quiet else print, record_experiments=False)
    return outcome, time.perf_counter() - t0


def start(num_cpus: int | None = None) -> None:
    from autokd.search.hparams.ray_backend import start_ray

    start_ray(num_cpus=num_cpus)


def command() -> str:
    return "python " + " ".join([os.path.relpath(sys.argv[0], REPO)] + sys.argv[1:])


def machine() -> str:
    import platform

    import torch

    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}"
