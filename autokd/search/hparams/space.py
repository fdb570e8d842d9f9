"""The search space as an Optuna define-by-run function, and its decoding into a spec patch.

:class:`Space` is built from a validated search spec and holds only plain data, so Ray Tune
can pickle it with the searcher (it must live in an importable module, as this one does).

- ``space(trial)`` (define-by-run) asks Optuna for every dimension; after ``distill.method``
  it asks only for the parameters of the chosen method (``distill.params.beta@dkd`` exists
  only in trials that chose ``dkd``). Choices whose values are not plain scalars (model
  specs, lists) are asked as string labels.
- ``distill.temperature`` is a dimension only of trials whose method has a temperature: it is
  asked after the method, and a trial of ``normkd``, ``ctkd`` or a feature method neither
  samples it nor carries one (its patch sets ``distill.temperature: null``, the method's own
  default, so a temperature in the pipeline spec does not leak into it).
- ``space.to_overrides(params)`` turns a trial's parameters into the *spec patch*: dotted
  pipeline paths -> values, ``fixed`` included. When the method is a dimension the patch sets
  ``distill.params`` as a whole (the chosen method's own parameters only), so the patch
  always validates and ``--apply`` writes a self-contained change.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

from autokd.spec.document import get_path, set_path

_SCALARS = (str, int, float, bool, type(None))
METHOD = "distill.method"
TEMPERATURE = "distill.temperature"
PARAMS_PREFIX = "distill.params."


def _compact(v: Any) -> str:
    return json.dumps(v, sort_keys=True, separators=(",", ":"))


def _labels(path: str, values: list[Any]) -> list[str] | None:
    """String labels for choices Optuna cannot take as they are (or None if it can)."""
    if all(isinstance(v, _SCALARS) for v in values):
        return None
    if path == "student.model":
        labels = [f"{v['name']}{_compact(v.get('params') or {})}" for v in values]
    else:
        labels = [_compact(v) for v in values]
    if len(set(labels)) != len(labels):
        labels = [f"{i}:{label}" for i, label in enumerate(labels)]
    return labels


@dataclass
class Dim:
    """One dimension: a spec path, the Optuna parameter name and its distribution."""

    path: str
    name: str
    kind: str  # uniform | loguniform | int | choice | fixed
    loc: tuple
    low: float | int | None = None
    high: float | int | None = None
    step: int = 1
    log: bool = False
    values: list[Any] = field(default_factory=list)
    labels: list[str] | None = None

    @property
    def choices(self) -> list[Any]:
        return self.labels if self.labels is not None else self.values

    def suggest(self, trial) -> Any:
        if self.kind == "uniform":
            return trial.suggest_float(self.name, self.low, self.high)
        if self.kind == "loguniform":
            return trial.suggest_float(self.name, self.low, self.high, log=True)
        if self.kind == "int":
            return trial.suggest_int(self.name, self.low, self.high, step=self.step, log=self.log)
        if self.kind == "choice":
            return trial.suggest_categorical(self.name, self.choices)
        raise ValueError(f"dimension {self.name} is a constant")

    def decode(self, raw: Any) -> Any:
        """The spec value of a sampled parameter (a label becomes its model spec)."""
        if self.kind == "fixed":
            return copy.deepcopy(self.values[0])
        if self.labels is not None:
            return copy.deepcopy(self.values[self.labels.index(raw)])
        if self.kind == "int":
            return int(raw)
        if self.kind in ("uniform", "loguniform"):
            return float(raw)
        return raw

    def first(self) -> Any:
        return self.choices[0] if self.kind == "choice" else self.low

    def choices_for_check(self) -> list[Any]:
        if self.kind == "choice":
            return list(self.choices)
        if self.kind == "fixed":
            return []
        return [self.low, self.high]

    def show(self, raw: Any) -> str:
        return repr(raw) if not isinstance(raw, str) or len(raw) < 60 else repr(raw[:57] + "...")


def _dim(path: str, name: str, d, loc: tuple, values: list[Any] | None = None) -> Dim:
    kind = d.type
    if kind in ("uniform", "loguniform"):
        return Dim(path, name, kind, loc, low=float(d.low), high=float(d.high))
    if kind == "int":
        return Dim(path, name, kind, loc, low=int(d.low), high=int(d.high), step=d.step, log=d.log)
    if kind == "fixed":
        return Dim(path, name, kind, loc, values=[d.value])
    vals = list(values if values is not None else d.values)
    return Dim(path, name, "choice", loc, values=vals, labels=_labels(path, vals))


def _known(method: str) -> bool:
    """Whether ``method`` resolves (an unknown one is reported by the spec's validation, not here)."""
    from autokd.losses import LossConfigError, get_spec

    try:
        get_spec(method)
    except LossConfigError:
        return False
    return True


@dataclass
class Space:
    """A define-by-run Optuna search space over pipeline spec paths."""

    dims: list[Dim]
    conditional: dict[str, list[Dim]]
    fixed: dict[str, Any]
    base_method: str
    base_method_params: dict[str, Any]
    #: the methods this space can choose that have a temperature (``distill.temperature`` applies)
    temperature_methods: frozenset[str] = frozenset()

    @classmethod
    def from_loaded(cls, loaded) -> "Space":
        spec = loaded.spec
        dims, conditional = [], {}
        for path, d in spec.space.items():
            dims.append(_dim(path, path, d, ("space", path), loaded.choices.get(path)))
            for method, subs in getattr(d, "conditional", {}).items():
                conditional[method] = [
                    _dim(sub, f"{sub}@{method}", sd, ("space", path, "conditional", method, sub))
                    for sub, sd in subs.items()
                ]
        from autokd.spec.document import apply_overrides
        from autokd.stages.validate import uses_temperature

        patched = apply_overrides(loaded.base, spec.fixed)
        base_method = get_path(patched, METHOD, "kd")
        methods = {base_method} | {v for d in dims if d.path == METHOD for v in d.values}
        return cls(
            dims=dims, conditional=conditional, fixed=dict(spec.fixed), base_method=base_method,
            base_method_params=dict(get_path(patched, "distill.params", {}) or {}),
            temperature_methods=frozenset(m for m in methods if _known(m) and uses_temperature(m)),
        )

    # -- Optuna ------------------------------------------------------------------------

    def __call__(self, trial) -> None:
        """Define-by-run entry point (Ray Tune's ``OptunaSearch(space=…)``)."""
        self.suggest(trial)
        return None

    def suggest(self, trial) -> dict[str, Any]:
        """Ask for every dimension in file order, a method's conditional parameters right after
        the method. When the method decides whether a temperature exists (some of its choices
        have none), the method is asked first and the temperature only if the choice has one."""
        md = self.method_dim
        order = list(self.dims)
        if md is not None and any(md.decode(v) not in self.temperature_methods for v in md.choices):
            order.remove(md)
            order.insert(0, md)
        params: dict[str, Any] = {}
        for d in order:
            if d.kind == "fixed" or (d.path == TEMPERATURE and md is not None and md.name in params
                                     and md.decode(params[md.name]) not in self.temperature_methods):
                continue
            params[d.name] = d.suggest(trial)
            if d is md:
                for sub in self.conditional.get(md.decode(params[d.name]), []):
                    if sub.kind != "fixed":
                        params[sub.name] = sub.suggest(trial)
        return params

    def method_of(self, params: dict[str, Any]) -> str:
        md = self.method_dim
        return md.decode(params[md.name]) if md is not None and md.name in params else self.base_method

    @property
    def method_dim(self) -> Dim | None:
        return next((d for d in self.dims if d.path == METHOD), None)

    def active(self, params: dict[str, Any]) -> list[Dim]:
        """The dimensions a trial with ``params`` has: conditional ones only with their method,
        the temperature only with a method that has one."""
        md = self.method_dim
        if md is None or md.name not in params:
            return list(self.dims)
        method = md.decode(params[md.name])
        out = [d for d in self.dims if d.path != TEMPERATURE or method in self.temperature_methods]
        return out + self.conditional.get(method, [])

    # -- decoding ----------------------------------------------------------------------

    def to_overrides(self, params: dict[str, Any]) -> dict[str, Any]:
        """The spec patch (dotted path -> value) of a trial, ``fixed`` included."""
        md = self.method_dim
        out: dict[str, Any] = {}
        method_params: dict[str, Any] | None = None
        if md is not None:
            method = md.decode(params[md.name])
            method_params = copy.deepcopy(self.base_method_params) if method == self.base_method else {}
        values: list[tuple[str, Any]] = [(k, copy.deepcopy(v)) for k, v in self.fixed.items()]
        for d in self.active(params):
            values.append((d.path, d.decode(params[d.name]) if d.kind != "fixed" else d.decode(None)))
        for path, value in values:
            if method_params is not None and path.startswith(PARAMS_PREFIX):
                set_path(method_params, path[len(PARAMS_PREFIX):], value)
            else:
                out[path] = value
        if method_params is not None:
            out["distill.params"] = method_params
        if md is not None and method not in self.temperature_methods:
            out[TEMPERATURE] = None  # the method's own knob rules; the pipeline's T must not leak in
        return out

    def first_params(self, method: str | None = None) -> dict[str, Any]:
        """Parameters at each dimension's first value (a method forced if given)."""
        md = self.method_dim
        params: dict[str, Any] = {}
        if md is not None:
            params[md.name] = md.choices[md.values.index(method)] if method is not None else md.first()
        for d in self.active(params):
            if d.name not in params and d.kind != "fixed":
                params[d.name] = d.first()
        return params

    # -- grids and display ---------------------------------------------------------------

    def grid(self) -> dict[str, list[Any]]:
        """Every dimension's choices (sampler grid: all dimensions are choices)."""
        return {d.name: list(d.choices) for d in self.dims}

    def grid_size(self) -> int:
        n = 1
        for d in self.dims:
            n *= len(d.choices)
        return n

    def readable(self, params: dict[str, Any]) -> dict[str, Any]:
        """Spec path -> value for the trial's active dimensions (labels kept as labels)."""
        out = {}
        for d in self.active(params):
            if d.kind == "fixed":
                continue
            v = params.get(d.name)
            out[d.name] = round(v, 6) if isinstance(v, float) else v
        return out

    def describe(self, params: dict[str, Any]) -> str:
        short = {"distill.temperature": "T", "distill.alpha": "alpha", "distill.method": "method",
                 "student.train.lr": "lr", "student.train.epochs": "epochs", "student.model": "student"}
        parts = []
        for name, v in self.readable(params).items():
            path, _, method = name.partition("@")  # a conditional knob keeps its method: beta@dkd
            key = short.get(name, path.split(".")[-1] + (f"@{method}" if method else ""))
            parts.append(f"{key}={v:.4g}" if isinstance(v, float) else f"{key}={v}")
        return " ".join(parts)
