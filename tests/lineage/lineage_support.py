"""A small tree of real manifests (written by ``write_manifest``), shared by the lineage
tests (not collected: no ``test_`` prefix)."""

from __future__ import annotations

import json
from pathlib import Path

from autokd.lineage.manifest import write_manifest


def artifact(root: Path, rel: str, kind: str, files: dict[str, bytes], parents: list[str] = (), spec=None,
             metrics=None) -> dict:
    folder = root / rel
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return write_manifest(folder, kind=kind, content=list(files), parents=[root / p for p in parents],
                          spec=spec or {}, metrics=metrics or {}, root=root)


TRIALS = [
    {"trial": "t0", "number": 0, "status": "completed", "reason": "", "params": {"distill.temperature": 2.0},
     "patch": {"distill.temperature": 2.0}, "epochs": 3, "max_epochs": 3,
     "final": {"val_accuracy": 0.81, "test_accuracy": 0.8}, "best": {"epoch": 3, "val_accuracy": 0.81},
     "seconds": 1.0, "node": "n", "nodes": ["n"], "lineage": {"data_sha256": "x"}},
    {"trial": "t1", "number": 1, "status": "stopped", "reason": "early", "params": {"distill.temperature": 6.0},
     "patch": {"distill.temperature": 6.0}, "epochs": 1, "max_epochs": 3,
     "final": {"val_accuracy": 0.5}, "best": {"epoch": 1, "val_accuracy": 0.5},
     "seconds": 0.4, "node": "n", "nodes": ["n"], "lineage": {}},
]


def small_tree(root: Path) -> Path:
    """data -> teacher -> student (and data -> student), {teacher, student} -> reports,
    {data, teacher} -> searches/s (two trials), and a three-step chain under runs/c that
    records paths relative to runs/c."""
    artifact(root, "artifacts/data", "dataset", {"train.bin": b"train" * 100, "meta.json": b"{}"},
             spec={"data": {"seed": 0, "split": [0.6, 0.2, 0.2]}}, metrics={"n_train": 500})
    artifact(root, "artifacts/teacher", "teacher", {"model.safetensors": b"T" * 4096}, ["artifacts/data"],
             spec={"teacher": {"train": {"lr": 0.01, "epochs": 3}}}, metrics={"val_accuracy": 0.9})
    artifact(root, "artifacts/student", "student", {"model.safetensors": b"S" * 2048},
             ["artifacts/data", "artifacts/teacher"],
             spec={"student": {"train": {"lr": 0.01}}, "distill": {"method": "kd", "params": {"temperature": 4.0}}},
             metrics={"val_accuracy": 0.8})
    artifact(root, "reports", "evaluation", {"metrics.json": b'{"a": 1}'}, ["artifacts/teacher", "artifacts/student"],
             metrics={"student.accuracy": 0.8})
    search = root / "searches" / "s"
    search.mkdir(parents=True)
    (search / "trials.json").write_text(json.dumps(TRIALS))
    write_manifest(search, kind="search", content=["trials.json"],
                   parents=[root / "artifacts/data", root / "artifacts/teacher"], spec={"search": {"name": "s"}},
                   metrics={"trials": 2}, root=root)
    chain = root / "runs" / "c"
    artifact(chain, "artifacts/data", "dataset", {"train.bin": b"other" * 10})
    artifact(chain, "artifacts/ta", "ta", {"model.safetensors": b"A" * 100}, ["artifacts/data"])
    artifact(chain, "artifacts/student", "student", {"model.safetensors": b"B" * 100},
             ["artifacts/data", "artifacts/ta"])
    return root


EDGES = {
    ("artifacts/data", "artifacts/teacher"), ("artifacts/data", "artifacts/student"),
    ("artifacts/teacher", "artifacts/student"), ("artifacts/teacher", "reports"), ("artifacts/student", "reports"),
    ("artifacts/data", "searches/s"), ("artifacts/teacher", "searches/s"),
    ("searches/s", "searches/s/trials/t0"), ("searches/s", "searches/s/trials/t1"),
    ("runs/c/artifacts/data", "runs/c/artifacts/ta"), ("runs/c/artifacts/data", "runs/c/artifacts/student"),
    ("runs/c/artifacts/ta", "runs/c/artifacts/student"),
}
NODES = {
    "artifacts/data": "dataset", "artifacts/teacher": "teacher", "artifacts/student": "student",
    "reports": "evaluation", "searches/s": "search", "searches/s/trials/t0": "trial", "searches/s/trials/t1": "trial",
    "runs/c/artifacts/data": "dataset", "runs/c/artifacts/ta": "ta", "runs/c/artifacts/student": "student",
}


def rebuild_teacher(root: Path) -> dict:
    """The teacher trained again (other weights): its children now record an old hash."""
    return artifact(root, "artifacts/teacher", "teacher", {"model.safetensors": b"U" * 4096}, ["artifacts/data"],
                    spec={"teacher": {"train": {"lr": 0.02, "epochs": 3}}}, metrics={"val_accuracy": 0.92})
