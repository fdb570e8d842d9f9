"""The architecture search space: a pydantic-validated YAML file and its candidates.

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
    proxies: [diswot_relation, diswot_semantic, naswot, synflow, snip, grad_norm, zen]
    combine: {method: rank}
    search: {algorithm: auto, seed: 0}
    top_k: 5

Validation runs in two passes like the pipeline spec: the file against
:class:`ArchSpaceSpec`, then ``student`` against its family's space model from
:data:`SPACE_FAMILIES`, proxy names against the proxy registry and a first candidate
against the model registry; every problem is a :class:`~autokd.spec.errors.SpecIssue` with
its key path.

A candidate is a *genome*: one choice index per gene (``stem_width``, ``depth.1``, …).
Enumeration is the product of the genes' choices in a fixed order; evolution mutates one
gene at a time.
"""

from __future__ import annotations

from abc import abstractmethod

import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Callable, ClassVar, Iterator, Literal, Mapping

from pydantic import BaseModel, Field, PrivateAttr, field_validator, model_validator

from autokd.spec.base import Strict, validate_document
from autokd.spec.document import read_document
from autokd.spec.errors import SpecError, SpecIssue, unknown_name_issue

PositiveInt = Annotated[int, Field(gt=0)]
DepthInt = Annotated[int, Field(ge=1)]


# ------------------------------------------------------------------------------ genes


@dataclass(frozen=True)
class Gene:
    """One decision of the space: a name and its possible values."""

    name: str
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Candidate:
    """One student architecture: its genome and the ``student.model`` spec it decodes to."""

    genome: tuple[int, ...]
    family: str
    params: dict[str, Any]
    key: str

    @property
    def model(self) -> dict[str, Any]:
        """Exactly the ``student.model`` shape of a pipeline spec."""
        return {"name": self.family, "params": dict(self.params)}


def _non_empty_unique(values: list, what: str) -> list:
    if not values:
        raise ValueError(f"{what}: give at least one choice")
    if len({repr(v) for v in values}) != len(values):
        raise ValueError(f"{what}: choices must be distinct, found {values}")
    return values


class FamilySpace(Strict):
    """Base of a family's space. Subclasses declare their choices and implement
    :meth:`genes` and :meth:`decode`; :meth:`label` names a candidate."""

    family: str
    fixed: dict[str, Any] = Field(
        default_factory=dict, description="model parameters passed unchanged to every candidate"
    )
    gene_names: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def genes(self) -> list[Gene]:
        """The family's choices, one gene each."""

    @abstractmethod
    def decode_genes(self, values: dict[str, Any]) -> dict[str, Any]:
        """Model parameters from ``{gene name: value}`` (without ``fixed``)."""

    @abstractmethod
    def label(self, params: dict[str, Any]) -> str:
        """A short, unique name for a candidate."""

    # ----------------------------------------------------------------- generic machinery
    @property
    def size(self) -> int:
        return math.prod(len(g.values) for g in self.genes())

    def decode(self, genome: tuple[int, ...]) -> Candidate:
        genes = self.genes()
        if len(genome) != len(genes):
            raise ValueError(f"genome {genome} has {len(genome)} genes, the space has {len(genes)}")
        values = {g.name: g.values[i] for g, i in zip(genes, genome)}
        params = {**self.fixed, **self.decode_genes(values)}
        return Candidate(genome=tuple(genome), family=self.family, params=params, key=self.label(params))

    def genomes(self) -> Iterator[tuple[int, ...]]:
        """Every genome in a fixed (lexicographic) order."""
        return itertools.product(*(range(len(g.values)) for g in self.genes()))

    def candidates(self) -> Iterator[Candidate]:
        for genome in self.genomes():
            yield self.decode(genome)

    def random_genome(self, rng) -> tuple[int, ...]:
        return tuple(rng.randrange(len(g.values)) for g in self.genes())

    def mutate(self, genome: tuple[int, ...], rng) -> tuple[int, ...]:
        """Change one gene (among those with more than one value) to another value."""
        genes = self.genes()
        free = [i for i, g in enumerate(genes) if len(g.values) > 1]
        if not free:
            return tuple(genome)
        i = rng.choice(free)
        new = rng.choice([v for v in range(len(genes[i].values)) if v != genome[i]])
        out = list(genome)
        out[i] = new
        return tuple(out)


SPACE_FAMILIES: dict[str, type[FamilySpace]] = {}


def register_space_family(name: str) -> Callable[[type[FamilySpace]], type[FamilySpace]]:
    """Register a family's space model under the model family's registry name."""

    def deco(cls: type[FamilySpace]) -> type[FamilySpace]:
        if name in SPACE_FAMILIES:
            raise ValueError(f"space family {name!r} registered twice")
        SPACE_FAMILIES[name] = cls
        return cls

    return deco


def _j(values) -> str:
    return "-".join(str(v) for v in values)


@register_space_family("cnn")
class CNNSpace(FamilySpace):
    """ResNet-style CNN: stem width, per-stage depth and width, kernel size, block type."""

    family: Literal["cnn"] = "cnn"
    stem_width: list[PositiveInt] = Field(default_factory=lambda: [16], description="stem channel choices")
    depth: list[list[DepthInt]] = Field(
        default_factory=lambda: [[1, 2], [1, 2]], description="per stage: the block-count choices"
    )
    width: list[list[PositiveInt]] = Field(
        default_factory=lambda: [[16], [32]], description="per stage: the channel choices"
    )
    kernel_size: list[Literal[1, 3, 5, 7]] = Field(default_factory=lambda: [3])
    block: list[Literal["basic", "plain"]] = Field(default_factory=lambda: ["basic"])
    batch_norm: list[bool] = Field(default_factory=lambda: [True])

    @model_validator(mode="after")
    def _stages(self):
        if not self.depth:
            raise ValueError("depth: give the choices of at least one stage")
        if len(self.depth) != len(self.width):
            raise ValueError(
                f"depth and width need one list of choices per stage; got {len(self.depth)} depth "
                f"and {len(self.width)} width lists"
            )
        for i, (d, w) in enumerate(zip(self.depth, self.width)):
            _non_empty_unique(d, f"depth[{i}]")
            _non_empty_unique(w, f"width[{i}]")
        for name in ("stem_width", "kernel_size", "block", "batch_norm"):
            _non_empty_unique(getattr(self, name), name)
        return self

    def genes(self) -> list[Gene]:
        genes = [Gene("stem_width", tuple(self.stem_width))]
        genes += [Gene(f"depth.{i}", tuple(d)) for i, d in enumerate(self.depth)]
        genes += [Gene(f"width.{i}", tuple(w)) for i, w in enumerate(self.width)]
        genes += [Gene("kernel_size", tuple(self.kernel_size)), Gene("block", tuple(self.block)),
                  Gene("batch_norm", tuple(self.batch_norm))]
        return genes

    def decode_genes(self, v: dict[str, Any]) -> dict[str, Any]:
        n = len(self.depth)
        return {
            "stem_width": v["stem_width"],
            "depths": [v[f"depth.{i}"] for i in range(n)],
            "widths": [v[f"width.{i}"] for i in range(n)],
            "kernel_size": v["kernel_size"],
            "block": v["block"],
            "batch_norm": v["batch_norm"],
        }

    def label(self, p: dict[str, Any]) -> str:
        bn = "" if p.get("batch_norm", True) else "_nobn"
        return (f"cnn_s{p.get('stem_width', 16)}_d{_j(p['depths'])}_w{_j(p['widths'])}"
                f"_k{p.get('kernel_size', 3)}_{p.get('block', 'basic')}{bn}")


@register_space_family("mlp")
class MLPSpace(FamilySpace):
    """Multi-layer perceptron: number of hidden layers and their (common) width, activation."""

    family: Literal["mlp"] = "mlp"
    depth: list[DepthInt] = Field(default_factory=lambda: [1, 2], description="number of hidden layers")
    width: list[PositiveInt] = Field(default_factory=lambda: [16, 32], description="width of every hidden layer")
    activation: list[Literal["relu", "gelu", "tanh"]] = Field(default_factory=lambda: ["relu"])

    @model_validator(mode="after")
    def _lists(self):
        for name in ("depth", "width", "activation"):
            _non_empty_unique(getattr(self, name), name)
        return self

    def genes(self) -> list[Gene]:
        return [Gene("depth", tuple(self.depth)), Gene("width", tuple(self.width)),
                Gene("activation", tuple(self.activation))]

    def decode_genes(self, v: dict[str, Any]) -> dict[str, Any]:
        return {"hidden": [v["width"]] * v["depth"], "activation": v["activation"]}

    def label(self, p: dict[str, Any]) -> str:
        return f"mlp_h{_j(p['hidden'])}_{p.get('activation', 'relu')}"


@register_space_family("resnet_s1")
class S1Space(FamilySpace):
    """DisWOT S1: ResNet20-style CIFAR network, blocks per stage (3 stages)."""

    family: Literal["resnet_s1"] = "resnet_s1"
    depth: list[list[DepthInt]] = Field(
        default_factory=lambda: [[1, 3, 5, 7]] * 3, description="per stage: the block-count choices"
    )

    @field_validator("depth")
    @classmethod
    def _three(cls, v):
        if len(v) != 3:
            raise ValueError(f"resnet_s1 has 3 stages; got choices for {len(v)}")
        for i, d in enumerate(v):
            _non_empty_unique(d, f"depth[{i}]")
        return v

    def genes(self) -> list[Gene]:
        return [Gene(f"depth.{i}", tuple(d)) for i, d in enumerate(self.depth)]

    def decode_genes(self, v: dict[str, Any]) -> dict[str, Any]:
        return {"depths": [v[f"depth.{i}"] for i in range(3)]}

    def label(self, p: dict[str, Any]) -> str:
        return "s1_" + "".join(str(d) for d in p["depths"])


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
    proxies: list[str] | None = Field(None, description="which proxies to combine (default: all in `proxies`)")


class SearchSpec(Strict):
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


DEFAULT_PROXIES = ["diswot_relation", "diswot_semantic", "naswot", "synflow", "snip", "grad_norm", "zen"]


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
    search: SearchSpec = Field(default_factory=SearchSpec)
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
    from autokd.models import MODELS

    loc = ("student",)
    family = student.get("family")
    if family is None:
        return None, [SpecIssue(loc + ("family",), expected=f"a student family, one of: {', '.join(sorted(SPACE_FAMILIES))}",
                                show_found=False)]
    if family not in SPACE_FAMILIES:
        return None, [unknown_name_issue(loc + ("family",), family, SPACE_FAMILIES, "a searchable student family")]
    cls = SPACE_FAMILIES[family]
    try:
        space = cls.model_validate(student)
    except ValidationError as exc:
        return None, issues_from_validation(exc, cls, prefix=loc)
    probe = space.decode_genes({g.name: g.values[0] for g in space.genes()})
    clash = sorted(set(space.fixed) & set(probe))
    if clash:
        return None, [SpecIssue(loc + ("fixed",), expected="only parameters that are not searched",
                                found=clash, hint="give a searched parameter a one-value list instead")]
    first = space.decode(next(iter(space.genomes())))
    try:
        MODELS[family].params.model_validate(first.params)
    except ValidationError as exc:
        issues = issues_from_validation(exc, MODELS[family].params, prefix=loc + ("fixed",))
        return None, issues
    return space, []


def registry_issues(spec: ArchSpaceSpec) -> tuple[FamilySpace | None, list[SpecIssue]]:
    """Pass 2: the family space, proxy names and the combination's proxies."""
    from autokd.search.arch.proxies import PROXIES

    space, issues = _student_issues(spec.student)
    for i, name in enumerate(spec.proxies):
        if name not in PROXIES:
            issues.append(unknown_name_issue(("proxies", i), name, PROXIES, "a proxy"))
    if not spec.proxies:
        issues.append(SpecIssue(("proxies",), expected="at least one proxy", found=[]))
    if len(set(spec.proxies)) != len(spec.proxies):
        issues.append(SpecIssue(("proxies",), expected="each proxy once", found=spec.proxies))
    for i, name in enumerate(spec.combine.proxies or []):
        if name not in spec.proxies:
            issues.append(unknown_name_issue(("combine", "proxies", i), name, spec.proxies,
                                             "a proxy listed under `proxies`"))
    if spec.input_shape is not None and len(spec.input_shape) not in (1, 3):
        issues.append(SpecIssue(("input_shape",), expected="(C, H, W) or (F,)", found=spec.input_shape))
    return space, issues


def validate_space(data: dict[str, Any], file: str | None = None, text: str | None = None) -> ArchSpaceSpec:
    """Validate a space mapping; raise :class:`SpecError` listing every problem."""
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
