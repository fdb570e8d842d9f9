"""The pipeline side of an architecture search: the pipeline spec a space names, its root's
artifacts (prepared data, trained teacher, teacher-output cache), the proxy batch and the
teacher signals computed once for every candidate.

If the root lacks the artifacts a run needs, the pipeline's own stages make them (its task's:
:mod:`autokd.search.arch.tasks`). Artifacts that exist but were made from a different spec
section are an error, never silently reused or overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from autokd.lineage.manifest import file_sha256, read_manifest
from autokd.models.artifact import MODEL_FILE, load_model
from autokd.models.registry import build_model
from autokd.search.arch.proxies import ProxyBatch, TeacherSignals, get_proxy, teacher_signals
from autokd.search.arch.space import ArchSpaceSpec, BatchSpec
from autokd.search.arch.tasks import ArchTask, arch_task
from autokd.spec.document import apply_overrides, load_yaml
from autokd.stages import Layout
from autokd.stages.task import task_name_of
from autokd.train.device import configure_threads

TEACHER_INIT_SEED = 0


class ArchSearchError(ValueError):
    """The search cannot run as asked (stale artifacts, shape mismatch, nothing admitted)."""


@dataclass
class SearchContext:
    space: ArchSpaceSpec
    pipeline: Any  # the validated pipeline spec of ``task`` (PipelineSpec, LMPipelineSpec)
    pipeline_data: dict[str, Any]  # the pipeline mapping after the space's overrides
    pipeline_file: str
    layout: Layout
    data: Any  # the task's prepared data (PreparedData, PreparedText)
    input_shape: tuple[int, ...]
    num_classes: int
    teacher: nn.Module | None = None
    teacher_sha256: str | None = None
    actions: list[str] = field(default_factory=list)
    task: ArchTask = field(default_factory=lambda: arch_task("classify"))

    def student_spec(self, model: dict[str, Any], overrides: dict[str, Any] | None = None):
        """The pipeline spec with ``student.model`` replaced (validated like any spec of its task)."""
        data = apply_overrides(self.pipeline_data, {"student.model": model, **(overrides or {})})
        return self.task.validate(data, file=self.pipeline_file, text=None, check_paths=False)


def load_pipeline_for(space: ArchSpaceSpec) -> tuple[dict[str, Any], Any, ArchTask]:
    """The pipeline named by the space, with the space's overrides applied and validated by its
    task, and the search's task; a family of another task than the pipeline's is an error."""
    path = Path(space.pipeline)
    data = apply_overrides(load_yaml(path), space.overrides)
    name = task_name_of(data)
    try:
        task = arch_task(name)
    except ValueError as exc:
        raise ArchSearchError(str(exc)) from None
    if space.space.task != task.name:
        raise ArchSearchError(
            f"the space's student family {space.space.family!r} builds {space.space.task} students, but "
            f"{path} is a {task.name} pipeline; name a {task.name} pipeline (`pipeline:`) or a "
            f"{'decoder' if task.name == 'lm' else 'cnn or mlp'} family")
    spec = task.validate(data, file=str(path), text=None if space.overrides else path.read_text())
    return data, spec, task


def _manifest_spec(directory: Path, key: str) -> Any:
    try:
        return read_manifest(directory).get("spec", {}).get(key)
    except FileNotFoundError:
        return None


def _check_same(directory: Path, key: str, expected: dict[str, Any], stage: str) -> None:
    found = _manifest_spec(directory, key)
    if found is not None and found != expected:
        raise ArchSearchError(
            f"{directory} was made from a different `{key}` section than this search's pipeline; "
            f"re-run `autokd stage {stage}` for it (or point the space's `root` at a fresh folder)"
        )


def ensure_artifacts(spec, layout: Layout, need_teacher: bool, progress: bool = True,
                     task: ArchTask | None = None) -> list[str]:
    """Run the task's ``prepare`` / ``train_teacher`` (and, for a language model, ``cache_teacher``)
    into ``layout`` if their artifacts are missing."""
    return (task or arch_task("classify")).ensure(spec, layout, need_teacher, progress, _check_same)


def proxy_batch(data, spec: BatchSpec, task: ArchTask | None = None) -> ProxyBatch:
    """A seeded sample of ``spec.size`` rows of the chosen split (all rows if fewer)."""
    try:
        return (task or arch_task("classify")).proxy_batch(data, spec.split, spec.size, spec.seed)
    except ValueError as exc:
        raise ArchSearchError(str(exc)) from None


def build_context(space: ArchSpaceSpec, root: str | Path | None = None, need_teacher_outputs: bool = False,
                  progress: bool = True) -> SearchContext:
    """Load the pipeline, make missing artifacts, load the data and (if used) the teacher."""
    pipeline_data, pipeline, task = load_pipeline_for(space)
    configure_threads(pipeline.runtime)  # the pipeline's torch threads, as its stages use
    layout = Layout(Path(root if root is not None else space.root))
    uses_teacher = any(get_proxy(p).needs_teacher for p in space.proxies)
    need_trained = (space.teacher == "trained" and uses_teacher) or need_teacher_outputs
    actions = ensure_artifacts(pipeline, layout, need_teacher=need_trained, progress=progress, task=task)
    data = task.load_data(layout)
    input_shape = tuple(space.input_shape) if space.input_shape else tuple(data.input_shape)
    num_classes = space.num_classes or data.num_classes
    if input_shape != tuple(data.input_shape) or num_classes != data.num_classes:
        raise ArchSearchError(
            f"the space says input_shape {input_shape} and num_classes {num_classes}, the prepared data has "
            f"{tuple(data.input_shape)} and {data.num_classes}"
        )
    ctx = SearchContext(space=space, pipeline=pipeline, pipeline_data=pipeline_data, pipeline_file=space.pipeline,
                        layout=layout, data=data, input_shape=input_shape, num_classes=num_classes, actions=actions,
                        task=task)
    if uses_teacher:
        ctx.teacher, ctx.teacher_sha256 = load_teacher(space, pipeline, layout, input_shape, num_classes)
    return ctx


def load_teacher(space: ArchSpaceSpec, pipeline, layout: Layout, input_shape, num_classes):
    """The trained teacher (eval mode) or, with ``teacher: init``, its seeded initialization."""
    if space.teacher == "trained":
        path = layout.model_dir("teacher") / MODEL_FILE
        return load_model(path), file_sha256(path)
    torch.manual_seed(TEACHER_INIT_SEED)
    model = build_model(pipeline.teacher.model.name, pipeline.teacher.model.params, input_shape, num_classes)
    return model.eval(), None


def signals(ctx: SearchContext, batch: ProxyBatch) -> TeacherSignals | None:
    """The teacher pass: once per batch, reused for every candidate."""
    if ctx.teacher is None:
        return None
    return teacher_signals(ctx.teacher, batch, state=ctx.space.teacher)
