"""The searchable student families: genes, candidates and each family's space model.

A candidate is a *genome*: one choice index per gene (``stem_width``, ``depth.1``, ...).
Enumeration is the product of the genes' choices in a fixed (lexicographic) order; evolution
mutates one gene at a time. A family's space model (a :class:`FamilySpace` registered in
:data:`SPACE_FAMILIES` under the model registry's family name) validates the ``student``
section of a space file and decodes genomes into ``student.model`` parameters.
"""

from __future__ import annotations

import itertools
import math
from abc import abstractmethod
from dataclasses import dataclass
from typing import Annotated, Any, Callable, ClassVar, Iterator, Literal

from pydantic import Field, field_validator, model_validator

from autokd.spec.base import Strict

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
    #: the pipeline task whose students this family builds (``classify`` or ``lm``)
    task: ClassVar[str] = "classify"

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


@register_space_family("decoder")
class DecoderSpace(FamilySpace):
    """Decoder-only transformer (a language-model student): layers, width, heads, MLP ratio.

    Every width choice must split into every head choice (``width % heads == 0``), so each
    combination of the product is a model; the context and vocabulary are the pipeline's."""

    family: Literal["decoder"] = "decoder"
    task: ClassVar[str] = "lm"
    layers: list[DepthInt] = Field(default_factory=lambda: [1, 2], description="transformer blocks")
    width: list[PositiveInt] = Field(default_factory=lambda: [64, 128], description="residual width")
    heads: list[PositiveInt] = Field(default_factory=lambda: [2], description="attention heads")
    mlp_ratio: list[Annotated[float, Field(gt=0)]] = Field(default_factory=lambda: [4.0],
                                                          description="MLP hidden width / width")

    @model_validator(mode="after")
    def _lists(self):
        for name in ("layers", "width", "heads", "mlp_ratio"):
            _non_empty_unique(getattr(self, name), name)
        bad = [(w, h) for w in self.width for h in self.heads if w % h]
        if bad:
            raise ValueError(f"every width must split into every head count; width {bad[0][0]} does not split "
                             f"into {bad[0][1]} heads (choose widths divisible by each of {self.heads})")
        return self

    def genes(self) -> list[Gene]:
        return [Gene("layers", tuple(self.layers)), Gene("width", tuple(self.width)),
                Gene("heads", tuple(self.heads)), Gene("mlp_ratio", tuple(self.mlp_ratio))]

    def decode_genes(self, v: dict[str, Any]) -> dict[str, Any]:
        return {"layers": v["layers"], "width": v["width"], "heads": v["heads"], "mlp_ratio": float(v["mlp_ratio"])}

    def label(self, p: dict[str, Any]) -> str:
        return f"dec_l{p['layers']}_w{p['width']}_h{p['heads']}_m{p.get('mlp_ratio', 4.0):g}"
