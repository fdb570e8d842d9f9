"""A tiny project for the export tests: prepared digits, a teacher and a distilled student,
each a real artifact (``save_model`` + ``write_manifest``), and an evaluation metrics file.

The models are built through the registry from a fixed seed and trained for a few steps (so
the logits are not those of an untouched initialisation); no pipeline stage runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from autokd.data.prepare import load_prepared, prepare_data
from autokd.lineage.manifest import write_manifest
from autokd.models import build_model
from autokd.models.artifact import MODEL_FILE, save_model
from autokd.spec.pipeline import DataSpec

TEACHER = ("mlp", {"hidden": [32]})
STUDENT = ("cnn", {"stem_width": 4, "depths": [1, 1], "widths": [4, 8]})  # BatchNorm: the exporter fuses it
DISTILL = {"method": "kd", "alpha": 0.9, "params": {"temperature": 4.0}, "features": [], "teacher_outputs": "auto"}
TRAIN = {"optimizer": "adamw", "lr": 0.01, "epochs": 1, "batch_size": 64, "seed": 0}


@dataclass
class Project:
    root: Path
    data: Path
    teacher: Path
    student: Path
    metrics: dict


def _train(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int = 20) -> torch.nn.Module:
    opt = torch.optim.AdamW(model.parameters(), lr=0.01)
    model.train()
    for step in range(steps):
        i = slice((step * 32) % len(x), (step * 32) % len(x) + 32)
        opt.zero_grad()
        F.cross_entropy(model(x[i]), y[i]).backward()
        opt.step()
    return model.eval()


def _save(root: Path, role: str, family: tuple[str, dict], data, parents: list[Path], spec: dict, metrics: dict,
          seed: int) -> Path:
    torch.manual_seed(seed)
    model = _train(build_model(family[0], family[1], data.input_shape, data.num_classes), data.train.x, data.train.y)
    out = root / "artifacts" / role
    out.mkdir(parents=True)
    save_model(out / MODEL_FILE, model, family[0], family[1], data.input_shape, data.num_classes)
    write_manifest(out, kind=role, content=[MODEL_FILE], parents=parents, spec=spec, metrics=metrics, root=root)
    return out


@pytest.fixture(scope="session")
def project(tmp_path_factory) -> Project:
    root = tmp_path_factory.mktemp("exportproj")
    data_dir = root / "artifacts" / "data"
    spec = DataSpec(source="digits", max_samples=300, seed=0)
    prepared = prepare_data(spec, data_dir)
    write_manifest(data_dir, kind="dataset", content=["train.safetensors", "val.safetensors", "test.safetensors",
                                                       "meta.json"],
                   spec={"data": spec.model_dump()}, metrics={"n_test": len(prepared.test)}, root=root)
    data = load_prepared(data_dir)
    teacher = _save(root, "teacher", TEACHER, data, [data_dir],
                    {"teacher": {"model": {"name": TEACHER[0], "params": TEACHER[1]}, "train": TRAIN}},
                    {"val_accuracy": 0.875}, seed=1)
    student = _save(root, "student", STUDENT, data, [data_dir, teacher],
                    {"student": {"model": {"name": STUDENT[0], "params": STUDENT[1]}, "train": TRAIN},
                     "distill": DISTILL}, {"val_accuracy": 0.8125}, seed=2)
    metrics = {
        "teacher": {"accuracy": 0.9321, "nll": 0.2, "params": 2410, "latency_ms": 0.123456},
        "baseline": {"accuracy": 0.8642, "nll": 0.4, "params": 1382, "latency_ms": 0.111},
        "student": {"accuracy": 0.8765, "nll": 0.35, "params": 1382, "latency_ms": 0.0987654, "throughput": 1e5,
                    "agreement": 0.9},
        "kd_gain": 0.0123, "compression": 1.74, "test_samples": len(data.test),
    }
    (root / "reports").mkdir()
    (root / "reports" / "metrics.json").write_text(json.dumps(metrics))
    return Project(root=root, data=data_dir, teacher=teacher, student=student, metrics=metrics)


@pytest.fixture(scope="session")
def exported(project, tmp_path_factory):
    """``exported(fmt)``: the student exported once per format (through the library), and its record."""
    from autokd.export import export_artifact

    done: dict[str, tuple[Path, dict]] = {}

    def get(fmt: str) -> tuple[Path, dict]:
        if fmt not in done:
            out = tmp_path_factory.mktemp(f"export_{fmt}")
            record = export_artifact(project.student, fmt, out, root=project.root)
            done[fmt] = (out, record)
        return done[fmt]

    return get
