"""The product's home is the user's repo: the built wheel, installed into a fresh venv with no
source tree, makes a project with ``autokd init`` and runs ``dvc repro`` there (real DVC, real
training); a reinstall of the same wheel reruns nothing, a changed installed file reruns training.

The fresh venv sees the test environment's dependencies through a ``.pth`` line (so no 2 GB of
torch is installed again), and autokd only from the wheel (checked)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _run(cmd, cwd, env, **kw):
    r = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=900, **kw)
    assert r.returncode == 0, f"{cmd}: {r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout + r.stderr


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    shutil.copytree(REPO / "autokd", src / "autokd", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    _run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", tmp / "dist", src], tmp, env)
    wheel = next((tmp / "dist").glob("autokd-*.whl"))
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", venv], tmp, env)
    py = venv / "bin" / "python"
    site = Path(_run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp, env).strip())
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([py, "-m", "pip", "install", "-q", "--no-deps", wheel], tmp, env)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
    where = _run([py, "-c", "import autokd; print(autokd.__file__)"], tmp, env).strip()
    assert where.startswith(str(site)), where  # the wheel's autokd, not the checkout's
    return {"py": py, "env": env, "wheel": wheel, "site": site, "tmp": tmp}


def test_wheel_carries_the_package_data(installed):
    import zipfile

    names = zipfile.ZipFile(installed["wheel"]).namelist()
    for rel in ("autokd/resources/pipelines/default.yaml", "autokd/resources/pipelines/lm.yaml",
                "autokd/resources/search_spaces/default.yaml", "autokd/resources/search_spaces/lm.yaml"):
        assert rel in names
    out = _run([installed["py"], "-m", "autokd", "--version"], installed["tmp"], installed["env"])
    from autokd import __version__

    assert out.strip() == f"autokd {__version__}"


def test_init_and_repro_in_a_user_project(installed):
    py, env, tmp = installed["py"], installed["env"], installed["tmp"]
    csv = tmp / "rows.csv"
    csv.write_text("a,b,c,label\n" + "".join(f"{i % 5},{(i * 7) % 11},{i % 3},{i % 3}\n" for i in range(90)))
    proj = tmp / "proj"
    _run([py, "-m", "autokd", "init", proj, "--data", f"csv:{csv}", "--name", "rows"], tmp, env)
    spec_file = proj / "pipelines" / "rows.yaml"
    spec = yaml.safe_load(spec_file.read_text())
    for role in ("teacher", "student"):
        spec[role]["train"]["epochs"] = 2
    spec["evaluate"]["latency_runs"] = 2
    spec_file.write_text(yaml.safe_dump(spec, sort_keys=False))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    _run(git + ["add", "-A"], proj, env)
    _run(git + ["commit", "-qm", "init"], proj, env)
    first = _run([py, "-m", "dvc", "repro"], proj, env)
    assert "Running stage 'distill'" in first
    metrics = yaml.safe_load((proj / "reports" / "metrics.json").read_text())
    assert 0.0 <= metrics["student"]["accuracy"] <= 1.0
    code = yaml.safe_load((proj / ".autokd" / "code.json").read_text())
    assert set(code) == {"autokd", "code"}

    _run([py, "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", installed["wheel"]], tmp, env)
    again = _run([py, "-m", "dvc", "repro"], proj, env)
    assert "Running stage 'train_teacher'" not in again and "Running stage 'distill'" not in again

    trainer = installed["site"] / "autokd" / "train" / "trainer.py"
    trainer.write_text(trainer.read_text() + "\n# an upgrade that changes the training code\n")
    upgraded = _run([py, "-m", "dvc", "repro"], proj, env)
    assert "Running stage 'train_teacher'" in upgraded and "Running stage 'distill'" in upgraded


def test_search_trials_are_experiments_of_the_user_project(installed):
    """A 4-trial search in the project: `dvc exp show --json` lists every trial with params and
    metrics, and `dvc exp apply` + `dvc repro` reproduces one trial's test metrics exactly."""
    import json

    py, env, tmp = installed["py"], installed["env"], installed["tmp"]
    proj = tmp / "proj"  # made and reproduced by the test above
    space_file = proj / "search_spaces" / "rows.yaml"
    space = yaml.safe_load(space_file.read_text())
    space["budget"].update({"trials": 4, "max_concurrent": 2})
    space["scheduler"] = {"type": "fifo"}
    space["space"].pop("distill.method", None)
    space["space"]["distill.method"] = {"type": "choice", "values": ["kd", "lskd"]}
    space_file.write_text(yaml.safe_dump(space, sort_keys=False))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    _run(git + ["add", "-A"], proj, env)
    _run(git + ["commit", "-qm", "search space"], proj, env)
    _run([py, "-m", "autokd", "search", "hparams", "search_spaces/rows.yaml"], proj, env)
    shown = json.loads(_run([py, "-m", "dvc", "exp", "show", "--json"], proj, env))
    exps = [e for rev in shown for e in (rev.get("experiments") or [])]
    assert len(exps) == 4, [e.get("name") for e in exps]
    for e in exps:
        data = e["revs"][0]["data"]
        assert data["params"]["pipelines/rows.yaml"]["data"]["distill"]["method"] in ("kd", "lskd")
        assert "accuracy" in data["metrics"]["reports/metrics.json"]["data"]["student"]
    chosen = exps[0]
    name = chosen["name"]
    recorded = chosen["revs"][0]["data"]["metrics"]["reports/metrics.json"]["data"]["student"]
    _run([py, "-m", "dvc", "exp", "apply", name], proj, env)
    _run([py, "-m", "dvc", "repro"], proj, env)
    student = json.loads((proj / "reports" / "metrics.json").read_text())["student"]
    for key in ("accuracy", "nll", "ece"):
        assert student[key] == recorded[key], (key, student[key], recorded[key])


WORDS = ("the model reads a token and the teacher writes its distribution while a student learns to match "
         "every probability on the text of small documents about python modules classes and functions").split()


def test_lm_project_on_a_folder_of_text(installed):
    """``autokd init --task lm`` on a folder of ``.txt`` files the test writes: ``dvc repro``, a
    4-trial search whose trials ``dvc exp show --json`` lists with params and perplexity, and
    ``dvc exp apply`` + ``dvc repro`` giving one trial's test perplexity exactly."""
    import json
    import random

    py, env, tmp = installed["py"], installed["env"], installed["tmp"]
    texts = tmp / "texts"
    texts.mkdir()
    rng = random.Random(0)
    for i in range(12):
        (texts / f"doc{i:02d}.txt").write_text(" ".join(rng.choice(WORDS) for _ in range(400)) + "\n")
    proj = tmp / "lmproj"
    _run([py, "-m", "autokd", "init", proj, "--task", "lm", "--data", f"folder:{texts}"], tmp, env)
    spec_file = proj / "pipelines" / "lm.yaml"
    spec = yaml.safe_load(spec_file.read_text())
    assert spec["data"]["source"] == "files" and spec["data"]["path"] == str(texts)
    spec["data"].update({"holdout_every": 4, "context": 32, "tokenizer": {"kind": "bpe", "vocab_size": 300}})
    spec["teacher"].update({"model": {"name": "decoder", "params": {"layers": 1, "width": 32, "heads": 2}},
                            "train": {"epochs": 2, "batch_size": 16, "lr": 3e-3}})
    spec["student"].update({"model": {"name": "decoder", "params": {"layers": 1, "width": 16, "heads": 2}},
                            "train": {"epochs": 2, "batch_size": 16, "lr": 3e-3}})
    spec["distill"].update({"top_k": 8, "representation": None})
    spec["evaluate"] = {"prompts": 2, "prompt_tokens": 4, "new_tokens": 4, "speed": False}
    spec_file.write_text(yaml.safe_dump(spec, sort_keys=False))
    space_file = proj / "search_spaces" / "lm.yaml"
    space = yaml.safe_load(space_file.read_text())
    space["space"] = {"distill.alpha": {"type": "uniform", "low": 0.2, "high": 0.9},
                      "distill.method": {"type": "choice", "values": ["fkl", "jsd"]}}
    space["budget"] = {"trials": 4, "max_concurrent": 2, "resources": {"cpu": 1}}
    space["scheduler"] = {"type": "fifo"}
    space_file.write_text(yaml.safe_dump(space, sort_keys=False))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    _run(git + ["add", "-A"], proj, env)
    _run(git + ["commit", "-qm", "init"], proj, env)
    first = _run([py, "-m", "dvc", "repro"], proj, env)
    assert "Running stage 'cache_teacher'" in first and "Running stage 'distill'" in first
    assert json.loads((proj / "reports" / "metrics.json").read_text())["student"]["perplexity"] > 1.0
    _run(git + ["add", "-A"], proj, env)
    _run(git + ["commit", "-qm", "repro"], proj, env)

    _run([py, "-m", "autokd", "search", "hparams", "search_spaces/lm.yaml"], proj, env)
    shown = json.loads(_run([py, "-m", "dvc", "exp", "show", "--json"], proj, env))
    exps = [e for rev in shown for e in (rev.get("experiments") or [])]
    assert sorted(e["name"] for e in exps) == [f"lm-t00{i}" for i in range(4)]
    for e in exps:
        data = e["revs"][0]["data"]
        assert data["params"]["pipelines/lm.yaml"]["data"]["distill"]["method"] in ("fkl", "jsd")
        metrics = data["metrics"]["reports/metrics.json"]["data"]
        assert metrics["student"]["perplexity"] > 1.0 and metrics["trial"]["status"] == "completed"
    chosen = min(exps, key=lambda e: e["name"])
    recorded = chosen["revs"][0]["data"]["metrics"]["reports/metrics.json"]["data"]["student"]
    _run([py, "-m", "dvc", "exp", "apply", chosen["name"]], proj, env)
    again = _run([py, "-m", "dvc", "repro"], proj, env)
    assert "Running stage 'train_teacher'" not in again and "Running stage 'distill'" in again
    student = json.loads((proj / "reports" / "metrics.json").read_text())["student"]
    for key in ("perplexity", "nll", "bits_per_byte"):
        assert student[key] == recorded[key], (key, student[key], recorded[key])
