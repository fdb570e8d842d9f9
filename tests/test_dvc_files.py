"""Every committed DVC file that a generator writes is what the generator writes today, and every
``dvc exp run -S FILE:KEY=VALUE`` the DVC files and the README advertise is a spec that validates."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from autokd.cli import app

REPO = Path(__file__).resolve().parents[1]

#: (DVC file, the command that writes it, run at the repo root)
GENERATED = [
    ("dvc.yaml", ["dvc", "pipelines/default.yaml"]),
    ("pipelines/lm/dvc.yaml", ["dvc", "pipelines/lm.yaml", "--root", "runs/lm", "--wdir", "../.."]),
    ("pipelines/takd/dvc.yaml", ["chain", "dvc", "pipelines/takd.yaml", "--root", "runs/takd"]),
    ("pipelines/born_again/dvc.yaml", ["chain", "dvc", "pipelines/born_again.yaml", "--root", "runs/born_again"]),
    ("pipelines/blockwise/dvc.yaml", ["chain", "dvc", "pipelines/blockwise.yaml", "--root", "runs/blockwise"]),
    ("pipelines/compare/dvc.yaml", ["compare", "dvc"]),
    ("pipelines/arch/dvc.yaml", ["search", "arch-dvc", "search_spaces/students.yaml"]),
]


@pytest.mark.parametrize("dvc_file,args", GENERATED, ids=[g[0] for g in GENERATED])
def test_committed_dvc_file_is_the_generated_one(dvc_file, args, monkeypatch):
    monkeypatch.chdir(REPO)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.output == (REPO / dvc_file).read_text(), f"regenerate: autokd {' '.join(args)} > {dvc_file}"


def test_generated_root_file_is_what_dvc_reads():
    doc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    assert list(doc["stages"]) == ["prepare", "train_teacher", "train_baseline", "distill", "evaluate", "export"]
    assert doc["stages"]["distill"]["params"] == [{"pipelines/default.yaml": ["student", "distill", "runtime"]}]
    assert {"checkpoints/student": {"persist": True, "cache": False}} in doc["stages"]["distill"]["outs"]
    assert doc["stages"]["export"]["cmd"].startswith("python -m autokd export artifacts/student")


def _advertised_experiments() -> list[tuple[str, str, str]]:
    texts = [(REPO / "README.md").read_text()] + [p.read_text() for p in [REPO / "dvc.yaml",
                                                                          *REPO.glob("pipelines/*/dvc.yaml")]]
    found = set()
    for text in texts:
        for m in re.finditer(r"dvc exp run -S ([\w/.-]+\.yaml):([\w.]+)=(\S+)", text):
            found.add(m.groups())
    return sorted(found)


def test_advertised_experiment_overrides_validate(monkeypatch):
    from autokd.stages.task import load_task_spec

    monkeypatch.chdir(REPO)
    found = _advertised_experiments()
    assert found, "the README and dvc.yaml advertise at least one experiment"
    for spec_file, key, value in found:
        _, spec = load_task_spec(spec_file, overrides={key: yaml.safe_load(value)})
        node = spec
        for part in key.split("."):
            node = getattr(node, part)
        assert node == yaml.safe_load(value), (spec_file, key)
