"""The hyperparameter search spec's schema: dimensions, budget, scheduler, sampler, :class:`SearchSpec`.

Loading and the checks against the pipeline it searches are in :mod:`autokd.search.hparams.spec`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Field, field_validator, model_validator

from autokd.spec.base import Strict

PositiveInt = Annotated[int, Field(gt=0)]


# ------------------------------------------------------------------------------ dimensions


class Uniform(Strict):
    """A float drawn uniformly from [low, high]."""

    type: Literal["uniform"]
    low: float
    high: float

    @model_validator(mode="after")
    def _ordered(self):
        if not self.low < self.high:
            raise ValueError(f"low < high, found low={self.low:g}, high={self.high:g}")
        return self


class LogUniform(Strict):
    """A positive float drawn log-uniformly from [low, high] (temperatures, learning rates)."""

    type: Literal["loguniform"]
    low: float = Field(gt=0)
    high: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self):
        if not self.low < self.high:
            raise ValueError(f"low < high, found low={self.low:g}, high={self.high:g}")
        return self


class IntRange(Strict):
    """An integer in [low, high] (epochs, widths), optionally on a log scale."""

    type: Literal["int"]
    low: int
    high: int
    step: PositiveInt = 1
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self):
        if not self.low < self.high:
            raise ValueError(f"low < high, found low={self.low}, high={self.high}")
        if self.log and (self.low < 1 or self.step != 1):
            raise ValueError("log: true needs low >= 1 and step 1")
        return self


class Fixed(Strict):
    """A constant (inside ``conditional``: a bare value means ``{type: fixed, value: …}``)."""

    type: Literal["fixed"]
    value: Any


class SubChoice(Strict):
    """A choice among values (inside ``conditional``; no nested conditions)."""

    type: Literal["choice"]
    values: list[Any] = Field(min_length=1)


Conditioned = Annotated[Union[Uniform, LogUniform, IntRange, SubChoice, Fixed], Field(discriminator="type")]


class Choice(Strict):
    """A choice among ``values``, or among the model specs of a ``shortlist`` file (a YAML list
    of ``{name, params}``, as the architecture search writes). On ``distill.method``,
    ``conditional`` maps a method to the dimensions that exist only when it is chosen."""

    type: Literal["choice"]
    values: list[Any] | None = Field(None, min_length=1)
    shortlist: str | None = Field(None, description="a YAML list of {name, params} model specs")
    conditional: dict[str, dict[str, Conditioned]] = Field(default_factory=dict)

    @field_validator("conditional", mode="before")
    @classmethod
    def _bare_constants(cls, v):
        if not isinstance(v, dict):
            return v
        out = {}
        for method, dims in v.items():
            if isinstance(dims, dict):
                dims = {k: (d if isinstance(d, dict) else {"type": "fixed", "value": d}) for k, d in dims.items()}
            out[method] = dims
        return out

    @model_validator(mode="after")
    def _one_source(self):
        if (self.values is None) == (self.shortlist is None):
            raise ValueError("exactly one of values (a list) or shortlist (a file) is required")
        return self


Dimension = Annotated[Union[Uniform, LogUniform, IntRange, Choice], Field(discriminator="type")]


# ------------------------------------------------------------------------------ the rest


class Resources(Strict):
    """Resources of one trial: CPUs and GPUs (fractions share a GPU between trials); with
    ``workers: N`` (N ≥ 2) the trial trains on N data-parallel Ray Train workers of
    ``cpu_per_worker`` / ``gpu_per_worker`` each, and ``cpu``/``gpu`` are not used."""

    cpu: float = Field(1.0, gt=0, description="CPUs per trial (also its torch threads, rounded down, at least 1)")
    gpu: float = Field(0.0, ge=0, description="GPUs per trial; 0.25 runs four trials on one GPU")
    workers: PositiveInt = Field(1, description="Ray Train workers per trial (1: the trial trains in its own process)")
    cpu_per_worker: float = Field(1.0, ge=0.1, description="CPUs per worker of a multi-worker trial (its torch threads)")
    gpu_per_worker: float = Field(0.0, ge=0, description="GPUs per worker of a multi-worker trial (> 0: NCCL)")
    strategy: Literal["ddp", "fsdp"] = Field("ddp", description="a multi-worker trial's data parallelism: ddp "
                                             "(whole copies) or fsdp (sharded; runtime.strategy)")

    @model_validator(mode="after")
    def _fsdp_needs_workers(self) -> "Resources":
        if self.strategy == "fsdp" and self.workers < 2:
            raise ValueError(f"budget.resources.strategy fsdp shards a trial over workers, but workers is "
                             f"{self.workers}: set workers >= 2, or strategy ddp")
        return self

    @property
    def trial_cpus(self) -> float:
        """The CPUs one trial takes: its process, or its workers together."""
        return self.workers * self.cpu_per_worker if self.workers > 1 else self.cpu


class Budget(Strict):
    trials: PositiveInt = Field(16, description="number of trials (a grid runs its full product)")
    time_budget_s: float | None = Field(None, gt=0, description="stop launching and running trials after this")
    max_concurrent: PositiveInt | None = Field(None, description="trials at once (default: as resources allow)")
    resources: Resources = Field(default_factory=Resources)


class SchedulerSpec(Strict):
    """Early stopping on the first objective, per epoch. ``auto``: ASHA for one objective,
    FIFO (no early stopping) for several."""

    type: Literal["auto", "asha", "hyperband", "fifo"] = "auto"
    grace_period: PositiveInt = Field(5, description="epochs every trial runs before it can be stopped")
    reduction_factor: float = Field(3.0, gt=1, description="keep the top 1/reduction_factor at each rung")


class SamplerSpec(Strict):
    """How trial parameters are drawn. ``auto``: TPE for one objective, NSGA-II for several."""

    type: Literal["auto", "tpe", "random", "grid", "nsga2"] = "auto"
    seed: int | None = Field(0, description="sampler seed (null: not reproducible)")
    n_startup_trials: PositiveInt = Field(8, description="TPE: random trials before modelling")
    population_size: PositiveInt = Field(8, description="NSGA-II population size")


class SearchSpec(Strict):
    """A hyperparameter search over one pipeline spec."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="outputs go to searches/<name>/")
    pipeline: str = Field("pipelines/default.yaml", description="the pipeline spec searched")
    root: str = Field(".", description="pipeline root holding artifacts/ (the repo root under dvc repro)")
    objectives: dict[str, Literal["max", "min"]] = Field(
        default_factory=lambda: {"student.accuracy": "max"}, min_length=1,
        description="metric: direction; the first drives early stopping and best.yaml",
    )
    fixed: dict[str, Any] = Field(default_factory=dict, description="overrides applied to every trial")
    space: dict[str, Dimension] = Field(min_length=1)
    budget: Budget = Field(default_factory=Budget)
    scheduler: SchedulerSpec = Field(default_factory=SchedulerSpec)
    sampler: SamplerSpec = Field(default_factory=SamplerSpec)
    max_failures: int = Field(2, ge=0, description="retries of a trial whose worker or node died")
    storage: str | None = Field(
        None, description="Ray results path or URI (default searches/<name>/ray); multi-node needs a shared one"
    )
    record_experiments: bool | Literal["completed"] = Field(
        True, description="record every trial that ran as a DVC experiment (`dvc exp show`): a completed one as "
                          "<name>-t<NNN>, one stopped early or failed as <name>-t<NNN>-stopped / -failed; "
                          "'completed': the completed ones only; false: none"
    )

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    @property
    def scheduler_type(self) -> str:
        if self.scheduler.type == "auto":
            return "fifo" if self.multi_objective else "asha"
        return self.scheduler.type

    @property
    def sampler_type(self) -> str:
        if self.sampler.type == "auto":
            return "nsga2" if self.multi_objective else "tpe"
        return self.sampler.type
