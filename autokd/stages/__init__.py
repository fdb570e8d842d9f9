"""Stages: the default pipeline, chains, the method comparison, DVC files, and the public recipe.

Everything that trains goes through :mod:`autokd.stages.recipe` (set up, build a role's model,
train it, save it, build the distillation objective), so the pipeline, chains, comparison
runs, search trials and architecture validation cannot drift apart. Validation that needs the
registries lives in :mod:`autokd.stages.validate`.
"""

from autokd.stages.evaluation import ROLES, evaluate
from autokd.stages.layout import Layout, LiveLogger
from autokd.stages.pipeline import STAGES, distill, prepare, run_stage, train_baseline, train_teacher
from autokd.stages.recipe import (
    build_distill_objective,
    build_role_model,
    distill_extra,
    role_fingerprint,
    save_role,
    setup,
    teacher_mode,
    train_role,
)
from autokd.stages.validate import effective_distill, load_pipeline_spec, method_params, validate_pipeline

__all__ = [
    "Layout", "LiveLogger", "ROLES", "STAGES", "build_distill_objective", "build_role_model", "distill",
    "distill_extra", "effective_distill", "evaluate", "load_pipeline_spec", "method_params", "prepare",
    "role_fingerprint", "run_stage", "save_role", "setup", "teacher_mode", "train_baseline", "train_role",
    "train_teacher", "validate_pipeline",
]
