"""The loss registry: method name -> :class:`LossSpec` (class, kind, parameter model, citation).

A loss class registers itself with the :func:`register` decorator::

    class KDParams(BaseModel):
        model_config = ConfigDict(extra="forbid")
        temperature: float = Field(4.0, gt=0, description="softmax temperature T")

    @register("kd", kind="logit", paper="Hinton et al. 2015", params=KDParams)
    class KDLoss(nn.Module):
        \"\"\"Hinton KD: T² · KL(teacher ‖ student) at temperature T.\"\"\"

        def __init__(self, temperature: float = 4.0): ...

:func:`create` validates the keyword arguments against the parameter model and builds the class
with the validated values; every problem is reported as a :class:`LossConfigError` that names the
parameter, what was expected, what was found, and the valid names (with a "did you mean" hint).

This module imports only the standard library, torch and pydantic.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from pydantic import BaseModel, ValidationError
from torch import nn

__all__ = ["KINDS", "LossConfigError", "LossSpec", "register", "create", "available", "get_spec"]

#: The loss kinds and the forward signature each implies.
KINDS: dict[str, str] = {
    "logit": "forward(student_logits, teacher_logits, targets) -> scalar",
    "feature": "forward(student_feature, teacher_feature) -> scalar (same shapes)",
    "relation": "forward(student_feature, teacher_feature) -> scalar (same batch size)",
    "label": "forward(student_logits, teacher_logits, targets) -> scalar (teacher ignored)",
}


class LossConfigError(ValueError):
    """A loss could not be created: unknown method name, unknown or invalid parameter."""


@dataclass(frozen=True)
class LossSpec:
    """What the registry knows about one distillation method."""

    name: str
    cls: type[nn.Module]
    kind: str
    params: type[BaseModel]
    paper: str
    summary: str
    needs_teacher: bool

    def defaults(self) -> dict[str, Any]:
        """The default value of every parameter."""
        return self.params().model_dump()


_REGISTRY: dict[str, LossSpec] = {}


def _summary(cls: type) -> str:
    doc = (cls.__doc__ or "").strip()
    return doc.splitlines()[0].strip() if doc else ""


def register(name: str, *, kind: str, paper: str, params: type[BaseModel]) -> Callable[[type], type]:
    """Class decorator: register ``cls`` as distillation method ``name``.

    ``params`` must be a pydantic model with ``extra="forbid"`` whose fields all have a default
    and a description; the class ``__init__`` receives the validated values as keyword args.
    """
    if kind not in KINDS:
        raise ValueError(f"loss {name!r}: kind must be one of {sorted(KINDS)}, got {kind!r}")
    if not (isinstance(params, type) and issubclass(params, BaseModel)):
        raise TypeError(f"loss {name!r}: params must be a pydantic BaseModel subclass, got {params!r}")
    if params.model_config.get("extra") != "forbid":
        raise ValueError(f"loss {name!r}: {params.__name__} must set model_config = ConfigDict(extra='forbid')")
    for field_name, field in params.model_fields.items():
        if field.is_required():
            raise ValueError(f"loss {name!r}: parameter {field_name!r} needs a default")
        if not field.description:
            raise ValueError(f"loss {name!r}: parameter {field_name!r} needs a description")

    def deco(cls: type) -> type:
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise TypeError(f"loss {name!r}: {cls!r} is not an nn.Module subclass")
        if name in _REGISTRY:
            raise ValueError(f"loss {name!r} registered twice")
        _REGISTRY[name] = LossSpec(
            name=name,
            cls=cls,
            kind=kind,
            params=params,
            paper=paper,
            summary=_summary(cls),
            needs_teacher=kind != "label",
        )
        return cls

    return deco


def available() -> list[str]:
    """The registered method names, sorted."""
    return sorted(_REGISTRY)


def _did_you_mean(name: str, valid: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(name), list(valid), n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else ""


def get_spec(name: str) -> LossSpec:
    """The :class:`LossSpec` of method ``name``; :class:`LossConfigError` if there is none."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        valid = available()
        raise LossConfigError(
            f"unknown distillation loss {name!r}; valid names: {', '.join(valid)}{_did_you_mean(name, valid)}"
        ) from None


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _expected(msg: str) -> str:
    """Turn pydantic's "Input should be greater than 0" into "a value greater than 0"."""
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    if msg.startswith("Input should be "):
        msg = msg[len("Input should be ") :]
        if not msg.startswith(("a ", "an ", "one of")):
            msg = "a value " + msg
    return msg or "a valid value"


def _describe_errors(spec: LossSpec, exc: ValidationError) -> str:
    """One clause per pydantic error: parameter, what was expected, what was found."""
    fields = spec.params.model_fields
    valid = list(fields)
    clauses = []
    for err in exc.errors():
        loc = err.get("loc") or ()
        param = str(loc[0]) if loc else None
        found = _show(err.get("input"))
        if err.get("type") == "extra_forbidden":
            clauses.append(f"unknown parameter {param!r} (found {param}={found}){_did_you_mean(param, valid)}")
        elif param is None:
            # A model-level check spanning several parameters: its message names them.
            clauses.append(f"invalid parameters: {_expected(err.get('msg', ''))}")
        else:
            field = fields.get(param)
            desc = f" [{param}: {field.description}]" if field is not None and field.description else ""
            clauses.append(f"parameter {param!r}: expected {_expected(err.get('msg', ''))}, found {found}{desc}")
    return "; ".join(clauses)


def validate_params(name: str, **params: Any) -> BaseModel:
    """Validate keyword arguments for method ``name``; raise :class:`LossConfigError`."""
    spec = get_spec(name)
    try:
        return spec.params(**params)
    except ValidationError as exc:
        valid = ", ".join(spec.params.model_fields) or "(none: this method takes no parameters)"
        raise LossConfigError(
            f"loss {name!r}: {_describe_errors(spec, exc)} -- valid parameters: {valid}"
        ) from None


def create(name: str, **params: Any) -> nn.Module:
    """Build the loss module registered as ``name`` with validated ``params``."""
    spec = get_spec(name)
    validated = validate_params(name, **params)
    return spec.cls(**validated.model_dump())
