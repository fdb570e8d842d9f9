"""The search space as an Optuna define-by-run function, and its decoding into a spec patch.

:class:`Space` is built from a validated search spec and holds only plain data, so Ray Tune
can pickle it with the searcher (it must live in an importable module, as this one does).

- ``space(trial)`` (define-by-run) asks Optuna for every dimension; after ``distill.method``
  it asks only for the parameters of the chosen method (``distill.params.beta@dkd`` exists
  only in trials that chose ``dkd``). Choices whose values are not plain scalars (model
  specs, lists) are asked as string labels.
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

from autokd.spec.load import get_path, set_path

_SCALARS = (str, int, float, bool, type(None))
METHOD = "distill.method"
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


@dataclass
class Space:
    """A define-by-run Optuna search space over pipeline spec paths."""

    dims: list[Dim]
    conditional: dict[str, list[Dim]]
    fixed: dict[str, Any]
    base_method: str
    base_method_params: dict[str, Any]

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
        patched = loaded.base
        from autokd.spec.load import apply_overrides

        patched = apply_overrides(loaded.base, spec.fixed)
        return cls(
            dims=dims, conditional=conditional, fixed=dict(spec.fixed),
            base_method=get_path(patched, METHOD, "kd"),
            base_method_params=dict(get_path(patched, "distill.params", {}) or {}),
        )

    # -- Optuna ------------------------------------------------------------------------

    def __call__(self, trial) -> None:
        """Define-by-run entry point (Ray Tune's ``OptunaSearch(space=…)``)."""
        self.suggest(trial)
        return None

    def suggest(self, trial) -> dict[str, Any]:
        params = {}
        for d in self.dims:
            params[d.name] = d.suggest(trial)
            if d.path == METHOD:
                for sub in self.conditional.get(params[d.name], []):
                    if sub.kind != "fixed":
                        params[sub.name] = sub.suggest(trial)
        return params

    @property
    def method_dim(self) -> Dim | None:
        return next((d for d in self.dims if d.path == METHOD), None)

    def active(self, params: dict[str, Any]) -> list[Dim]:
        """The dimensions a trial with ``params`` has (conditional ones only with their method)."""
        out = list(self.dims)
        md = self.method_dim
        if md is not None and md.name in params:
            out += self.conditional.get(md.decode(params[md.name]), [])
        return out

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
        return out

    def first_params(self, method: str | None = None) -> dict[str, Any]:
        """Parameters at each dimension's first value (a method forced if given)."""
        params = {d.name: d.first() for d in self.dims}
        md = self.method_dim
        if md is not None:
            if method is not None:
                params[md.name] = md.choices[md.values.index(method)]
            chosen = md.decode(params[md.name])
            for sub in self.conditional.get(chosen, []):
                if sub.kind != "fixed":
                    params[sub.name] = sub.first()
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
            key = short.get(name, name.split("@")[0].split(".")[-1])
            parts.append(f"{key}={v:.4g}" if isinstance(v, float) else f"{key}={v}")
        return " ".join(parts)
