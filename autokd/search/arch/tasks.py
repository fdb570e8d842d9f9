"""What an architecture search does for each kind of pipeline: the one place it depends on the task.

Spaces, proxies, constraints, algorithms, ranking and reports are shared. What differs with the
pipeline spec's ``task`` is an :class:`ArchTask`:

- the pipeline's own validation (:meth:`ArchTask.validate`: the stages' task seam);
- the artifacts a ranking needs, made with the pipeline's own stages when missing
  (:meth:`ArchTask.ensure`), and the prepared data (:meth:`ArchTask.load_data`);
- the proxy batch (labelled samples, or token windows with their next-token targets) and the
  dtype of a dummy input for FLOPs and latency (token ids for a language model);
- the distilled metric ``--validate`` correlates with (:attr:`ArchTask.target`): test accuracy
  (higher is better), or test perplexity (lower), taken from the hyperparameter search's trial
  task (:mod:`autokd.search.hparams.tasks`), which builds and evaluates a student exactly as the
  pipeline's ``distill`` and ``evaluate`` stages do.

A family's space declares its task (``cnn``, ``mlp``, ``resnet_s1``: ``classify``; ``decoder``:
``lm``); a space whose family does not build students of its pipeline's task is an error.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from autokd.search.arch.proxies import ProxyBatch


@dataclass(frozen=True)
class Target:
    """The distilled metric ``--validate`` correlates with."""

    key: str  # the trial task's test metric without ``test_`` (``accuracy``, ``perplexity``)
    label: str
    higher_is_better: bool

    def quality(self, value: float) -> float:
        """The metric oriented so that higher is better (what proxies are correlated with)."""
        return value if self.higher_is_better else -value


class ArchTask(ABC):
    """The task-specific half of an architecture search (see the module doc)."""

    name: str
    target: Target
    input_dtype: torch.dtype = torch.float32

    def pipeline_task(self):
        from autokd.stages.task import get_task

        return get_task(self.name)

    def search_task(self):
        """The hyperparameter search's trial task: build, train and test a student as the stages do."""
        from autokd.search.hparams.tasks import get_task

        return get_task({"task": self.name})

    def validate(self, data: dict[str, Any], file: str | None, text: str | None, check_paths: bool = True):
        return self.pipeline_task().validate(data, file=file, text=text, root=Path.cwd(), check_paths=check_paths)

    @abstractmethod
    def ensure(self, spec, layout, need_teacher: bool, progress: bool, check_same: Callable) -> list[str]:
        """Make the prepared data (and the teacher when ``need_teacher``) exist; the stages run."""

    @abstractmethod
    def load_data(self, layout):
        """The prepared data the proxies score on."""

    def proxy_batch(self, data, split: str, size: int, seed: int) -> ProxyBatch:
        """A seeded sample of ``size`` rows of the split (all rows if fewer): samples and labels, or
        token windows and their next-token targets (``num_classes``: the vocabulary)."""
        part = getattr(data, split)
        if len(part) == 0:
            raise ValueError(f"the {split} split is empty; choose batch.split: train")
        gen = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(part), generator=gen)[:size]
        return ProxyBatch(x=part.x[idx].clone(), y=part.y[idx].clone(), num_classes=data.num_classes)


class ClassifyArchTask(ArchTask):
    name = "classify"
    target = Target("accuracy", "test accuracy", True)

    def ensure(self, spec, layout, need_teacher, progress, check_same):
        from autokd.models.artifact import MODEL_FILE
        from autokd.spec.document import dump_spec
        from autokd.stages import prepare, train_teacher
        from autokd.train.teacher_cache import CACHE_NAME

        actions = []
        if not (layout.data / "meta.json").exists():
            prepare(spec, layout)
            actions.append("prepare")
        else:
            check_same(layout.data, "data", dump_spec(spec.data), "prepare")
        if need_teacher:
            teacher_file = layout.model_dir("teacher") / MODEL_FILE
            if not teacher_file.exists() or not (layout.teacher_outputs / CACHE_NAME).exists():
                train_teacher(spec, layout, progress=progress)
                actions.append("train_teacher")
            else:
                check_same(layout.model_dir("teacher"), "teacher", dump_spec(spec.teacher), "train_teacher")
        return actions

    def load_data(self, layout):
        from autokd.data.prepare import load_prepared

        return load_prepared(layout.data)


class LMArchTask(ArchTask):
    name = "lm"
    target = Target("perplexity", "test perplexity", False)
    input_dtype = torch.long

    def ensure(self, spec, layout, need_teacher, progress, check_same):
        from autokd.models.artifact import MODEL_FILE
        from autokd.spec.document import dump_spec
        from autokd.stages.lm import cache_teacher, prepare, train_teacher
        from autokd.train.topk_cache import TOPK_NAME

        actions = []
        if not (layout.data / "meta.json").exists():
            prepare(spec, layout, progress=progress)
            actions.append("prepare")
        else:
            check_same(layout.data, "data", dump_spec(spec.data), "prepare")
        if need_teacher:
            if not (layout.model_dir("teacher") / MODEL_FILE).exists():
                train_teacher(spec, layout, progress=progress)
                actions.append("train_teacher")
            else:
                check_same(layout.model_dir("teacher"), "teacher", dump_spec(spec.teacher), "train_teacher")
            if not (layout.teacher_outputs / TOPK_NAME).exists():
                cache_teacher(spec, layout, progress=progress)
                actions.append("cache_teacher")
        return actions

    def load_data(self, layout):
        from autokd.data.text.prepare import load_prepared_text

        return load_prepared_text(layout.data)


ARCH_TASKS: dict[str, ArchTask] = {"classify": ClassifyArchTask(), "lm": LMArchTask()}


def arch_task(name: str) -> ArchTask:
    """The arch-search task of a pipeline task name (``classify`` | ``lm``)."""
    if name not in ARCH_TASKS:
        raise ValueError(f"`autokd search arch` ranks students of {', '.join(ARCH_TASKS)} pipelines; "
                         f"this pipeline's task is {name!r}")
    return ARCH_TASKS[name]
