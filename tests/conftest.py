"""Shared fixtures. Slow tests (real `dvc repro`, Ray clusters) run with ``--slow``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
torch.set_num_threads(1)


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", default=False, help="also run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--slow") or os.environ.get("AUTOKD_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: run with --slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


TINY_SPEC = """
name: tiny
data:
  source: digits
  max_samples: 400
  seed: 0
teacher:
  model: {name: cnn, params: {stem_width: 8, depths: [1, 1], widths: [8, 16]}}
  train: {epochs: 3, batch_size: 64, lr: 0.01, seed: 0}
student:
  model: {name: mlp, params: {hidden: [16]}}
  train: {epochs: 3, batch_size: 64, lr: 0.01, seed: 0}
distill: {method: kd, temperature: 4.0, alpha: 0.9}
evaluate: {latency_runs: 5, latency_warmup: 1, throughput_batch: 32}
runtime: {device: cpu, num_threads: 1}
"""


@pytest.fixture
def tiny_spec_text() -> str:
    return TINY_SPEC


@pytest.fixture
def tiny_spec(tmp_path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_SPEC)
    return path


def tiny_cnn_spec(student_epochs: int, extra: str = "") -> str:
    """A tiny digits pipeline with a CNN teacher and a CNN student (features on both sides),
    shared by the method, comparison and architecture-search tests."""
    return f"""
name: tiny
data: {{source: digits, max_samples: 300, seed: 0}}
teacher:
  model: {{name: cnn, params: {{stem_width: 8, depths: [1, 1], widths: [8, 16]}}}}
  train: {{epochs: 2, batch_size: 64, lr: 0.01, seed: 0}}
student:
  model: {{name: cnn, params: {{stem_width: 4, depths: [1, 1], widths: [4, 8]}}}}
  train: {{epochs: {student_epochs}, batch_size: 64, lr: 0.01, seed: 0}}
distill: {{method: kd, temperature: 4.0, alpha: 0.9}}
{extra}runtime: {{device: cpu, num_threads: 1}}
"""
