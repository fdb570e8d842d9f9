"""The method-comparison spec (``pipelines/compare/methods.yaml``).

Every listed method is run as the ``distill`` stage of one pipeline spec (``pipeline``, the
default one) with ``distill.method`` and the method's own entry overridden, once per student
seed; the labels-only ``baseline`` (that pipeline's student, no distillation term) runs once
per seed too. The data and the teacher are the pipeline's own prepared artifacts (one
teacher, seed 0): only the student's seed (its initialisation and batch order) varies.

    pipeline: pipelines/default.yaml
    seeds: [0, 1, 2]
    overrides: {}                  # dotted pipeline paths applied to every run (baseline too)
    methods:
      kd: {}
      at: {features: [{student: stage1, teacher: stage1}]}
      dkd: {params: {warmup_epochs: 10}, temperature: 4.0}
    tuning: {trials: 8, epochs: null, sampler: tpe, sampler_seed: 0}   # the tuned comparison's budget

The tuned comparison (``autokd compare tune``, :mod:`autokd.search.tuned_compare`) searches every
method with the same ``tuning`` budget on validation accuracy, then trains the chosen
configuration once per seed (``autokd compare run-tuned``, :mod:`autokd.stages.compare_tuned`).

Validation (before anything runs): the YAML against these models; then every run's pipeline
spec through :func:`autokd.stages.validate.validate_pipeline` (method names, method parameters),
with errors reported at ``methods.<name>.…``; then feature pairs against the features the
pipeline's teacher and student actually expose, and whether their shapes can be adapted.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from autokd.spec.base import Strict
from autokd.spec.pipeline import FeaturePair

#: The labels-only reference; it is always run and is not a method name.
BASELINE = "baseline"


class MethodEntry(Strict):
    """One method's settings; anything left out comes from the pipeline's ``distill`` block."""

    params: dict[str, Any] = Field(default_factory=dict, description="the method's own parameters")
    features: list[FeaturePair] = Field(default_factory=list, description="feature pairs (feature/relation methods)")
    temperature: float | None = Field(
        None, gt=0, description="distill.temperature for this method (methods with one; absent: its own default)")
    alpha: float | None = Field(None, ge=0, le=1, description="distill.alpha for this method")


class Range(Strict):
    """A search range ``[low, high]``, log-uniform with ``log: true``."""

    low: float
    high: float
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self):
        if not self.low < self.high:
            raise ValueError(f"low < high, found low={self.low:g}, high={self.high:g}")
        if self.log and self.low <= 0:
            raise ValueError("log: true needs low > 0")
        return self


class Tuning(Strict):
    """The tuned comparison's budget, the same for every method: each method is searched over its
    own knobs (the ranges its parameter model hints, :meth:`autokd.losses.LossSpec.search_space`),
    λ, and T where it has one, for ``trials`` trials of ``epochs`` epochs, chosen on validation
    accuracy; knobs set in ``methods.<name>`` stay fixed."""

    trials: int = Field(8, gt=0, description="trials per method")
    epochs: int | None = Field(None, gt=0, description="student epochs of every trial (null: the runs' own schedule)")
    sampler: Literal["tpe", "random"] = Field("tpe", description="how trial parameters are drawn")
    sampler_seed: int = Field(0, description="the sampler's seed (the same for every method)")
    seed: int | None = Field(None, description="the student seed of every trial (null: the first of seeds)")
    alpha: Range = Field(default_factory=lambda: Range(low=0.1, high=1.0), description="λ's range")
    max_concurrent: int | None = Field(None, gt=0, description="trials at once (default: one per CPU)")


class CompareSpec(Strict):
    """Which methods, which seeds, on which pipeline."""

    pipeline: str = Field("pipelines/default.yaml", description="the pipeline spec whose data, teacher and student are used")
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1, description="student seeds")
    overrides: dict[str, Any] = Field(default_factory=dict, description="dotted pipeline paths set for every run")
    methods: dict[str, MethodEntry] = Field(min_length=1, description="method name -> its settings")
    tuning: Tuning = Field(default_factory=Tuning, description="the tuned comparison's budget (every method alike)")

    @field_validator("seeds")
    @classmethod
    def _unique(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError("distinct seeds")
        return v

    @field_validator("overrides")
    @classmethod
    def _no_method_keys(cls, v: dict[str, Any]) -> dict[str, Any]:
        bad = [k for k in v if k in ("distill.method", "student.train.seed")]
        if bad:
            raise ValueError(f"no {' or '.join(bad)} here (set per run from methods and seeds)")
        return v

    @property
    def tuning_seed(self) -> int:
        """The student seed of every tuning trial."""
        return self.seeds[0] if self.tuning.seed is None else self.tuning.seed

    def names(self) -> list[str]:
        """The baseline, then the methods in file order."""
        return [BASELINE] + list(self.methods)

    def run_overrides(self, method: str, seed: int) -> dict[str, Any]:
        """Dotted overrides that turn the pipeline into run (method, seed)."""
        out = dict(self.overrides)
        out["student.train.seed"] = int(seed)
        if method == BASELINE:
            return out
        entry = self.methods[method]
        out["distill.method"] = method
        out["distill.params"] = dict(entry.params)
        out["distill.features"] = [f.model_dump() for f in entry.features]
        # absent: the method's own default (lskd 2, kd 4), never the pipeline's T, which a method
        # without a temperature would refuse and which would leave every method at one habit
        out["distill.temperature"] = entry.temperature
        if entry.alpha is not None:
            out["distill.alpha"] = entry.alpha
        return out
