"""Pydantic specs: the one source of truth for every knob.

Schemas, YAML loading and error formatting only: this package imports nothing from the rest
of autokd. Validation against the registries (model families, methods, readers) is the
second pass, in :mod:`autokd.stages.validate` (``load_pipeline_spec``).
"""

from autokd.spec.base import Strict, params_issues, validate_document
from autokd.spec.document import apply_overrides, dump_spec, get_path, load_yaml, read_document, set_path
from autokd.spec.errors import SpecError, SpecIssue
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
    "AugmentSpec", "DataSpec", "DistillSpec", "EvaluateSpec", "FeaturePair", "ModelSpec", "PipelineSpec",
    "RoleSpec", "RuntimeSpec", "SplitSpec", "SpecError", "SpecIssue", "Strict", "TrainSpec", "apply_overrides",
    "dump_spec", "get_path", "load_yaml", "params_issues", "read_document", "set_path", "validate_document",
]
