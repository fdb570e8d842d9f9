"""The architecture search space file: a pydantic-validated YAML document.

A space names a pipeline (data + teacher), a student family with its choices, the
constraints applied before scoring, the proxies, how they are combined, the search
algorithm and top-k. ``search_spaces/students.yaml`` is the default::

    name: students
    pipeline: pipelines/default.yaml   # data and teacher come from here
    root: .                            # pipeline root holding artifacts/{data,teacher,...}
    student:
      family: cnn
      fixed: {dropout: 0.0}            # passed to every candidate (never a searched key)
      stem_width: [4, 8]
      depth: [[1, 2], [1, 2]]          # choices per stage
      width: [[4, 8, 16], [8, 16, 32]]
      kernel_size: [3, 5]
      block: [basic, plain]
    constraints: {max_params: 20000, max_latency_ms: 2.0, latency: {device: cpu, batch_size: 1, threads: 1}}
    validation: {epochs: 15}           # --validate N: the short distillation schedule
    proxies: [diswot_relation, diswot_semantic, naswot, synflow, snip, grad_norm, zen, zico, meco, meco_opt]
    combine: {method: rank, proxies: [params]}
    search: {algorithm: auto, seed: 0}
    top_k: 5

Validation runs in two passes like the pipeline spec: the file against
:class:`ArchSpaceSpec`, then ``student`` against its family's space model from
:data:`SPACE_FAMILIES`, proxy names against the proxy registry and a first candidate
against the model registry; every problem is a :class:`~autokd.spec.errors.SpecIssue` with
its key path.

The family space models, genes and candidates are in :mod:`autokd.search.arch.families`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Mapping

from pydantic import Field, PrivateAttr, model_validator

from autokd.models import MODELS
from autokd.search.arch.families import SPACE_FAMILIES, FamilySpace
from autokd.search.arch.proxies import BASELINES, PROXIES
from autokd.spec.base import Strict, params_issues, validate_document
from autokd.spec.document import read_document
from autokd.spec.errors import SpecIssue, unknown_name_issue

PositiveInt = Annotated[int, Field(gt=0)]


# ------------------------------------------------------------------------- the file


class LatencySpec(Strict):
    """How latency is measured (stated in every ranking): median of ``runs`` timed forward passes."""

    device: Literal["cpu", "cuda"] = "cpu"
    batch_size: PositiveInt = 1
    threads: PositiveInt = Field(1, description="torch CPU threads while timing")
    runs: PositiveInt = 20
    warmup: int = Field(3, ge=0)


class ConstraintSpec(Strict):
    """Budgets applied before scoring; a candidate over any of them is never scored."""

    max_params: PositiveInt | None = None
    max_flops: PositiveInt | None = Field(None, description="multiply-accumulates at the input size, batch 1")
    max_latency_ms: float | None = Field(None, gt=0)
    latency: LatencySpec = Field(default_factory=LatencySpec)


class BatchSpec(Strict):
    """The one batch every proxy sees (a seeded sample of a prepared split)."""

    size: PositiveInt = 64
    split: Literal["train", "val"] = "train"
    seed: int = 0


class CombineSpec(Strict):
    """How proxies become one score. ``rank``: mean of per-proxy ranks; ``zscore``: mean of
    per-proxy z-scores (after log for heavy-tailed proxies). Never a raw sum."""

    method: Literal["rank", "zscore"] = "rank"
    proxies: list[str] | None = Field(
        None, description="which proxies to combine, from `proxies` and the baselines params, flops "
        "(default: all in `proxies`)")


class AlgorithmSpec(Strict):
    """The search algorithm. ``auto``: exhaustive when the space has at most
    ``exhaustive_limit`` candidates, else regularized evolution."""

    algorithm: Literal["auto", "exhaustive", "evolution"] = "auto"
    seed: int = 0
    exhaustive_limit: PositiveInt = 1024
    budget: PositiveInt = Field(200, description="evolution: distinct admitted candidates to score")
    population: PositiveInt = Field(20, description="evolution: population size")
    sample: PositiveInt = Field(5, description="evolution: tournament size")

    @model_validator(mode="after")
    def _sizes(self):
        if self.sample > self.population:
            raise ValueError(f"sample ({self.sample}) must not exceed population ({self.population})")
        return self


class ValidateSpec(Strict):
    """``--validate N``: distill N candidates with a short schedule and correlate."""

    epochs: PositiveInt = Field(15, description="the short distillation schedule (student.train.epochs)")
    param_budget: PositiveInt | None = Field(
        None, description="centre of the parameter band (default: the densest ±band window)"
    )
    band: float = Field(0.10, gt=0, lt=1, description="relative half-width of the parameter band")
    band_share: float = Field(0.5, ge=0, le=1, description="share of the N candidates drawn inside the band")


DEFAULT_PROXIES = ["diswot_relation", "diswot_semantic", "naswot", "synflow", "snip", "grad_norm", "zen", "zico",
                   "meco", "meco_opt"]


class ArchSpaceSpec(Strict):
    """A student architecture search space (``autokd search arch <space>``)."""

    name: str | None = Field(None, description="output folder searches/<name> (default: the file's stem)",
                             pattern=r"^[A-Za-z0-9_.-]+$")
    pipeline: str = Field("pipelines/default.yaml", description="pipeline spec: data, teacher, distillation")
    overrides: dict[str, Any] = Field(default_factory=dict, description="dotted-path overrides of the pipeline")
    root: str = Field(".", description="pipeline root holding artifacts/data and artifacts/teacher")
    teacher: Literal["trained", "init"] = Field(
        "trained", description="trained: the pipeline's trained teacher (eval mode); init: its architecture at "
        "initialization (seeded), for when no trained teacher is wanted"
    )
    input_shape: list[PositiveInt] | None = Field(None, description="(C, H, W) or (F,); default: the data's")
    num_classes: PositiveInt | None = Field(None, description="default: the data's")
    student: dict[str, Any] = Field(..., description="family: <name> and that family's choices")
    constraints: ConstraintSpec = Field(default_factory=ConstraintSpec)
    proxies: list[str] = Field(default_factory=lambda: list(DEFAULT_PROXIES))
    combine: CombineSpec = Field(default_factory=CombineSpec)
    search: AlgorithmSpec = Field(default_factory=AlgorithmSpec)
    batch: BatchSpec = Field(default_factory=BatchSpec)
    top_k: PositiveInt = 5
    validation: ValidateSpec = Field(default_factory=ValidateSpec)

    _space: FamilySpace | None = PrivateAttr(None)
    _file: str | None = PrivateAttr(None)

    @property
    def space(self) -> FamilySpace:
        """The validated family space (set by :func:`validate_space`)."""
        if self._space is None:
            self._space = _family_space(self.student)
        return self._space

    @property
    def file(self) -> str | None:
        return self._file

    @property
    def combined_proxies(self) -> list[str]:
        return list(self.combine.proxies or self.proxies)


def _family_space(student: Mapping[str, Any]) -> FamilySpace:
    return SPACE_FAMILIES[student["family"]].model_validate(dict(student))


def _student_issues(student: dict[str, Any]) -> tuple[FamilySpace | None, list[SpecIssue]]:
    loc = ("student",)
    family = student.get("family")
    if family is None:
        return None, [SpecIssue(loc + ("family",), expected=f"a student family, one of: {', '.join(sorted(SPACE_FAMILIES))}",
                                show_found=False)]
    if family not in SPACE_FAMILIES:
        return None, [unknown_name_issue(loc + ("family",), family, SPACE_FAMILIES, "a searchable student family")]
    cls = SPACE_FAMILIES[family]
    issues = params_issues(cls, student, loc)
    if issues:
        return None, issues
    space = cls.model_validate(student)
    probe = space.decode_genes({g.name: g.values[0] for g in space.genes()})
    clash = sorted(set(space.fixed) & set(probe))
    if clash:
        return None, [SpecIssue(loc + ("fixed",), expected="only parameters that are not searched",
                                found=clash, hint="give a searched parameter a one-value list instead")]
    first = space.decode(next(iter(space.genomes())))
    issues = params_issues(MODELS[family].params, first.params, loc + ("fixed",))
    return (None, issues) if issues else (space, [])


def default_proxies(task: str) -> list[str]:
    """The proxies a space of ``task`` students computes when it names none (baselines aside)."""
    if task == "classify":
        return list(DEFAULT_PROXIES)
    return [name for name, p in PROXIES.items() if task in p.tasks and name not in BASELINES]


def registry_issues(spec: ArchSpaceSpec) -> tuple[FamilySpace | None, list[SpecIssue]]:
    """Pass 2: the family space, proxy names and the combination's proxies."""
    space, issues = _student_issues(spec.student)
    task = space.task if space is not None else None
    if task is not None and task != "classify" and "proxies" not in spec.model_fields_set:
        spec.proxies = default_proxies(task)  # the classifier defaults do not score token windows
    for i, name in enumerate(spec.proxies):
        if name not in PROXIES:
            issues.append(unknown_name_issue(("proxies", i), name, PROXIES, "a proxy"))
        elif task is not None and task not in PROXIES[name].tasks:
            issues.append(SpecIssue(("proxies", i), expected=f"a proxy defined for {task} students "
                                    f"({', '.join(default_proxies(task) + list(BASELINES))})", found=name,
                                    hint=f"the {space.family} family builds {task} students"))
    if not spec.proxies:
        issues.append(SpecIssue(("proxies",), expected="at least one proxy", found=[]))
    if len(set(spec.proxies)) != len(spec.proxies):
        issues.append(SpecIssue(("proxies",), expected="each proxy once", found=spec.proxies))
    computed = list(spec.proxies) + [b for b in BASELINES if b not in spec.proxies]  # baselines: always
    for i, name in enumerate(spec.combine.proxies or []):
        if name not in computed:
            issues.append(unknown_name_issue(("combine", "proxies", i), name, computed,
                                             "a proxy listed under `proxies` or a baseline (params, flops)"))
    if spec.input_shape is not None and len(spec.input_shape) not in (1, 3):
        issues.append(SpecIssue(("input_shape",), expected="(C, H, W) or (F,)", found=spec.input_shape))
    return space, issues


def validate_space(data: dict[str, Any], file: str | None = None, text: str | None = None) -> ArchSpaceSpec:
    """Validate a space mapping; raise :class:`~autokd.spec.errors.SpecError` listing every problem."""
    found: dict[str, Any] = {}

    def checks(spec: ArchSpaceSpec) -> list[SpecIssue]:
        found["space"], issues = registry_issues(spec)
        return issues

    spec = validate_document(ArchSpaceSpec, data, file=file, text=text, checks=checks)
    spec._space = found["space"]
    spec._file = file
    if spec.name is None:
        spec.name = Path(file).stem if file else "arch"
    return spec


def load_space(path: str | Path, overrides: Mapping[str, Any] | None = None) -> ArchSpaceSpec:
    """Load, override (dotted paths) and validate a space file."""
    data, text = read_document(path, overrides)
    return validate_space(data, file=str(path), text=text)
