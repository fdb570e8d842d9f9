"""The pipeline side of an architecture search: the pipeline spec a space names, its root's
artifacts (prepared data, trained teacher, teacher-output cache), the proxy batch and the
teacher signals computed once for every candidate.

If the root lacks the artifacts a run needs, the pipeline's own stages make them
(:func:`autokd.stages.prepare`, :func:`autokd.stages.train_teacher`). Artifacts that exist
but were made from a different spec section are an error, never silently reused or
overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from autokd.data.prepare import PreparedData, load_prepared
from autokd.lineage.manifest import file_sha256, read_manifest
from autokd.models.artifact import MODEL_FILE, load_model
from autokd.models.registry import build_model
from autokd.search.arch.proxies import ProxyBatch, TeacherSignals, get_proxy, teacher_signals
from autokd.search.arch.space import ArchSpaceSpec, BatchSpec
from autokd.spec.document import apply_overrides, dump_spec, load_yaml
from autokd.spec.pipeline import PipelineSpec
from autokd.stages import Layout, prepare, train_teacher, validate_pipeline
from autokd.train.device import configure_threads
from autokd.train.teacher_cache import CACHE_NAME

TEACHER_INIT_SEED = 0


class ArchSearchError(ValueError):
    """The search cannot run as asked (stale artifacts, shape mismatch, nothing admitted)."""


@dataclass
class SearchContext:
    space: ArchSpaceSpec
    pipeline: PipelineSpec
    pipeline_data: dict[str, Any]  # the pipeline mapping after the space's overrides
    pipeline_file: str
    layout: Layout
    data: PreparedData
    input_shape: tuple[int, ...]
    num_classes: int
    teacher: nn.Module | None = None
    teacher_sha256: str | None = None
    actions: list[str] = field(default_factory=list)

    def student_spec(self, model: dict[str, Any], overrides: dict[str, Any] | None = None) -> PipelineSpec:
        """The pipeline spec with ``student.model`` replaced (validated like any spec)."""
        data = apply_overrides(self.pipeline_data, {"student.model": model, **(overrides or {})})
        return validate_pipeline(data, file=self.pipeline_file, root=Path.cwd(), check_paths=False)


def load_pipeline_for(space: ArchSpaceSpec) -> tuple[dict[str, Any], PipelineSpec]:
    """The pipeline named by the space, with the space's overrides applied and validated."""
    path = Path(space.pipeline)
    data = apply_overrides(load_yaml(path), space.overrides)
    spec = validate_pipeline(data, file=str(path), text=None if space.overrides else path.read_text(),
                             root=Path.cwd())
    return data, spec


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


def ensure_artifacts(spec: PipelineSpec, layout: Layout, need_teacher: bool, progress: bool = True) -> list[str]:
    """Run ``prepare`` / ``train_teacher`` into ``layout`` if their artifacts are missing."""
    actions = []
    if not (layout.data / "meta.json").exists():
        prepare(spec, layout)
        actions.append("prepare")
    else:
        _check_same(layout.data, "data", dump_spec(spec.data), "prepare")
    if need_teacher:
        teacher_file = layout.model_dir("teacher") / MODEL_FILE
        if not teacher_file.exists() or not (layout.teacher_outputs / CACHE_NAME).exists():
            train_teacher(spec, layout, progress=progress)
            actions.append("train_teacher")
        else:
            _check_same(layout.model_dir("teacher"), "teacher", dump_spec(spec.teacher), "train_teacher")
    return actions


def proxy_batch(data: PreparedData, spec: BatchSpec) -> ProxyBatch:
    """A seeded sample of ``spec.size`` rows of the chosen split (all rows if fewer)."""
    split = getattr(data, spec.split)
    if len(split) == 0:
        raise ArchSearchError(f"the {spec.split} split is empty; choose batch.split: train")
    gen = torch.Generator().manual_seed(spec.seed)
    idx = torch.randperm(len(split), generator=gen)[: spec.size]
    return ProxyBatch(x=split.x[idx].clone(), y=split.y[idx].clone(), num_classes=data.num_classes)


def build_context(space: ArchSpaceSpec, root: str | Path | None = None, need_teacher_outputs: bool = False,
                  progress: bool = True) -> SearchContext:
    """Load the pipeline, make missing artifacts, load the data and (if used) the teacher."""
    pipeline_data, pipeline = load_pipeline_for(space)
    configure_threads(pipeline.runtime)  # the pipeline's torch threads, as its stages use
    layout = Layout(Path(root if root is not None else space.root))
    uses_teacher = any(get_proxy(p).needs_teacher for p in space.proxies)
    need_trained = (space.teacher == "trained" and uses_teacher) or need_teacher_outputs
    actions = ensure_artifacts(pipeline, layout, need_teacher=need_trained, progress=progress)
    data = load_prepared(layout.data)
    input_shape = tuple(space.input_shape) if space.input_shape else tuple(data.input_shape)
    num_classes = space.num_classes or data.num_classes
    if input_shape != tuple(data.input_shape) or num_classes != data.num_classes:
        raise ArchSearchError(
            f"the space says input_shape {input_shape} and num_classes {num_classes}, the prepared data has "
            f"{tuple(data.input_shape)} and {data.num_classes}"
        )
    ctx = SearchContext(space=space, pipeline=pipeline, pipeline_data=pipeline_data, pipeline_file=space.pipeline,
                        layout=layout, data=data, input_shape=input_shape, num_classes=num_classes, actions=actions)
    if uses_teacher:
        ctx.teacher, ctx.teacher_sha256 = load_teacher(space, pipeline, layout, input_shape, num_classes)
    return ctx


def load_teacher(space: ArchSpaceSpec, pipeline: PipelineSpec, layout: Layout, input_shape, num_classes):
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
