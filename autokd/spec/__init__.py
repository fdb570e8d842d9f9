"""Pydantic specs: the one source of truth for every knob."""

from autokd.spec.errors import SpecError, SpecIssue
from autokd.spec.load import apply_overrides, dump_spec, load_pipeline_spec, load_yaml, validate_pipeline
from autokd.spec.pipeline import (
    AugmentSpec,
    DataSpec,
    DistillSpec,
    EvaluateSpec,
    FeaturePair,
    ModelSpec,
    PipelineSpec,
    RoleSpec,
    RuntimeSpec,
    SplitSpec,
    TrainSpec,
)

__all__ = [
    "AugmentSpec",
    "DataSpec",
    "DistillSpec",
    "EvaluateSpec",
    "FeaturePair",
    "ModelSpec",
    "PipelineSpec",
    "RoleSpec",
    "RuntimeSpec",
    "SplitSpec",
    "SpecError",
    "SpecIssue",
    "TrainSpec",
    "apply_overrides",
    "dump_spec",
    "load_pipeline_spec",
    "load_yaml",
    "validate_pipeline",
]
