"""What a trial does for each kind of pipeline: the one place the search depends on the task.

The space, the backends, the schedulers, the results and the DVC experiments are shared by
every pipeline. What differs with the pipeline spec's ``task`` (``classify``, the default, or
``lm``) is a :class:`SearchTask`:

- the schema and the validation of the patched pipeline spec;
- the inputs every trial reads, made once before a search (:meth:`SearchTask.ensure_inputs`);
- how a trial builds its student and objective, with the pipeline's own ``distill`` recipe and
  checkpoint fingerprint (:meth:`SearchTask.build`), and the test metrics it reports beside
  the validation ones, computed as the pipeline's ``evaluate`` stage does;
- the keys it reports: the headline validation/test metric, and the evaluate stage's key of
  each metric a trial's DVC experiment records.

:func:`get_task` returns the task of a pipeline spec mapping; the implementations live in
:mod:`.classify_task` and :mod:`.lm_task`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

TASK_MODULES = {"classify": "autokd.search.hparams.classify_task", "lm": "autokd.search.hparams.lm_task"}


@dataclass
class TrialParts:
    """A trial's student, objective and data, its static metrics and its checkpoint fingerprint."""

    model: torch.nn.Module
    objective: torch.nn.Module
    data: Any
    static: dict[str, Any]
    fingerprint: str


class SearchTask(ABC):
    """The task-specific half of a search trial (see the module doc)."""

    name: str
    #: the validation key shown as ``val`` and the test key shown as ``test`` in progress lines
    val_key: str
    test_key: str
    val_mode: str  # "max" or "min": which way the headline validation metric improves
    #: trial key -> key of the evaluate stage's per-model metrics (a trial's DVC experiment)
    metric_keys: dict[str, str]
    #: what the trial records beside ``FINAL_KEYS`` in ``trials.csv``
    extra_final_keys: tuple[str, ...] = ()

    def pipeline_task(self):
        """The pipeline's :class:`~autokd.stages.task.PipelineTask`: its schema and validation are the
        pipeline's own (one rule)."""
        from autokd.stages.task import get_task as get_pipeline_task

        return get_pipeline_task(self.name)

    def schema(self) -> type:
        """The pydantic model of the pipeline spec (search dimensions must be its paths)."""
        return self.pipeline_task().schema()

    def validate(self, data: dict[str, Any], file: str | None, root: Path | None, check_paths: bool = True,
                 text: str | None = None):
        """The validated pipeline spec of a mapping (raises :class:`~autokd.spec.errors.SpecError`)."""
        return self.pipeline_task().validate(data, file=file, text=text, root=root, check_paths=check_paths)

    @abstractmethod
    def ensure_inputs(self, spec, root: Path, pipeline_file: str | None, log: Callable[[str], None]):
        """Make the prepared data and the teacher's outputs under ``root`` once; return
        :class:`~autokd.search.hparams.inputs.Inputs`."""

    def shared_inputs(self, spec, root: Path, pipeline_file: str | None, log: Callable[[str], None]):
        """:meth:`ensure_inputs` under a lock on ``root``: searches started at once on a fresh project
        (processes sharing one Optuna study) make the data and the teacher once, the others wait and
        read them, instead of training the teacher side by side into the same files."""
        from autokd.utils.io import exclusive_lock

        with exclusive_lock(Path(root) / "checkpoints" / ".search-inputs.lock"):
            return self.ensure_inputs(spec, root, pipeline_file, log)

    @abstractmethod
    def build(self, spec, root: Path, inputs, device: torch.device) -> TrialParts:
        """The student and objective exactly as the pipeline's ``distill`` stage builds them."""

    @abstractmethod
    def fingerprint(self, spec, data_sha256: str, inputs) -> str:
        """The ``distill`` stage's checkpoint fingerprint of ``spec``'s student (what :meth:`build`
        puts in :class:`TrialParts`), without building anything."""

    @abstractmethod
    def test_metrics(self, parts: TrialParts, spec, device: torch.device) -> dict[str, float]:
        """The test metrics of the trained student, as the pipeline's ``evaluate`` computes them."""

    def repro_command(self, pipeline_rel: str) -> str:
        """The command that retrains a pipeline's student after ``--apply`` (its DVC file)."""
        return "dvc repro"

    def epoch_metrics(self, rec: dict[str, float]) -> dict[str, float]:
        """Metrics derived from an epoch's record (e.g. the validation perplexity)."""
        return {}

    def headline(self, final: dict[str, Any]) -> str:
        """``validation X, test Y`` of a trial's last metrics, for logs and ``best.yaml``."""
        val = final.get(self.val_key)
        test = final.get(self.test_key)
        label = self.val_key.removeprefix("val_").replace("_", " ")
        out = f"validation {label} {val:.4f}" if isinstance(val, (int, float)) else f"validation {label} n/a"
        if isinstance(test, (int, float)):
            out += f", test {label} {test:.4f}"
        return out


def task_name(base: dict[str, Any]) -> str:
    """The task of a pipeline spec mapping (``classify`` unless it names another)."""
    from autokd.stages.task import task_name_of

    return task_name_of(base)


def get_task(name_or_base: str | dict[str, Any]) -> SearchTask:
    """The :class:`SearchTask` named (or of a pipeline spec mapping); a task without one (a user's
    pipeline task) cannot be searched: :class:`ValueError`."""
    import importlib

    name = name_or_base if isinstance(name_or_base, str) else task_name(name_or_base)
    if name not in TASK_MODULES:
        raise ValueError(f"task {name!r} has no hyperparameter search; searchable tasks: {', '.join(TASK_MODULES)}")
    return importlib.import_module(TASK_MODULES[name]).TASK
