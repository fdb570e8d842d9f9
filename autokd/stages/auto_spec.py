"""``distill.method: auto``: the candidate recipes and their schema (no training here).

With ``method: auto`` the distill stage trains a short list of candidate recipes on the
training split and keeps the one with the best VALIDATION accuracy
(:mod:`autokd.stages.auto`). The list is ``distill.params.candidates``; absent, it is
:data:`DEFAULT_CANDIDATES`, chosen by ``benchmarks/defaults_study.py`` (no single recipe
matched labels-only training on every dataset and seed there). A candidate's ``alpha`` absent
means ``distill.alpha``; its ``temperature`` absent means its method's own default, as in a
plain spec. ``distill.temperature`` is refused with ``auto`` (each candidate has its own).

This module imports only :mod:`autokd.spec`, so :mod:`autokd.stages.validate` can use it.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from autokd.spec.base import Strict
from autokd.spec.pipeline import DistillSpec

AUTO = "auto"


class AutoCandidate(Strict):
    """One recipe ``auto`` may pick."""

    method: str = Field(description="a logit method from `autokd methods`")
    temperature: float | None = Field(None, gt=0, description="T; absent = the method's own default")
    alpha: float | None = Field(None, ge=0, le=1, description="lambda; absent = distill.alpha")
    params: dict[str, Any] = Field(default_factory=dict, description="the method's own parameters")


#: the built-in short list (``benchmarks/defaults_study.py``): LSKD at its own T = 2 with
#: λ = ``distill.alpha``, and the labels-only objective (λ = 0) as the fallback when no
#: distillation beats it on the validation split. Tried in this order; a tie in validation
#: accuracy goes to the earlier one.
DEFAULT_CANDIDATES: tuple[dict[str, Any], ...] = (
    {"method": "lskd"},
    {"method": "kd", "alpha": 0.0},
)


class AutoParams(Strict):
    """``distill.params`` of ``method: auto``."""

    candidates: list[AutoCandidate] = Field(
        default_factory=lambda: [AutoCandidate(**c) for c in DEFAULT_CANDIDATES], min_length=1,
        description="recipes to train; the best validation accuracy wins",
    )


def is_auto(distill: DistillSpec) -> bool:
    return distill.method == AUTO


def auto_params(distill: DistillSpec) -> AutoParams:
    """The validated ``auto`` parameters (raises pydantic's ValidationError on bad ones)."""
    return AutoParams.model_validate(dict(distill.params))


def candidate_distills(distill: DistillSpec) -> list[DistillSpec]:
    """Each candidate as a plain ``distill`` section (features and teacher-output mode inherited)."""
    out = []
    for c in auto_params(distill).candidates:
        out.append(distill.model_copy(update={
            "method": c.method, "temperature": c.temperature,
            "alpha": distill.alpha if c.alpha is None else c.alpha, "params": dict(c.params)}))
    return out


def describe(distill: DistillSpec) -> str:
    """``lskd T=2 λ=0.5``: a candidate in one short phrase."""
    t = f" T={distill.temperature:g}" if distill.temperature is not None else ""
    p = "".join(f" {k}={v}" for k, v in sorted(distill.params.items()))
    return f"{distill.method}{t} λ={distill.alpha:g}{p}"
