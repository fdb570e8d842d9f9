"""A third task by import path (the recipe in docs/architecture.md, "Adding a task"): a toy
regression on a CSV column, registered as ``task: toy_regression:RegressionTask`` and run by
``autokd validate``, ``autokd run`` and ``autokd dvc`` with the one trainer underneath."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import yaml
from typer.testing import CliRunner

from autokd.cli import app

TASK_MODULE = textwrap.dedent('''
    """A user's pipeline task: predict the last CSV column from the others (mean squared error)."""
    import json
    from pathlib import Path

    import numpy as np
    import torch
    from pydantic import Field
    from typing import Literal

    from autokd.data.prepare import Split
    from autokd.spec.base import Strict, validate_document
    from autokd.spec.errors import SpecIssue
    from autokd.spec.pipeline import TrainSpec
    from autokd.stages.task import PipelineTask, StageIO
    from autokd.train.device import seed_everything
    from autokd.train.trainer import train
    from autokd.utils.io import atomic_write_json


    class RegressionSpec(Strict):
        task: str
        csv: str
        hidden: int = Field(16, gt=0)
        train: TrainSpec = Field(default_factory=TrainSpec)


    class MSE(torch.nn.Module):
        def forward(self, model, batch):
            pred = model(batch.x).squeeze(-1)
            loss = torch.nn.functional.mse_loss(pred, batch.y)
            return loss, pred, {"mse": loss.detach()}


    @torch.no_grad()
    def val_mse(model, split, device):
        return {"loss": torch.nn.functional.mse_loss(model(split.x.to(device)).squeeze(-1), split.y).item()}


    def _split(a):
        x = torch.tensor(a[:, :-1], dtype=torch.float32)
        return Split(x=x, y=torch.tensor(a[:, -1], dtype=torch.float32), index=torch.arange(len(a)))


    class RegressionTask(PipelineTask):
        name = "toy_regression"
        stages = ("train", "evaluate")

        def schema(self):
            return RegressionSpec

        def validate(self, data, file=None, text=None, root=None, check_paths=True):
            def checks(s):
                ok = not check_paths or (Path(root or ".") / s.csv).exists()
                return [] if ok else [SpecIssue(("csv",), expected="an existing CSV file", found=s.csv)]
            return validate_document(RegressionSpec, data, file=file, text=text, checks=checks)

        def stage_io(self, spec):
            return [StageIO("train", params=("csv", "hidden", "train"), outs=("model.pt.json",)),
                    StageIO("evaluate", reads=("model.pt.json",), metrics=("metrics.json",))]

        def run_stage(self, name, spec_path, root=".", progress=True):
            spec = self.load(spec_path)
            a = np.loadtxt(spec.csv, delimiter=",", dtype=np.float64)
            tr, va = _split(a[: len(a) * 3 // 4]), _split(a[len(a) * 3 // 4:])
            seed_everything(spec.train.seed)
            model = torch.nn.Sequential(torch.nn.Linear(a.shape[1] - 1, spec.hidden), torch.nn.Tanh(),
                                        torch.nn.Linear(spec.hidden, 1))
            out = Path(root)
            out.mkdir(parents=True, exist_ok=True)
            if name == "train":
                result = train(model, tr, va, spec.train, MSE(), device=torch.device("cpu"),
                               checkpoint_dir=out / "ckpt", progress=False, validate=val_mse)
                atomic_write_json(out / "model.pt.json", {"val_loss": result.final["val_loss"],
                                                         "epochs": len(result.history)})
            else:
                kept = json.loads((out / "model.pt.json").read_text())
                var = float(np.var(a[len(a) * 3 // 4:, -1]))
                atomic_write_json(out / "metrics.json", {"val_mse": kept["val_loss"], "target_variance": var})
''')


def _project(tmp_path, monkeypatch, **over):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(160, 3))
    y = x @ np.array([1.0, -2.0, 0.5]) + 0.05 * rng.normal(size=160)
    np.savetxt(tmp_path / "data.csv", np.column_stack([x, y]), delimiter=",")
    (tmp_path / "toy_regression.py").write_text(TASK_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    doc = {"task": "toy_regression:RegressionTask", "csv": "data.csv", "hidden": 16,
           "train": {"epochs": 30, "batch_size": 32, "lr": 0.02, "seed": 0}, **over}
    (tmp_path / "reg.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return tmp_path / "reg.yaml"


def test_a_user_task_validates_runs_and_gets_a_dvc_file(tmp_path, monkeypatch):
    spec = _project(tmp_path, monkeypatch)
    runner = CliRunner()
    out = runner.invoke(app, ["validate", str(spec)])
    assert out.exit_code == 0 and "ok (task toy_regression)" in out.output, out.output
    out = runner.invoke(app, ["run", str(spec), "--root", "out"])
    assert out.exit_code == 0, out.output
    assert "== train" in out.output and "== evaluate" in out.output
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    # the one trainer learned the linear target: validation MSE far below the target's variance
    assert metrics["val_mse"] < 0.1 * metrics["target_variance"]
    dvc = yaml.safe_load(runner.invoke(app, ["dvc", str(spec), "--root", "out"]).output)
    # a user's project (no autokd source here): the stages depend on the installed autokd's code record
    assert list(dvc["stages"]) == ["code", "train", "evaluate"]
    assert dvc["stages"]["code"]["always_changed"] is True
    assert ".autokd/code.json" in dvc["stages"]["train"]["deps"]
    assert not any(str(d).startswith("autokd/") for d in dvc["stages"]["train"]["deps"])
    assert dvc["stages"]["train"]["params"] == [{str(spec): ["csv", "hidden", "train"]}]
    assert dvc["stages"]["evaluate"]["cmd"] == f"python -m autokd stage evaluate {spec} --root out"


def test_a_user_task_reports_bad_input_like_the_built_ins(tmp_path, monkeypatch):
    spec = _project(tmp_path, monkeypatch, csv="missing.csv")
    out = CliRunner().invoke(app, ["validate", str(spec)])
    assert out.exit_code == 2 and "csv: expected an existing CSV file" in out.output
    spec.write_text(yaml.safe_dump({"task": "no_such_module:Task"}))
    out = CliRunner().invoke(app, ["run", str(spec)])
    assert out.exit_code == 2 and "task: expected one of classify, lm or a package.module:Class" in out.output
    assert "Traceback" not in out.output
