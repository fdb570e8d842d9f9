"""Where each stage reads and writes under one root, and the per-epoch DVCLive logger.

Layout under the output root (the repo root under ``dvc repro``)::

    artifacts/data/              prepared splits + meta.json + manifest.json
    artifacts/teacher/           model.safetensors, history.json, manifest.json
    artifacts/teacher_outputs/   train_logits.safetensors (the teacher-output cache)
    artifacts/baseline/          the student trained on labels alone
    artifacts/student/           the distilled student
    checkpoints/<role>/          per-epoch checkpoints (persisted across runs, for resume)
    dvclive/<role>/              per-epoch metrics (DVC plots)
    reports/metrics.json         test metrics of all three models (DVC metrics)
    reports/plots/               confusion matrix and training curves (PNG + CSV)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Layout:
    """Where each stage reads and writes, under one root."""

    root: Path = Path(".")

    @property
    def data(self) -> Path:
        return self.root / "artifacts" / "data"

    def model_dir(self, role: str) -> Path:
        return self.root / "artifacts" / role

    @property
    def teacher_outputs(self) -> Path:
        return self.root / "artifacts" / "teacher_outputs"

    def checkpoints(self, role: str) -> Path:
        return self.root / "checkpoints" / role

    def live(self, role: str) -> Path:
        return self.root / "dvclive" / role

    @property
    def reports(self) -> Path:
        return self.root / "reports"


def _files_only_live():
    """DVCLive's ``Live`` writing its files only. Its DVC integration (open the DVC repository,
    ask git for ``HEAD``, save an experiment, write a dvc.yaml) is not used here: the stages'
    plots are declared in the generated dvc.yaml and searches record their own experiments. It
    also fails: dvclive 3.49 asks git for ``HEAD`` before it checks the repository has a commit,
    so a stage in a fresh ``git init`` project stopped with scmrepo's ``Empty git repo``, and in
    a folder without DVC it runs ``dvc init``."""
    from dvclive import Live

    class FilesOnlyLive(Live):
        def _init_dvc(self) -> None:
            self._dvc_file = self._init_dvc_file()

    return FilesOnlyLive


class LiveLogger:
    """Per-epoch metrics through DVCLive (plots declared in dvc.yaml)."""

    KEYS = {"train_loss": "train/loss", "train_accuracy": "train/accuracy", "val_loss": "val/loss",
            "val_accuracy": "val/accuracy", "lr": "lr"}

    def __init__(self, directory: Path):
        self.live = _files_only_live()(str(directory), save_dvc_exp=False, dvcyaml=None)

    def log(self, rec: dict[str, float], *_: Any) -> None:
        for key, name in self.KEYS.items():
            if key in rec:
                self.live.log_metric(name, rec[key])
        self.live.next_step()

    def close(self) -> None:
        self.live.end()
