"""The classification task (``task: classify``, the default): ``pipelines/default.yaml`` and
the root ``dvc.yaml``. Its stages live in :mod:`autokd.stages.pipeline`, its validation in
:mod:`autokd.stages.validate`, its health checks in :mod:`autokd.stages.health_run`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autokd.stages.task import PipelineTask, StageIO


class ClassifyTask(PipelineTask):
    name = "classify"
    stages = ("prepare", "train_teacher", "train_baseline", "distill", "evaluate")

    def schema(self) -> type:
        from autokd.spec.pipeline import PipelineSpec

        return PipelineSpec

    def validate(self, data: dict[str, Any], file: str | None = None, text: str | None = None,
                 root: Path | None = None, check_paths: bool = True):
        from autokd.stages.validate import validate_pipeline

        # relative data paths resolve against the working directory (the repo root under dvc repro)
        return validate_pipeline(data, file=file, text=text, root=root or Path.cwd(), check_paths=check_paths)

    def run_stage(self, name: str, spec_path: str | Path, root: str | Path = ".", progress: bool = True) -> Any:
        from autokd.stages.pipeline import run_stage

        return run_stage(name, spec_path, root, progress)

    def stage_io(self, spec) -> list[StageIO]:
        return [
            StageIO("prepare", params=("data",), outs=("artifacts/data",)),
            StageIO("train_teacher", reads=("artifacts/data",), params=("teacher", "runtime"),
                    outs=("artifacts/teacher", "artifacts/teacher_outputs"), trains="teacher"),
            StageIO("train_baseline", reads=("artifacts/data",), params=("student", "runtime"),
                    outs=("artifacts/baseline",), trains="baseline"),
            StageIO("distill", reads=("artifacts/data", "artifacts/teacher", "artifacts/teacher_outputs"),
                    params=("student", "distill", "runtime"), outs=("artifacts/student",), trains="student"),
            StageIO("evaluate", reads=("artifacts/data", "artifacts/teacher", "artifacts/baseline",
                                       "artifacts/student"), params=("evaluate",),
                    uncached=("reports/plots", "reports/manifest.json"), metrics=("reports/metrics.json",)),
            # a deployable copy of the student: ONNX checked against PyTorch with ONNX Runtime (cached:
            # the same inputs give the same bytes)
            StageIO("export", reads=("artifacts/data", "artifacts/teacher", "artifacts/student",
                                     "reports/metrics.json"), outs=("artifacts/export",),
                    cmd="python -m autokd export {root}artifacts/student --format onnx --out {root}artifacts/export"),
        ]

    def describe(self, spec) -> str:
        from autokd.stages.auto_spec import candidate_distills, describe, is_auto

        t = spec.distill.temperature
        recipe = (f"method auto: the best by validation accuracy of "
                  f"{', '.join(map(describe, candidate_distills(spec.distill)))}" if is_auto(spec.distill) else
                  f"method {spec.distill.method}, T={'method default' if t is None else f'{t:g}'}, "
                  f"alpha={spec.distill.alpha:g}")
        return (f"data {spec.data.source}, teacher {spec.teacher.model.name}, student {spec.student.model.name}, "
                f"{recipe}")

    def teacher_mode(self, spec) -> str:
        from autokd.stages.recipe import teacher_mode

        return teacher_mode(spec)

    def doctor_checks(self, spec, root: Path, spec_path: str | Path, train_teacher: bool = False) -> list:
        from autokd.stages.health_run import doctor_checks
        from autokd.stages.layout import Layout
        from autokd.stages.recipe import resolve_auto

        layout = Layout(Path(root))
        if train_teacher and not (layout.model_dir("teacher") / "model.safetensors").exists():
            for name in ("prepare", "train_teacher"):
                self.run_stage(name, spec_path, root, progress=False)
        return doctor_checks(resolve_auto(spec), layout, spec_path)

    def dvc_header(self, spec_path: str, root: str) -> str:
        return (
            "# The default KD pipeline, generated from its spec by\n"
            f"#   autokd dvc {spec_path} > dvc.yaml\n"
            "# Each stage lists only the spec keys it reads, so changing distill.alpha re-runs distill and\n"
            "# evaluate and leaves the rest cached. Code: every stage lists the whole library but the search\n"
            "# (autokd.stages.dvcgen.CODE_DEPS; tests/test_dvc_deps.py checks the lists). export writes the\n"
            "# student as ONNX checked against PyTorch with ONNX Runtime on the test split (same bytes each run).\n"
            "#   dvc repro                                                 run / update everything\n"
            f"#   dvc exp run -S {spec_path}:distill.alpha=0.7   an experiment (auto's distilling candidate's λ)\n"
            "#   dvc exp show --md                                         experiments with metrics\n"
        )

    def dvc_plots(self, spec, root: str) -> list | None:
        live = f"{root}dvclive"
        roles = ("teacher", "baseline", "student")
        return [
            {"validation_accuracy": {"template": "linear", "x": "step", "y": {
                f"{live}/{r}/plots/metrics/val/accuracy.tsv": "accuracy" for r in roles}}},
            {"training_loss": {"template": "linear", "x": "step", "y": {
                f"{live}/{r}/plots/metrics/train/loss.tsv": "loss" for r in roles}}},
            {f"{root}reports/plots/confusion_student.json": {"template": "confusion", "x": "actual", "y": "predicted",
                                                              "title": "student (distilled) test confusion"}},
            f"{root}reports/plots/confusion_student.png",
            f"{root}reports/plots/training_curves.png",
        ]


TASK = ClassifyTask()
