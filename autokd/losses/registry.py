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

**A user's own loss class** is named by import path instead of a registered name
(``distill.method: my_pkg.losses:MyLoss``, the rule of :mod:`autokd.utils.imports`, as for
models); :func:`get_spec`, :func:`validate_params` and :func:`create` accept the path wherever
they accept a name, so every caller treats it like a built-in. The class must follow the loss
protocol, checked on import (:class:`LossImportError` saying what was expected and found)::

    class MyLoss(nn.Module):                      # an nn.Module subclass
        \"\"\"First docstring line: the summary.\"\"\"
        kind = "logit"                            # optional, one of KINDS; absent = "logit"
        paper = "Me et al. 2025"                  # optional

        class Params(BaseModel):                  # optional: the ``distill.params`` it takes
            scale: float = Field(1.0, gt=0)

        def __init__(self, scale: float = 1.0): ...           # receives the validated Params
        def forward(self, student_logits, teacher_logits, targets): ...   # KINDS[kind]

``Params`` is validated like a built-in's (unknown keys are errors: ``extra="forbid"`` is
imposed when the model does not set it; fields without default are required keys). Without
``Params`` the method takes no parameters and ``distill.params`` must be empty. ``kind``
defaults to ``"logit"`` because a loss of (student logits, teacher logits, targets) is the
common case and a feature loss left without ``kind`` is caught anyway: its two-argument
``forward`` does not fit the logit call.

This module imports only the standard library, torch, pydantic and :mod:`autokd.utils.imports`
(standard library only).
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from pydantic import BaseModel, ConfigDict, ValidationError
from torch import nn

from autokd.utils.imports import ImportPathError, import_object, is_import_path

__all__ = [
    "KINDS", "LossConfigError", "LossImportError", "LossSpec", "register", "create", "available", "get_spec",
    "is_import_path",
]

#: The loss kinds and the forward signature each implies.
KINDS: dict[str, str] = {
    "logit": "forward(student_logits, teacher_logits, targets) -> scalar",
    "feature": "forward(student_feature, teacher_feature) -> scalar (same shapes)",
    "relation": "forward(student_feature, teacher_feature) -> scalar (same batch size)",
    "label": "forward(student_logits, teacher_logits, targets) -> scalar (teacher ignored)",
    "token": "forward(student_logits (B,T,V), teacher_logits (B,T,V), mask (B,T)) -> scalar (masked token mean)",
}


#: What a method distills: classifiers, or language models.
TASKS = ("classify", "lm")

#: How many positional arguments ``forward`` receives for each kind.
CALL_ARITY: dict[str, int] = {"logit": 3, "label": 3, "feature": 2, "relation": 2, "token": 3}


class LossConfigError(ValueError):
    """A loss could not be created: unknown method name, unknown or invalid parameter."""


class LossImportError(LossConfigError):
    """A user's loss named by import path cannot be used: what was expected, what was found."""

    def __init__(self, path: str, expected: str, found: str, detail: str | None = None):
        self.path, self.expected, self.found, self.detail = path, expected, found, detail
        super().__init__(f"distillation loss {path!r}: expected {expected}, found {found}"
                         + (f" ({detail})" if detail else ""))


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
    task: str = "classify"

    def defaults(self) -> dict[str, Any]:
        """The default value of every parameter."""
        return self.params().model_dump()

    def search_space(self) -> dict[str, dict[str, Any]]:
        """Parameter -> ``{type: float|int, low, high, log}`` for every parameter whose field carries a
        search hint (``json_schema_extra={"search": …}``, see ``_common.search_range``): the ranges the
        tuned method comparison searches. A user's ``Params`` may carry hints the same way."""
        out: dict[str, dict[str, Any]] = {}
        for name, field in self.params.model_fields.items():
            extra = field.json_schema_extra
            hint = extra.get("search") if isinstance(extra, dict) else None
            if isinstance(hint, dict):
                out[name] = {"type": "int" if field.annotation in (int, "int") else "float", **hint}
        return out


_REGISTRY: dict[str, LossSpec] = {}


def _summary(cls: type) -> str:
    doc = (cls.__doc__ or "").strip()
    return doc.splitlines()[0].strip() if doc else ""


def register(name: str, *, kind: str, paper: str, params: type[BaseModel],
             task: str = "classify") -> Callable[[type], type]:
    """Class decorator: register ``cls`` as distillation method ``name``.

    ``params`` must be a pydantic model with ``extra="forbid"`` whose fields all have a default
    and a description; the class ``__init__`` receives the validated values as keyword args.
    ``task`` is what the method distills: ``classify`` (classifiers) or ``lm`` (language models:
    next-token distributions and transformer representations).
    """
    if task not in TASKS:
        raise ValueError(f"loss {name!r}: task must be one of {TASKS}, got {task!r}")
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
            task=task,
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
    """The :class:`LossSpec` of method ``name`` (a registered name or a ``pkg.module:Class``
    import path); :class:`LossConfigError` if there is none."""
    if is_import_path(name):
        return user_spec(name)
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


# ------------------------------------------------------------------ user loss classes

_USER_SPECS: dict[tuple[str, type], LossSpec] = {}


class _NoParams(BaseModel):
    """A user loss without ``Params`` takes no parameters."""

    model_config = ConfigDict(extra="forbid")


def _positional_range(fn: Callable) -> tuple[int, float]:
    """(required, maximum) positional arguments of an unbound method, ``self`` excluded."""
    params = list(inspect.signature(fn).parameters.values())[1:]
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = sum(1 for p in positional if p.default is p.empty)
    most = float("inf") if any(p.kind is p.VAR_POSITIONAL for p in params) else len(positional)
    return required, most


def _user_params(path: str, cls: type) -> type[BaseModel]:
    params = getattr(cls, "Params", None)
    if params is None:
        return _NoParams
    if not (isinstance(params, type) and issubclass(params, BaseModel)):
        raise LossImportError(path, "a class attribute Params that is a pydantic BaseModel subclass (or none)",
                              repr(params))
    if params.model_config.get("extra") != "forbid":  # unknown keys must be errors, as for built-ins
        params = type(params.__name__, (params,), {"model_config": ConfigDict(extra="forbid"),
                                                   "__module__": params.__module__, "__doc__": params.__doc__})
    try:
        inspect.signature(cls).bind(**dict.fromkeys(params.model_fields))
    except TypeError as exc:
        fields = ", ".join(params.model_fields) or "no arguments"
        raise LossImportError(path, f"{cls.__name__}.__init__ taking its Params fields as keywords ({fields})",
                              f"__init__{inspect.signature(cls)}", str(exc)) from None
    return params


def user_spec(path: str) -> LossSpec:
    """The :class:`LossSpec` of the user's loss class at ``path``, its protocol checked."""
    try:
        cls = import_object(path, "distillation loss")
    except ImportPathError as exc:
        raise LossImportError(path, "an importable loss class 'package.module:Class'", repr(path), str(exc)) from None
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        found = f"{type(cls).__name__} {getattr(cls, '__name__', cls)!r}" if not isinstance(cls, type) else \
            f"class {cls.__name__!r} (not an nn.Module)"
        raise LossImportError(path, "an nn.Module subclass (the loss protocol)", found)
    key = (path, cls)
    if key in _USER_SPECS:
        return _USER_SPECS[key]
    kind = getattr(cls, "kind", "logit")
    if kind not in KINDS:
        raise LossImportError(path, f"a class attribute kind, one of {', '.join(KINDS)} (absent: logit)",
                              repr(kind), _did_you_mean(str(kind), KINDS).removeprefix("; ") or None)
    if cls.forward is nn.Module.forward:
        raise LossImportError(path, f"a forward method: {KINDS[kind]}", f"class {cls.__name__!r} without forward")
    required, most = _positional_range(cls.forward)
    arity = CALL_ARITY[kind]
    if not required <= arity <= most:
        raise LossImportError(path, f"{KINDS[kind]} (kind {kind!r}: {arity} positional arguments)",
                              f"forward{inspect.signature(cls.forward)}",
                              "set the class attribute kind to the kind this forward implements")
    spec = LossSpec(name=path, cls=cls, kind=kind, params=_user_params(path, cls),
                    paper=str(getattr(cls, "paper", "") or f"user loss {path}"), summary=_summary(cls),
                    needs_teacher=kind != "label")
    _USER_SPECS[key] = spec
    return spec
