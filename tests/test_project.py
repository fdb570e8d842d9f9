"""``autokd init``: a user's own git + DVC project from the installed package (fast part; the wheel
in a fresh venv is ``test_wheel_project.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from autokd.cli import app

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("rel", ["pipelines/default.yaml", "pipelines/lm.yaml", "search_spaces/default.yaml",
                                 "search_spaces/lm.yaml"])
def test_shipped_specs_are_the_repository_files(rel):
    from importlib import resources

    assert resources.files("autokd.resources").joinpath(rel).read_bytes() == (REPO / rel).read_bytes(), \
        f"copy {rel} to autokd/resources/{rel}"


def test_version_from_one_place():
    from autokd import __version__

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"autokd {__version__}"
    assert 'version = { attr = "autokd.__version__" }' in (REPO / "pyproject.toml").read_text()


def _init(tmp_path, *args):
    return CliRunner().invoke(app, ["init", str(tmp_path), *args])


def test_init_classify_on_a_csv(tmp_path):
    proj = tmp_path / "proj"
    csv = tmp_path / "rows.csv"
    csv.write_text("a,b,label\n" + "".join(f"{i},{i % 7},{i % 3}\n" for i in range(60)))
    result = _init(proj, "--data", f"csv:{csv}", "--name", "rows")
    assert result.exit_code == 0, result.output
    for rel in ("pipelines/rows.yaml", "search_spaces/rows.yaml", "dvc.yaml", ".gitignore", ".dvcignore",
                "README.md", ".autokd/project.json", ".git", ".dvc"):
        assert (proj / rel).exists(), rel
    assert "analytics = false" in (proj / ".dvc" / "config").read_text()
    spec = yaml.safe_load((proj / "pipelines/rows.yaml").read_text())
    assert spec["data"] == {"source": "csv", "split": {"train": 0.6, "val": 0.2, "test": 0.2}, "seed": 0,
                            "normalize": True, "path": str(csv)}
    assert spec["teacher"]["model"]["name"] == spec["student"]["model"]["name"] == "mlp"
    space = yaml.safe_load((proj / "search_spaces/rows.yaml").read_text())
    assert space["pipeline"] == "pipelines/rows.yaml" and space["root"] == "." and "student.model" not in space["space"]
    dvc = yaml.safe_load((proj / "dvc.yaml").read_text())["stages"]
    assert list(dvc)[0] == "code" and dvc["code"]["always_changed"] is True
    for name, stage in dvc.items():
        if name != "code":  # the installed autokd, not source folders the project does not have
            assert ".autokd/code.json" in stage["deps"] and not any(d.startswith("autokd/") for d in stage["deps"])
    assert "# The classify pipeline pipelines/rows.yaml" in (proj / "dvc.yaml").read_text()


def test_init_refuses_a_non_empty_folder_and_keeps_changed_files(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    result = _init(tmp_path)
    assert result.exit_code == 2 and "not empty" in result.output and "--force" in result.output
    assert _init(tmp_path, "--force").exit_code == 0
    (tmp_path / "README.md").write_text("my own readme\n")
    dvc = yaml.safe_load((tmp_path / "dvc.yaml").read_text())
    dvc["stages"]["publish"] = {"cmd": "echo publish", "deps": ["artifacts/student"]}
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(dvc, sort_keys=False))
    result = _init(tmp_path, "--update")
    assert result.exit_code == 0, result.output
    assert "kept (changed by you, not overwritten): README.md" in result.output
    assert (tmp_path / "README.md").read_text() == "my own readme\n"
    assert (tmp_path / "notes.txt").read_text() == "mine"
    stages = yaml.safe_load((tmp_path / "dvc.yaml").read_text())["stages"]
    assert stages["publish"] == {"cmd": "echo publish", "deps": ["artifacts/student"]}  # the user's stage stays
    assert "distill" in stages


def test_update_adds_the_dvc_file_of_a_chain_the_user_added(tmp_path, monkeypatch):
    """A chain spec dropped into pipelines/ gets pipelines/<chain>/dvc.yaml on ``init --update``,
    on the installed code (no autokd/ source folders), which real DVC accepts as one graph with the
    root's ``code`` stage; a chain spec that does not validate is exit 2 naming the file."""
    import subprocess

    assert _init(tmp_path).exit_code == 0
    (tmp_path / "pipelines" / "takd.yaml").write_text((REPO / "pipelines" / "takd.yaml").read_text())
    result = _init(tmp_path, "--update")
    assert result.exit_code == 0, result.output
    assert "pipelines/takd/dvc.yaml" in result.output
    text = (tmp_path / "pipelines" / "takd" / "dvc.yaml").read_text()
    assert "autokd init . --update" in text
    stages = yaml.safe_load(text)["stages"]
    assert {"prepare", "teacher", "ta", "student", "evaluate"} <= set(stages)
    for name, stage in stages.items():
        assert ".autokd/code.json" in stage["deps"] and not any(d.startswith("autokd/") for d in stage["deps"]), name
        assert stage["wdir"] == "../.." and stage["cmd"].startswith("python -m autokd chain ")
    dag = subprocess.run(["dvc", "dag", "--md", "pipelines/takd/dvc.yaml:evaluate"], cwd=tmp_path,
                         capture_output=True, text=True)
    assert dag.returncode == 0, dag.stderr
    assert "code" in dag.stdout and "pipelines/takd/dvc.yaml:ta" in dag.stdout
    # the same file from the chain command in the project (its default code mode there: installed)
    monkeypatch.chdir(tmp_path)
    printed = CliRunner().invoke(app, ["chain", "dvc", "pipelines/takd.yaml"])
    assert printed.exit_code == 0 and yaml.safe_load(printed.output)["stages"] == stages

    # a comparison spec in a folder of pipelines/: its dvc.yaml beside it (the spec is its vars)
    (tmp_path / "pipelines" / "compare").mkdir()
    (tmp_path / "pipelines" / "compare" / "methods.yaml").write_text(
        (REPO / "pipelines" / "compare" / "methods.yaml").read_text())
    result = _init(tmp_path, "--update")
    assert result.exit_code == 0 and "pipelines/compare/dvc.yaml" in result.output, result.output
    compare = yaml.safe_load((tmp_path / "pipelines" / "compare" / "dvc.yaml").read_text())
    assert compare["vars"] == ["methods.yaml"]
    for name, stage in compare["stages"].items():
        assert not any(d.startswith("autokd/") for d in stage["deps"]), name
        assert name == "aggregate" or ".autokd/code.json" in stage["deps"], name
    dag = subprocess.run(["dvc", "dag", "--md", "pipelines/compare/dvc.yaml:aggregate"], cwd=tmp_path,
                         capture_output=True, text=True)
    assert dag.returncode == 0 and "distill@kd-0" in dag.stdout, dag.stderr

    (tmp_path / "pipelines" / "bad.yaml").write_text("name: bad\nsteps: [{name: s, distill: {method: nope}}]\n")
    result = _init(tmp_path, "--update")  # a relative DIR would do too: the cwd is the project
    assert result.exit_code == 2 and "pipelines/bad.yaml" in result.output and "Traceback" not in result.output


def test_init_lm_on_a_text_folder_and_bad_options(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(12):
        (docs / f"{i:02d}.txt").write_text(f"document {i} " * 40)
    result = _init(tmp_path / "lm", "--task", "lm", "--data", f"folder:{docs}")
    assert result.exit_code == 0, result.output
    spec = yaml.safe_load((tmp_path / "lm" / "pipelines/lm.yaml").read_text())
    assert spec["task"] == "lm" and spec["data"]["source"] == "files" and spec["data"]["path"] == str(docs)
    assert "block_chars" not in spec["data"]
    assert yaml.safe_load((tmp_path / "lm" / "search_spaces/lm.yaml").read_text())["root"] == "."
    for args, message in ((["--data", "pydoc"], "lm data"), (["--data", "xls:foo"], "expected digits"),
                          (["--task", "vision"], "expected classify or lm")):
        result = _init(tmp_path / "bad", *args)
        assert result.exit_code == 2 and message in result.output, (args, result.output)
        assert "Traceback" not in result.output


def test_code_record_is_stable_and_follows_the_code(tmp_path):
    from autokd.utils.code import STAGE_CODE, installed_code, source_digest

    out = tmp_path / "code.json"
    first = CliRunner().invoke(app, ["code-record", str(out)])
    assert first.exit_code == 0
    mtime = out.stat().st_mtime_ns
    assert CliRunner().invoke(app, ["code-record", str(out)]).exit_code == 0
    assert out.stat().st_mtime_ns == mtime  # same code: not rewritten, so DVC sees nothing new
    assert json.loads(out.read_text()) == installed_code()
    # the digest covers the files' bytes: a copy of the package gives the same, a changed file another
    import shutil

    import autokd

    pkg = Path(autokd.__file__).parent
    copy = tmp_path / "copy"
    for sub in STAGE_CODE:
        shutil.copytree(pkg / sub, copy / sub, ignore=shutil.ignore_patterns("__pycache__"))
    assert source_digest(copy, STAGE_CODE) == source_digest(pkg, STAGE_CODE)
    with open(copy / "train" / "trainer.py", "a") as fh:
        fh.write("\n# an upgrade\n")
    assert source_digest(copy, STAGE_CODE) != source_digest(pkg, STAGE_CODE)



@pytest.mark.parametrize("repo", ["git + dvc, no commit", "plain folder"])
def test_training_curves_are_written_in_a_fresh_project(tmp_path, monkeypatch, repo):
    """A stage's per-epoch log works right after ``git init`` + ``dvc init`` (before any commit:
    dvclive 3.49 raised ``Empty git repo`` there) and, outside DVC, runs no ``dvc init``."""
    import subprocess

    from autokd.stages.layout import LiveLogger

    if repo != "plain folder":
        subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
        subprocess.run(["dvc", "init", "-q"], cwd=tmp_path, check=True)
    monkeypatch.chdir(tmp_path)
    live = LiveLogger(tmp_path / "dvclive" / "teacher")
    live.log({"train_loss": 0.5, "val_accuracy": 0.75})
    live.log({"train_loss": 0.25, "val_accuracy": 0.875})
    live.close()
    metrics = json.loads((tmp_path / "dvclive/teacher/metrics.json").read_text())
    assert metrics["step"] == 1 and metrics["train"]["loss"] == 0.25 and metrics["val"]["accuracy"] == 0.875
    rows = (tmp_path / "dvclive/teacher/plots/metrics/train/loss.tsv").read_text().split()
    assert rows == ["step", "loss", "0", "0.5", "1", "0.25"]
    assert (tmp_path / ".dvc").exists() == (repo != "plain folder")
