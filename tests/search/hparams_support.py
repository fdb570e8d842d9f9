"""Shared pieces of the hyperparameter-search tests (not collected: no ``test_`` prefix)."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]

#: A pipeline that trains in about a second: 400 digits, a small CNN teacher, an MLP student.
TINY_PIPELINE = {
    "name": "tiny",
    "data": {"source": "digits", "max_samples": 400, "seed": 0},
    "teacher": {"model": {"name": "cnn", "params": {"stem_width": 8, "depths": [1, 1], "widths": [8, 16]}},
                "train": {"epochs": 3, "batch_size": 64, "lr": 0.01, "seed": 0}},
    "student": {"model": {"name": "mlp", "params": {"hidden": [16]}},
                "train": {"epochs": 3, "batch_size": 64, "lr": 0.01, "seed": 0}},
    "distill": {"method": "kd", "temperature": 4.0, "alpha": 0.9},
    "evaluate": {"latency_runs": 5, "latency_warmup": 1, "throughput_batch": 32},
    "runtime": {"device": "cpu", "num_threads": 1},
}

#: Feature pair for feature methods with the MLP student (its 16-d penultimate layer vs the
#: teacher's 16-d pooled feature).
FEATURES = [{"student": "penultimate", "teacher": "pool"}]


def write_pipeline(directory: Path, name: str = "tiny.yaml", **changes) -> Path:
    data = yaml.safe_load(yaml.safe_dump(TINY_PIPELINE))
    for dotted, value in changes.items():
        node = data
        parts = dotted.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    path = directory / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def write_search(directory: Path, doc: dict, name: str = "search.yaml") -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def tiny_search(pipeline: Path, root: Path, **changes) -> dict:
    """A 4-trial search: T, alpha and the method (dkd's beta conditional; fitnet runs the teacher)."""
    doc = {
        "name": "tiny",
        "pipeline": str(pipeline),
        "root": str(root),
        "objectives": {"student.accuracy": "max"},
        "space": {
            "distill.temperature": {"type": "loguniform", "low": 1.0, "high": 8.0},
            "distill.alpha": {"type": "uniform", "low": 0.1, "high": 0.9},
            "distill.method": {
                "type": "choice", "values": ["kd", "dkd", "fitnet"],
                "conditional": {
                    "dkd": {"distill.params.beta": {"type": "uniform", "low": 1.0, "high": 8.0},
                            "distill.params.warmup_epochs": 1},
                    "fitnet": {"distill.features": FEATURES},
                },
            },
        },
        "budget": {"trials": 4, "max_concurrent": 2, "resources": {"cpu": 1}},
        "scheduler": {"type": "asha", "grace_period": 1, "reduction_factor": 2},
        "sampler": {"type": "random", "seed": 10},
    }
    doc.update(changes)
    return doc


def copy_inputs(src_root: Path, dst_root: Path) -> None:
    """Copy prepared data and the teacher (with its outputs) to another pipeline root."""
    for d in ("data", "teacher", "teacher_outputs"):
        shutil.copytree(src_root / "artifacts" / d, dst_root / "artifacts" / d)
