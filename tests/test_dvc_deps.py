"""Every DVC stage lists the library code it runs: a change there must rerun the stage.

Each stage command runs in a fresh interpreter on a tiny spec (the default pipeline's five
stages, a chain's steps with block-wise stones, a comparison run); the ``autokd`` source
files it imported are recorded and must be covered by that stage's ``deps`` in ``dvc.yaml``,
``pipelines/compare/dvc.yaml`` and every generated ``pipelines/<chain>/dvc.yaml`` (a dep
covers a file if it is the file or a folder above it). A structural check (fast) asserts that
every stage of those files lists :data:`autokd.stages.dvcgen.CODE_DEPS`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from autokd.stages.dvcgen import CODE_DEPS
from tests.conftest import TINY_SPEC, tiny_cnn_spec

REPO = Path(__file__).resolve().parents[1]
DVC_FILES = [REPO / "dvc.yaml", REPO / "pipelines" / "compare" / "dvc.yaml"] + sorted(
    p for p in (REPO / "pipelines").glob("*/dvc.yaml") if p.parent.name not in ("compare", "arch"))

# Runs the CLI as `python -m autokd …` does, then prints the autokd files it imported.
PROBE = """
import json, sys
from pathlib import Path
argv = json.loads(sys.argv[1])
sys.argv = ["autokd"] + argv
import runpy
try:
    runpy.run_module("autokd", run_name="__main__")
except SystemExit as exc:
    if exc.code not in (0, None):
        raise
files = sorted({m.__file__ for name, m in list(sys.modules.items())
                if (name == "autokd" or name.startswith("autokd.")) and getattr(m, "__file__", None)})
print("IMPORTED=" + json.dumps(files))
"""


def imported_files(argv: list[str], cwd: Path) -> set[str]:
    """The repo-relative paths of the autokd modules a CLI command imported."""
    out = subprocess.run([sys.executable, "-c", PROBE, json.dumps(argv)], cwd=cwd, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    line = next(x for x in out.stdout.splitlines() if x.startswith("IMPORTED="))
    return {Path(f).resolve().relative_to(REPO).as_posix() for f in json.loads(line[len("IMPORTED="):])}


def covered(path: str, deps: list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps)


def stage_deps(dvc_file: Path) -> dict[str, list[str]]:
    stages = yaml.safe_load(dvc_file.read_text())["stages"]
    return {name: [d if isinstance(d, str) else next(iter(d)) for d in st.get("deps", [])]
            for name, st in stages.items()}


@pytest.mark.parametrize("dvc_file", DVC_FILES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_stage_lists_the_library(dvc_file):
    for name, deps in stage_deps(dvc_file).items():
        if name == "aggregate":  # reads the runs' JSON only, through the CLI: checked below
            continue
        missing = [d for d in CODE_DEPS if d not in deps]
        assert not missing, f"{dvc_file.relative_to(REPO)}: stage {name} lacks {missing}"
    for dep in CODE_DEPS:
        assert (REPO / dep).exists(), dep


def _assert_covered(files: set[str], deps: list[str], what: str) -> None:
    uncovered = sorted(f for f in files if not covered(f, deps))
    assert not uncovered, f"{what} imports {uncovered}, which its dvc.yaml deps do not cover"


@pytest.mark.slow
def test_default_pipeline_stages_depend_on_what_they_import(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY_SPEC)
    deps = stage_deps(REPO / "dvc.yaml")
    for stage in ("prepare", "train_teacher", "train_baseline", "distill", "evaluate"):
        files = imported_files(["stage", stage, str(spec), "--root", str(tmp_path / "run")], REPO)
        assert "autokd/stages/pipeline.py" in files and "autokd/cli/__init__.py" in files
        _assert_covered(files, deps[stage], f"stage {stage}")


@pytest.mark.slow
def test_chain_and_comparison_stages_depend_on_what_they_import(tmp_path):
    from tests.test_chain import TINY_CHAIN

    chain = {**json.loads(json.dumps(TINY_CHAIN)), "name": "takd", "direct": False, "ensemble": False}
    spec = tmp_path / "takd.yaml"
    spec.write_text(yaml.safe_dump(chain))
    root = str(tmp_path / "chain")
    deps = stage_deps(REPO / "pipelines" / "takd" / "dvc.yaml")
    for stage in ("prepare", "teacher", "ta", "student", "baseline"):  # `student` has block-wise stepping stones
        files = imported_files(["chain", "step", str(spec), stage, "--root", root], REPO)
        _assert_covered(files, deps.get(stage, deps["student"]), f"chain stage {stage}")
    _assert_covered(imported_files(["chain", "evaluate", str(spec), "--root", root], REPO), deps["evaluate"],
                    "chain stage evaluate")

    # a comparison run, on a root holding the pipeline's data and teacher
    work = tmp_path / "cmp"
    (work / "pipelines").mkdir(parents=True)
    (work / "pipelines" / "p.yaml").write_text(tiny_cnn_spec(student_epochs=1))
    (work / "methods.yaml").write_text("pipeline: pipelines/p.yaml\nseeds: [0]\nmethods: {kd: {}, rkd: {}}\n")
    for stage in ("prepare", "train_teacher"):
        imported_files(["stage", stage, "pipelines/p.yaml"], work)
    cdeps = stage_deps(REPO / "pipelines" / "compare" / "dvc.yaml")
    for method, stage in (("rkd", "distill"), ("baseline", "baseline")):
        files = imported_files(["compare", "run", method, "0", "--spec", "methods.yaml"], work)
        _assert_covered(files, cdeps[stage], f"comparison stage {stage} ({method})")
