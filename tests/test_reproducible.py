"""Cached outputs are reproducible byte for byte: the same spec written twice, in two places,
gives identical files (fast, through the trainer and manifest functions) and identical
``dvc.lock`` hashes (slow, real ``dvc repro`` in two fresh clones of one commit)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import save_file

from autokd.data.prepare import Split
from autokd.lineage.manifest import write_manifest
from autokd.models import build_model
from autokd.models.artifact import MODEL_FILE, save_model
from autokd.spec.pipeline import TrainSpec
from autokd.train import CrossEntropyObjective, TrainResult, seed_everything, train
from autokd.utils.io import atomic_write_json

REPO = Path(__file__).resolve().parents[1]
ARCH = {"stem_width": 4, "depths": [1], "widths": [4]}


def _split(n: int, seed: int) -> Split:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 8, 8, generator=g)
    y = (x[:, 0, :4].sum((1, 2)) > 0).long() + 2 * (x[:, 0, 4:].sum((1, 2)) > 0).long()
    return Split(x, y, torch.arange(n))


def _teacher_artifact(root: Path) -> TrainResult:
    """A data artifact and a trained teacher under ``root``, written the way the stages write
    them (weights, history.json, manifest.json linked to the data's manifest)."""
    data_dir = root / "artifacts" / "data"
    data_dir.mkdir(parents=True)
    train_split, val_split = _split(96, 0), _split(48, 1)
    save_file({"x": train_split.x, "y": train_split.y}, str(data_dir / "train.safetensors"))
    write_manifest(data_dir, kind="dataset", content=["train.safetensors"], spec={"data": {"n": 96}},
                   metrics={"n_train": 96}, root=root)

    cfg = TrainSpec(epochs=3, batch_size=16, lr=0.01)
    seed_everything(0)
    model = build_model("cnn", ARCH, (1, 8, 8), 4)
    result = train(model, train_split, val_split, cfg, CrossEntropyObjective(), device=torch.device("cpu"),
                   checkpoint_dir=root / "checkpoints" / "teacher", run_fingerprint="fp", progress=False)
    out = root / "artifacts" / "teacher"
    save_model(out / MODEL_FILE, model, "cnn", ARCH, (1, 8, 8), 4)
    atomic_write_json(out / "history.json", result.history)
    write_manifest(out, kind="teacher", content=[MODEL_FILE], parents=[data_dir],
                   spec={"teacher": {"model": ARCH, "train": cfg.model_dump(mode="json")}},
                   metrics={k: v for k, v in result.final.items() if k.startswith(("train_", "val_"))}, root=root)
    return result


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_two_runs_write_byte_identical_artifacts(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    roots = [tmp_path / "a", tmp_path / "elsewhere" / "second run"]
    results = []
    for i, root in enumerate(roots):
        root.mkdir(parents=True)
        monkeypatch.chdir(root)  # a different working directory each time too
        if i:
            time.sleep(1.05)  # a clock that ticks between the runs (manifests once held a date)
        results.append(_teacher_artifact(root))
    first, second = (_files(root / "artifacts") for root in roots)
    assert sorted(first) == ["data/manifest.json", "data/train.safetensors", "teacher/history.json",
                             "teacher/manifest.json", "teacher/model.safetensors"]
    differing = [name for name in first if first[name] != second.get(name)]
    assert not differing, f"differ between two runs of one spec: {differing}"

    # still useful: per-epoch metrics, lineage, spec, metrics, packages; the timings are not lost
    history = json.loads(first["teacher/history.json"])
    assert [rec["epoch"] for rec in history] == [1, 2, 3] and "val_accuracy" in history[-1]
    manifest = json.loads(first["teacher/manifest.json"])
    assert manifest["artifact"] == "artifacts/teacher"
    assert manifest["parents"][0]["artifact"] == "artifacts/data"
    assert manifest["metrics"]["val_accuracy"] == history[-1]["val_accuracy"]
    assert manifest["packages"]["torch"] == torch.__version__ and manifest["spec"]["teacher"]["model"] == ARCH
    assert set(manifest["git"]) == {"commit", "dirty"}
    assert all(len(r.epoch_seconds) == 3 and min(r.epoch_seconds) > 0 for r in results)


# ----------------------------------------------------------------------------- real DVC


def _copy_tracked(dst: Path) -> Path:
    """The repository's tracked (and new, not ignored) files, without run products."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split("\0")
    for f in filter(None, files):
        src = REPO / f
        if not src.is_file() or f.startswith(("artifacts/", "reports/", "dvclive/", "checkpoints/")):
            continue
        if f.endswith("dvc.lock"):
            continue
        (dst / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst / f)
    return dst


def _sh(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, timeout=900)
    assert res.returncode == 0, f"{cmd} failed in {cwd}:\n{res.stdout}\n{res.stderr}"
    return res.stdout + res.stderr


def cached_outs(dvc_yaml: dict) -> set[tuple[str, str]]:
    """(stage, path) of every stage output DVC caches (``cache: false`` ones are left out)."""
    found = set()
    for stage, body in dvc_yaml["stages"].items():
        for key in ("outs", "metrics", "plots"):
            for entry in body.get(key) or []:
                path, opts = (entry, {}) if isinstance(entry, str) else next(iter(entry.items()))
                if (opts or {}).get("cache", key == "outs"):
                    found.add((stage, path))
    return found


def lock_md5(lock: dict) -> dict[tuple[str, str], str]:
    return {(stage, out["path"]): out["md5"] for stage, body in lock["stages"].items() for out in body.get("outs", [])}


@pytest.mark.slow
def test_two_fresh_clones_repro_to_the_same_dvc_lock_hashes(tmp_path, tiny_spec_text):
    origin = _copy_tracked(tmp_path / "origin")
    (origin / "pipelines" / "default.yaml").write_text(tiny_spec_text)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    _sh(git + ["init", "-q"], origin)
    _sh(git + ["add", "-A"], origin)
    _sh(git + ["commit", "-qm", "init"], origin)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    clones = [tmp_path / "a", tmp_path / "somewhere" / "else" / "b"]
    locks = []
    for clone in clones:
        clone.parent.mkdir(parents=True, exist_ok=True)
        _sh(git + ["clone", "-q", str(origin), str(clone)], tmp_path)
        _sh(["dvc", "repro"], clone, env)
        locks.append(lock_md5(yaml.safe_load((clone / "dvc.lock").read_text())))

    cached = cached_outs(yaml.safe_load((origin / "dvc.yaml").read_text()))
    assert ("train_teacher", "artifacts/teacher") in cached and ("distill", "artifacts/student") in cached
    differing = {out: (locks[0].get(out), locks[1].get(out)) for out in cached if locks[0].get(out) != locks[1].get(out)}
    assert all(out in locks[0] for out in cached), sorted(cached - set(locks[0]))
    assert not differing, f"cached outputs differ between two clones of one commit: {differing}"
