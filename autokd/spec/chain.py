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

Validation has the two passes of the pipeline spec (:mod:`autokd.spec.load`): the YAML against
these models, then each step, seen as a one-step pipeline (its source model as ``teacher``),
against the model and method registries. Errors name the chain's own key paths
(``steps[1].distill.params.beta``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Mapping

from pydantic import Field, ValidationError, model_validator

from autokd.spec.errors import SpecError, SpecIssue, issues_from_validation
from autokd.spec.load import _attach_lines, apply_overrides, load_yaml, registry_issues
from autokd.spec.pipeline import (
    DataSpec,
    DistillSpec,
    EvaluateSpec,
    ModelSpec,
    PipelineSpec,
    RoleSpec,
    RuntimeSpec,
    Strict,
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


def _step_issues(spec: ChainSpec, root: Path | None, check_paths: bool) -> list[SpecIssue]:
    """Pass 2: each step as a one-step pipeline against the registries, with chain key paths."""
    from autokd.losses import available as available_losses
    from autokd.losses import get_spec as get_loss_spec

    issues: list[SpecIssue] = []
    for i, step in enumerate(spec.steps):
        for issue in registry_issues(spec.step_pipeline(i), root=root, check_paths=check_paths and i == 0):
            head, rest = issue.loc[0], tuple(issue.loc[1:])
            if head == "data" and i > 0:
                continue  # reported once, for the first step
            if head == "teacher":
                if i > 0:
                    continue  # the previous step, already checked as a student
                issue.loc = ("teacher",) + rest
            elif head == "student":
                issue.loc = ("steps", i) + rest
            elif head == "distill":
                issue.loc = ("steps", i, "distill") + rest
            issues.append(issue)
        if step.blockwise is not None:
            loc = ("steps", i, "blockwise")
            src = spec.source_role(i)
            if step.model.name not in BLOCKWISE_FAMILIES:
                issues.append(SpecIssue(loc, expected=f"a step whose model family is one of {sorted(BLOCKWISE_FAMILIES)} "
                                        "(stepping stones are cut at stage boundaries)", found=step.model.name,
                                        hint=f"steps[{i}].model.name"))
            if src.model.name not in BLOCKWISE_FAMILIES:
                issues.append(SpecIssue(loc, expected=f"a source model ({spec.source(i)}) whose family is one of "
                                        f"{sorted(BLOCKWISE_FAMILIES)}", found=src.model.name))
            if step.distill.method in available_losses() and get_loss_spec(step.distill.method).kind != "logit":
                issues.append(SpecIssue(("steps", i, "distill", "method"), expected="a logit method with blockwise "
                                        "(stepping stones are distilled by logits)", found=step.distill.method))
            n_stages = len(step.model.params.get("widths", [])) if step.model.name == "cnn" else 3
            bad = [k for k in (step.blockwise.stones or []) if n_stages and k > n_stages]
            if bad:
                issues.append(SpecIssue(loc + ("stones",), expected=f"stage numbers between 1 and {n_stages}",
                                        found=bad))
    return issues


def validate_chain(
    data: dict[str, Any], file: str | None = None, text: str | None = None, root: Path | None = None,
    check_paths: bool = True,
) -> ChainSpec:
    """Validate a chain spec mapping; raise :class:`SpecError` listing every problem."""
    try:
        spec = ChainSpec.model_validate(data)
    except ValidationError as exc:
        issues = issues_from_validation(exc, ChainSpec)
        _attach_lines(issues, text)
        raise SpecError(file, issues) from None
    issues = _step_issues(spec, root, check_paths)
    if issues:
        _attach_lines(issues, text)
        raise SpecError(file, issues)
    return spec


def load_chain_spec(
    path: str | Path, overrides: Mapping[str, Any] | None = None, root: str | Path | None = None,
    check_paths: bool = True,
) -> ChainSpec:
    """Load, override (dotted paths, e.g. ``steps.0.train.epochs``) and validate a chain spec file."""
    path = Path(path)
    raw = load_yaml(path)
    data = _apply_chain_overrides(raw, overrides)
    text = path.read_text() if not overrides else None
    return validate_chain(data, file=str(path), text=text, root=Path(root) if root else Path.cwd(),
                          check_paths=check_paths)


def _apply_chain_overrides(data: dict[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
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
