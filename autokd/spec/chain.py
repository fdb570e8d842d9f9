"""The chain spec: multi-stage distillation, each step distilled from the previous model.

A chain declares data, a teacher and ``steps``; step 1 is distilled from the teacher, step k
from step k-1. That one shape covers:

* TAKD (Mirzadeh et al., AAAI 2020): teacher -> teaching assistant (mid-size) -> student;
* born-again networks (Furlanello et al., ICML 2018): generations of the teacher's own
  architecture, each distilled from the one before (``ensemble: true`` also scores the
  average of the generations' softmax outputs, the paper's BAN ensemble);
* block-wise logit distillation (Yu et al. 2024): a step with a ``blockwise`` block trains
  stepping-stone models (the student's first k stages, a connector, the source model's
  remaining stages and head) next to the student, all distilled by logits.

Optional references, each one more training run: ``baseline`` (the final step's model and
training on labels alone, the ``kd_gain`` reference) and ``direct`` (the final step distilled
straight from the teacher with its own ``distill`` block and no stepping stones: what the
chain is for, if it beats that).

Validation has the two passes of the pipeline spec: the YAML against these models, then
(:mod:`autokd.stages.validate`) each step, seen as a one-step pipeline (its source model as
``teacher``), against the model and method registries. Errors name the chain's own key paths
(``steps[1].distill.params.beta``).
"""

from __future__ import annotations

from typing import Annotated, Any, Mapping

from pydantic import Field, model_validator

from autokd.spec.base import Strict
from autokd.spec.document import apply_overrides
from autokd.spec.errors import SpecError, SpecIssue
from autokd.spec.pipeline import (
    DataSpec,
    DistillSpec,
    EvaluateSpec,
    ModelSpec,
    PipelineSpec,
    RoleSpec,
    RuntimeSpec,
    TrainSpec,
)

#: Stage names a step may not take (they are the chain's other stages or artifact folders).
RESERVED_NAMES = frozenset({"prepare", "data", "teacher", "baseline", "direct", "evaluate", "reports"})
#: Model families the block-wise stepping stones can be cut from (stem, stages, pool, head).
BLOCKWISE_FAMILIES = frozenset({"cnn", "resnet_s1"})

StepName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$", description="stage and artifact name")]


class BlockwiseSpec(Strict):
    """Stepping stones (Yu et al. 2024): student stem + stages[:k] -> connector -> source stages[k:] + head.

    Every stone's logits are distilled toward the source model's logits with the step's logit
    method; the student's blocks are shared with the stones, the source model's parts are frozen.
    Loss: (1 - alpha) * CE(student) + alpha * (D(student) + weight * mean_k D(stone_k)).
    """

    weight: float = Field(1.0, ge=0, description="weight of the stones' mean distillation term")
    stones: list[Annotated[int, Field(ge=1)]] | None = Field(
        None, description="which k (1-based student stages) get a stone; default: every student stage"
    )


class StepSpec(Strict):
    """One model of the chain, distilled from the model before it."""

    name: StepName
    model: ModelSpec = Field(default_factory=ModelSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)
    distill: DistillSpec = Field(default_factory=DistillSpec)
    blockwise: BlockwiseSpec | None = Field(None, description="add block-wise stepping stones to this step")

    def role(self) -> RoleSpec:
        return RoleSpec(model=self.model, train=self.train)


class ChainSpec(Strict):
    """A multi-stage distillation pipeline."""

    name: str = Field("chain", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="runs go under runs/<name>")
    data: DataSpec = Field(default_factory=DataSpec)
    teacher: RoleSpec = Field(default_factory=RoleSpec)
    steps: list[StepSpec] = Field(min_length=1, description="distilled in order, each from the model before")
    baseline: bool = Field(True, description="also train the final step's model on labels alone (kd_gain)")
    direct: bool = Field(False, description="also distil the final step straight from the teacher (plain, no stones)")
    ensemble: bool = Field(False, description="evaluate the average of the steps' softmax outputs too")
    evaluate: EvaluateSpec = Field(default_factory=EvaluateSpec)
    runtime: RuntimeSpec = Field(default_factory=RuntimeSpec)

    @model_validator(mode="after")
    def _names(self):
        seen: set[str] = set()
        for step in self.steps:
            if step.name in RESERVED_NAMES or step.name.endswith("_outputs"):
                raise ValueError(
                    f"step name {step.name!r} is reserved (reserved: {', '.join(sorted(RESERVED_NAMES))}, *_outputs)"
                )
            if step.name in seen:
                raise ValueError(f"step names must be unique; {step.name!r} appears twice")
            seen.add(step.name)
        return self

    # ------------------------------------------------------------------ views

    def index(self, name: str) -> int:
        for i, step in enumerate(self.steps):
            if step.name == name:
                return i
        raise KeyError(name)

    def source(self, index: int) -> str:
        """The name of the model step ``index`` is distilled from."""
        return "teacher" if index == 0 else self.steps[index - 1].name

    def source_role(self, index: int) -> RoleSpec:
        return self.teacher if index == 0 else self.steps[index - 1].role()

    @property
    def final(self) -> StepSpec:
        return self.steps[-1]

    def step_pipeline(self, index: int) -> PipelineSpec:
        """Step ``index`` as a one-step pipeline: its source model is the teacher, it is the student."""
        step = self.steps[index]
        return PipelineSpec(
            name=f"{self.name}.{step.name}", data=self.data, teacher=self.source_role(index), student=step.role(),
            distill=step.distill, evaluate=self.evaluate, runtime=self.runtime,
        )

    def direct_pipeline(self) -> PipelineSpec:
        """The final step distilled straight from the teacher."""
        final = self.final
        return PipelineSpec(
            name=f"{self.name}.direct", data=self.data, teacher=self.teacher, student=final.role(),
            distill=final.distill, evaluate=self.evaluate, runtime=self.runtime,
        )

    def model_names(self) -> list[str]:
        """Every model the chain trains, in run order."""
        names = ["teacher"] + [s.name for s in self.steps]
        return names + (["baseline"] if self.baseline else []) + (["direct"] if self.direct else [])

    def stage_names(self) -> list[str]:
        """Every stage in run order."""
        names = ["prepare", "teacher"] + [s.name for s in self.steps]
        if self.baseline:
            names.append("baseline")
        if self.direct:
            names.append("direct")
        return names + ["evaluate"]


def is_chain_spec(data: Mapping[str, Any]) -> bool:
    """A spec mapping with ``steps`` is a chain spec (``pipelines/takd.yaml``), else a pipeline spec."""
    return isinstance(data, Mapping) and "steps" in data


def apply_chain_overrides(data: dict[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """Like :func:`apply_overrides`, and ``steps.<i>.…`` addresses a step by position."""
    plain = {k: v for k, v in (overrides or {}).items() if not k.startswith("steps.")}
    out = apply_overrides(data, plain)
    for key, value in (overrides or {}).items():
        if not key.startswith("steps."):
            continue
        _, index, *rest = key.split(".")
        steps = out.get("steps")
        if not rest or not index.isdigit() or not isinstance(steps, list) or int(index) >= len(steps):
            raise SpecError(None, [SpecIssue(("steps",), expected="steps.<index>.<key> with an existing step index",
                                             found=key)])
        steps[int(index)] = apply_overrides(steps[int(index)], {".".join(rest): value})
    return out
