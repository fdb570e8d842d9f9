"""The hyperparameter search spec (``search_spaces/*.yaml``), validated by pydantic.

A search spec names the pipeline spec it searches, the metric(s) it optimises, the
dimensions (spec paths of that pipeline), the budget, the scheduler and the sampler::

    name: default                      # outputs: searches/<name>/
    pipeline: pipelines/default.yaml   # the pipeline spec searched
    root: .                            # pipeline root holding artifacts/{data,teacher,teacher_outputs}
    objectives: {student.accuracy: max}          # add student.params: min for a Pareto front
    fixed: {student.train.epochs: 40}            # applied to every trial (and by --apply)
    space:
      distill.temperature: {type: loguniform, low: 1, high: 16}
      distill.alpha: {type: uniform, low: 0.1, high: 1.0}
      student.train.lr: {type: loguniform, low: 0.001, high: 0.01}
      distill.method:
        type: choice
        values: [kd, dkd]
        conditional:                   # exists only when its method is chosen
          dkd: {distill.params.beta: {type: uniform, low: 1, high: 8}, distill.params.warmup_epochs: 5}
      student.model: {type: choice, shortlist: searches/students/shortlist.yaml}
    budget: {trials: 16, time_budget_s: null, max_concurrent: 2, resources: {cpu: 1, gpu: 0}}
    scheduler: {type: asha, grace_period: 5, reduction_factor: 3}
    sampler: {type: tpe, seed: 0}
    max_failures: 2
    storage: null                      # Ray results path/URI; a cluster needs a shared one

Validation runs in two passes, like the pipeline spec: the file against :class:`SearchSpec`
(types, ranges, unknown keys), then against the pipeline it names: every dimension must be a
path of that spec, and the extreme values of every dimension (each choice, each shortlist
entry, each method with its conditional parameters) must give a pipeline spec that
validates. Every problem is a :class:`~autokd.spec.errors.SpecIssue` with its key path in
the search spec.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from autokd.search.hparams.objectives import objective_issue
from autokd.search.hparams.schema import Choice, Fixed, IntRange, LogUniform, SearchSpec, Uniform
from autokd.spec.base import validate_document
from autokd.spec.document import apply_overrides, get_path, load_yaml
from autokd.spec.errors import SpecError, SpecIssue, issues_from_validation
from autokd.spec.pipeline import ModelSpec, PipelineSpec

#: Spec sections a search may not change: trials share the prepared data and the teacher's
#: cached outputs, so the data, the teacher and the runtime are fixed by the pipeline root.
FROZEN_SECTIONS = ("data", "teacher", "runtime", "evaluate", "name")


# ------------------------------------------------------------------------------ loading


@dataclass
class LoadedSearch:
    """A validated search spec with its pipeline resolved."""

    spec: SearchSpec
    file: str
    pipeline_file: Path  # absolute
    root: Path  # absolute pipeline root
    base: dict[str, Any]  # the pipeline spec as a mapping (without ``fixed``)
    choices: dict[str, list[Any]] = field(default_factory=dict)  # resolved choice values per dimension
    task: str = "classify"  # the pipeline's task (:mod:`autokd.search.hparams.tasks`)

    @property
    def name(self) -> str:
        return self.spec.name


def _resolve(path: str, base_dir: Path) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else (base_dir / p)


def _schema_issue(path: str, loc: tuple, schema: Any = PipelineSpec) -> SpecIssue | None:
    """Check that a dotted path names a field of the pipeline ``schema`` (free below a mapping)."""
    parts = path.split(".")
    if parts[0] in FROZEN_SECTIONS:
        return SpecIssue(
            loc, expected="a student.* or distill.* path (data, teacher, runtime and evaluate are fixed by the "
            "pipeline root the trials share)", found=path, show_found=True,
        )
    model: Any = schema
    for i, part in enumerate(parts):
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None  # below a free mapping (model.params, distill.params): checked by sample validation
        fields = model.model_fields
        if part not in fields:
            from autokd.spec.errors import suggest

            prefix = ".".join(parts[:i]) or "<top level>"
            return SpecIssue(loc, expected=f"a path of the pipeline spec ({prefix} has: {', '.join(fields)})",
                             found=path, hint=suggest(part, fields))
        ann = fields[part].annotation
        model = ann if isinstance(ann, type) else None
    return None


def _load_shortlist(path: Path, loc: tuple, spec_file: str | None = None) -> list[dict[str, Any]]:
    """A shortlist file: a YAML list of ``{name, params}`` model specs."""
    if not path.exists():
        raise SpecError(spec_file, [SpecIssue(loc, expected="an existing shortlist file "
                                              "(searches/<name>/shortlist.yaml from `autokd search arch`)",
                                              found=str(path))])
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SpecError(str(path), [SpecIssue((), expected="valid YAML", found_text=str(exc))]) from None
    if not isinstance(data, list) or not data:
        raise SpecError(str(path), [SpecIssue((), expected="a non-empty list of {name, params} model specs",
                                              found=data)])
    out, issues = [], []
    for i, item in enumerate(data):
        try:
            out.append(ModelSpec.model_validate(item).model_dump(mode="json"))
        except ValidationError as exc:
            issues += issues_from_validation(exc, ModelSpec, prefix=(i,))
    if issues:
        raise SpecError(str(path), issues)
    return out


def _check_models(values: list[Any], loc: tuple) -> tuple[list[dict[str, Any]], list[SpecIssue]]:
    out, issues = [], []
    for i, v in enumerate(values):
        try:
            out.append(ModelSpec.model_validate(v).model_dump(mode="json"))
        except ValidationError as exc:
            issues += issues_from_validation(exc, ModelSpec, prefix=loc + ("values", i))
    return out, issues


def _extremes(dim) -> list[Any]:
    if isinstance(dim, (Uniform, LogUniform, IntRange)):
        return [dim.low, dim.high]
    if isinstance(dim, Fixed):
        return [dim.value]
    return list(dim.values)


def load_search_spec(path: str | Path, base_dir: str | Path | None = None) -> LoadedSearch:
    """Load and validate a search spec file and the pipeline spec it names.

    Relative paths (``pipeline``, ``root``, ``shortlist``) resolve against ``base_dir``
    (default: the current directory, the repo root).
    """
    path = Path(path)
    base_dir = Path(base_dir) if base_dir is not None else Path.cwd()
    found: dict[str, LoadedSearch] = {}
    validate_document(SearchSpec, load_yaml(path), file=str(path), text=path.read_text(),
                      checks=lambda spec: _search_issues(spec, path, base_dir, found))
    return found["loaded"]


def _search_issues(spec: SearchSpec, path: Path, base_dir: Path, found: dict[str, LoadedSearch]) -> list[SpecIssue]:
    """Pass 2, in steps that each need the one before to be clean: the spec on its own, the
    choices it names (models, shortlists), then the pipeline at every dimension's extremes."""
    from autokd.search.hparams.tasks import get_task, task_name

    issues: list[SpecIssue] = []
    pipeline_file = _resolve(spec.pipeline, base_dir).resolve()
    root = _resolve(spec.root, base_dir).resolve()
    if not pipeline_file.exists():
        issues.append(SpecIssue(("pipeline",), expected="an existing pipeline spec file", found=spec.pipeline))
    task = task_name(load_yaml(pipeline_file)) if pipeline_file.exists() else "classify"
    schema = get_task(task).schema()
    for name in spec.objectives:
        issue = objective_issue(name, ("objectives", name), task)
        if issue:
            issues.append(issue)
    if spec.multi_objective and spec.scheduler.type in ("asha", "hyperband"):
        issues.append(SpecIssue(("scheduler", "type"), expected="fifo or auto for several objectives (early "
                                "stopping ranks trials on one metric)", found=spec.scheduler.type))
    for key in spec.fixed:
        issue = _schema_issue(key, ("fixed", key), schema)
        if issue:
            issues.append(issue)
    for key, dim in spec.space.items():
        issue = _schema_issue(key, ("space", key), schema)
        if issue:
            issues.append(issue)
        if key in spec.fixed:
            issues.append(SpecIssue(("space", key), expected="a path not also in fixed", found=key))
        if isinstance(dim, Choice):
            if dim.conditional and key != "distill.method":
                issues.append(SpecIssue(("space", key, "conditional"), expected="conditional parameters only on "
                                        "distill.method", found=key, show_found=False))
            if dim.shortlist is not None and key != "student.model":
                issues.append(SpecIssue(("space", key, "shortlist"), expected="a shortlist only on student.model",
                                        found=key, show_found=False))
            for method, dims in dim.conditional.items():
                if dim.values is not None and method not in dim.values:
                    issues.append(SpecIssue(("space", key, "conditional", method),
                                            expected=f"one of the choice's values {dim.values}", found=method))
                for sub in dims:
                    sub_issue = _schema_issue(sub, ("space", key, "conditional", method, sub), schema)
                    if sub_issue:
                        issues.append(sub_issue)
                    elif sub == "distill.method" or sub in spec.space:
                        issues.append(SpecIssue(("space", key, "conditional", method, sub),
                                                expected="a path that is not itself a dimension", found=sub))
    if spec.sampler_type == "grid":
        for key, dim in spec.space.items():
            if not isinstance(dim, Choice):
                issues.append(SpecIssue(("space", key, "type"), expected="choice (sampler grid needs every "
                                        "dimension to be a list of values)", found=dim.type))
            else:
                for method, dims in dim.conditional.items():
                    for sub, d in dims.items():
                        if not isinstance(d, Fixed):
                            issues.append(SpecIssue(("space", key, "conditional", method, sub), expected="a constant "
                                                    "(sampler grid takes no conditional dimensions)", found=d.type))
    if issues:
        return issues

    base = load_yaml(pipeline_file)
    choices: dict[str, list[Any]] = {}
    for key, dim in spec.space.items():
        if isinstance(dim, Choice):
            if dim.shortlist is not None:
                choices[key] = _load_shortlist(_resolve(dim.shortlist, base_dir), ("space", key, "shortlist"), str(path))
            elif key == "student.model":
                models, model_issues = _check_models(dim.values, ("space", key))
                issues += model_issues
                choices[key] = models
            else:
                choices[key] = list(dim.values)
    if issues:
        return issues

    loaded = LoadedSearch(spec=spec, file=str(path), pipeline_file=pipeline_file, root=root, base=base,
                          choices=choices, task=task)
    found["loaded"] = loaded
    return _sample_issues(loaded)


def _pipeline_issues(loaded: LoadedSearch, overrides: dict[str, Any], loc: tuple, what: str,
                     relocate: dict[str, tuple] | None = None) -> list[SpecIssue]:
    """Validate the patched pipeline; issues point at ``loc`` (or at the dimension in
    ``relocate`` whose path the issue is under)."""

    def where(issue: SpecIssue) -> tuple:
        for path, other in (relocate or {}).items():
            if issue.path == path or issue.path.startswith(path + ".") or issue.path.startswith(path + "["):
                return other
        return loc

    from autokd.search.hparams.tasks import get_task

    try:
        data = apply_overrides(loaded.base, overrides)
        get_task(loaded.task).validate(data, file=str(loaded.pipeline_file), root=loaded.root, check_paths=False)
    except SpecError as exc:
        return [SpecIssue(where(issue), expected=f"{what} to give a valid pipeline spec",
                          found_text=f"{issue.path}: expected {issue.expected}"
                          + (f", found {issue.found_text or repr(issue.found)}" if issue.show_found else ""),
                          hint=issue.hint) for issue in exc.issues]
    return []


def _sample_issues(loaded: LoadedSearch) -> list[SpecIssue]:
    """Validate the pipeline at the extreme values of every dimension (pass 2)."""
    from autokd.search.hparams.space import Space

    space = Space.from_loaded(loaded)
    issues = _pipeline_issues(loaded, space.to_overrides(space.first_params()), ("fixed",), "fixed")
    if issues:
        return issues
    for dim in space.dims:
        for value in dim.choices_for_check():
            method = dim.decode(value) if dim.path == "distill.method" else None
            params = space.first_params(method=method)
            params[dim.name] = value
            relocate = {sub.path: sub.loc for sub in space.conditional.get(method, [])} if method else None
            issues += _pipeline_issues(loaded, space.to_overrides(params), dim.loc,
                                       f"value {dim.show(value)}", relocate)
    for method, subs in space.conditional.items():
        for sub in subs:
            for value in sub.choices_for_check():
                params = space.first_params(method=method)
                params[sub.name] = value
                issues += _pipeline_issues(loaded, space.to_overrides(params), sub.loc,
                                           f"value {sub.show(value)} with method {method!r}")
    # one issue per location is enough
    seen, out = set(), []
    for issue in issues:
        key = (issue.loc, issue.found_text)
        if key not in seen:
            seen.add(key)
            out.append(issue)
    return out


def base_value(loaded: LoadedSearch, path: str, default: Any = None) -> Any:
    """The pipeline's value at ``path`` after ``fixed`` is applied."""
    return get_path(apply_overrides(loaded.base, loaded.spec.fixed), path, default)


def max_epochs(loaded: LoadedSearch) -> int:
    """The longest schedule a trial can have (the schedulers' ``max_t``)."""
    dim = loaded.spec.space.get("student.train.epochs")
    if isinstance(dim, IntRange):
        return int(dim.high)
    if isinstance(dim, Choice) and dim.values:
        return int(max(dim.values))
    return int(base_value(loaded, "student.train.epochs", 40))
