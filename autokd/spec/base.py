"""The one strict base of every spec model, and the one "validate a document" helper.

Every pydantic model a user writes keys for (pipeline, chain, comparison, searches, method
and model parameters) derives from :class:`Strict`: unknown keys are errors and non-finite
floats (``.inf``, ``.nan``) are refused at the key the user wrote.
"""

from __future__ import annotations

import math
from typing import Any, Callable, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from autokd.spec.document import attach_lines
from autokd.spec.errors import SpecError, SpecIssue, issues_from_validation

M = TypeVar("M", bound=BaseModel)


class Strict(BaseModel):
    """Unknown keys are errors; ``inf``/``nan`` are not numbers a knob may take."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


def validate_document(
    model: type[M],
    data: Any,
    *,
    file: str | None = None,
    text: str | None = None,
    checks: Callable[[M], list[SpecIssue]] | None = None,
    prefix: tuple[str | int, ...] = (),
) -> M:
    """Validate ``data`` against ``model``, then run ``checks`` on the result.

    Every problem of either pass becomes a :class:`SpecIssue`; issues get the line of the
    key they name when ``text`` (the YAML source) is given, and one :class:`SpecError`
    listing them all is raised. ``checks`` is how a higher layer (which knows the model,
    method and reader registries) adds its own pass without this package importing it.
    """
    try:
        obj = model.model_validate(data)
    except ValidationError as exc:
        issues = issues_from_validation(exc, model, prefix=prefix)
        attach_lines(issues, text)
        raise SpecError(file, issues) from None
    issues = list(checks(obj)) if checks is not None else []
    if issues:
        attach_lines(issues, text)
        raise SpecError(file, issues)
    return obj


def nonfinite_issues(value: Any, loc: tuple[str | int, ...]) -> list[SpecIssue]:
    """An issue for every ``inf``/``nan`` inside ``value`` (nested mappings and lists), at its key path."""
    if isinstance(value, float) and not math.isfinite(value):
        return [SpecIssue(loc, expected="a finite number", found=value)]
    if isinstance(value, dict):
        return [i for k, v in value.items() for i in nonfinite_issues(v, loc + (k,))]
    if isinstance(value, (list, tuple)):
        return [i for n, v in enumerate(value) for i in nonfinite_issues(v, loc + (n,))]
    return []


def params_issues(model: type[BaseModel], params: Any, loc: tuple[str | int, ...]) -> list[SpecIssue]:
    """Issues of ``params`` against a component's own parameter model, at key path ``loc``.

    Non-finite numbers are refused whatever the component's model says: a model family's or
    a method's (or a user's) parameter model need not remember ``allow_inf_nan=False``."""
    bad = nonfinite_issues(params, loc)
    if bad:
        return bad
    try:
        model.model_validate(params)
    except ValidationError as exc:
        return issues_from_validation(exc, model, prefix=loc)
    return []
