"""Reading, overriding and validating pipeline specs.

Validation happens in two passes, both before any training:
1. the YAML against :class:`PipelineSpec` (types, ranges, unknown keys);
2. names against the registries that own them (data sources, model families, distillation
   methods) and the named component's own parameter model, so ``student.model.params`` and
   ``distill.params`` are checked as strictly as the rest.
Every problem becomes a :class:`SpecIssue` naming the file, line, key path, what was
expected and what was found.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Mapping

import yaml
from pydantic import BaseModel, ValidationError

from autokd.spec.errors import SpecError, SpecIssue, issues_from_validation, unknown_name_issue
from autokd.spec.pipeline import PipelineSpec

DISK_SOURCES_WITHOUT_PATH = {"digits"}


def load_yaml(path: str | Path) -> dict[str, Any]:
    """``yaml.safe_load`` a mapping, with file-named errors."""
    path = Path(path)
    if not path.exists():
        raise SpecError(str(path), [SpecIssue(loc=(), expected="an existing spec file", found=str(path), show_found=False)])
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(
            str(path), [SpecIssue(loc=(), expected="valid YAML", found_text=str(problem), line=line)]
        ) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(str(path), [SpecIssue(loc=(), expected="a mapping at the top level", found=data)])
    return data


def _line_index(text: str) -> dict[tuple, int]:
    """Map key paths to 1-based line numbers using the YAML node tree."""
    index: dict[tuple, int] = {}
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return index

    def walk(node, loc):
        index[loc] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = key_node.value
                index[loc + (key,)] = key_node.start_mark.line + 1
                walk(value_node, loc + (key,))
                index[loc + (key,)] = key_node.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, loc + (i,))

    if root is not None:
        walk(root, ())
    return index


def _attach_lines(issues: list[SpecIssue], text: str | None) -> None:
    if not text:
        return
    index = _line_index(text)
    for issue in issues:
        loc = tuple(issue.loc)
        while loc and loc not in index:
            loc = loc[:-1]
        if loc in index:
            issue.line = index[loc]


def set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``a.b.c`` in nested dicts, creating mappings on the way."""
    parts = dotted.split(".")
    node = data
    for part in parts[:-1]:
        nxt = node.get(part)
        if nxt is None:
            nxt = node[part] = {}
        if not isinstance(nxt, dict):
            raise SpecError(None, [SpecIssue(loc=tuple(parts), expected=f"{part} to be a mapping", found=nxt)])
        node = nxt
    node[parts[-1]] = value


def get_path(data: Mapping[str, Any], dotted: str, default: Any = None) -> Any:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def apply_overrides(data: dict[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """A deep copy of ``data`` with dotted-path overrides (``distill.temperature: 8``)."""
    out = copy.deepcopy(data)
    for key, value in (overrides or {}).items():
        set_path(out, key, value)
    return out


def _check_params(model: type[BaseModel], params: dict, loc: tuple) -> list[SpecIssue]:
    try:
        model.model_validate(params)
    except ValidationError as exc:
        return issues_from_validation(exc, model, prefix=loc)
    return []


def registry_issues(spec: PipelineSpec, root: Path | None = None, check_paths: bool = True) -> list[SpecIssue]:
    """Check names against the data, model and method registries (pass 2)."""
    from autokd.data.readers import READERS
    from autokd.losses import get_spec as get_loss_spec, available as available_losses
    from autokd.models import MODELS
    from autokd.models.registry import ModelBuildError, import_object, is_import_path

    issues: list[SpecIssue] = []
    d = spec.data
    if d.source not in READERS:
        issues.append(unknown_name_issue(("data", "source"), d.source, READERS, "a data source"))
    elif d.source not in DISK_SOURCES_WITHOUT_PATH:
        if not d.path:
            issues.append(
                SpecIssue(("data", "path"), expected=f"a file or folder path for source {d.source!r}", found=None)
            )
        elif check_paths:
            p = Path(d.path)
            if not p.is_absolute() and root is not None:
                p = root / p
            if not p.exists():
                issues.append(
                    SpecIssue(("data", "path"), expected="an existing file or folder", found=d.path, hint="not found")
                )

    for role in ("teacher", "student"):
        mspec = getattr(spec, role).model
        loc = (role, "model")
        if is_import_path(mspec.name):
            try:
                import_object(mspec.name)
            except ModelBuildError as exc:
                issues.append(SpecIssue(loc + ("name",), expected="an importable model class", found=mspec.name, hint=str(exc)))
        elif mspec.name not in MODELS:
            issues.append(unknown_name_issue(loc + ("name",), mspec.name, MODELS, "a model family or pkg.module:Class"))
        else:
            issues += _check_params(MODELS[mspec.name].params, mspec.params, loc + ("params",))

    dist = spec.distill
    names = available_losses()
    if dist.method not in names:
        issues.append(unknown_name_issue(("distill", "method"), dist.method, names, "a distillation method"))
    else:
        lspec = get_loss_spec(dist.method)
        if "temperature" in dist.params:
            issues.append(
                SpecIssue(
                    ("distill", "params", "temperature"),
                    expected="no temperature here (set distill.temperature)",
                    found=dist.params["temperature"],
                )
            )
        else:
            issues += _check_params(lspec.params, method_params(spec), ("distill", "params"))
        if dist.teacher_outputs == "cache":
            if spec.student.train.augment.enabled:
                issues.append(SpecIssue(
                    ("distill", "teacher_outputs"), expected="'auto' or 'live' when student.train.augment is enabled "
                    "(cached teacher outputs would be paired with different, augmented inputs)", found="cache"))
            elif lspec.kind in ("feature", "relation"):
                issues.append(SpecIssue(
                    ("distill", "teacher_outputs"), expected=f"'auto' or 'live' for the {lspec.kind} method "
                    f"{dist.method!r} (it needs the teacher's features on every batch)", found="cache"))
    return issues


def method_params(spec: PipelineSpec) -> dict[str, Any]:
    """The keyword arguments for ``autokd.losses.create(spec.distill.method, …)``.

    ``distill.temperature`` is passed to every method that has a ``temperature`` parameter.
    """
    from autokd.losses import get_spec as get_loss_spec

    params = dict(spec.distill.params)
    fields = get_loss_spec(spec.distill.method).params.model_fields
    if "temperature" in fields:
        params["temperature"] = spec.distill.temperature
    return params


def validate_pipeline(
    data: dict[str, Any],
    file: str | None = None,
    text: str | None = None,
    root: Path | None = None,
    check_paths: bool = True,
) -> PipelineSpec:
    """Validate a spec mapping; raise :class:`SpecError` listing every problem."""
    try:
        spec = PipelineSpec.model_validate(data)
    except ValidationError as exc:
        issues = issues_from_validation(exc, PipelineSpec)
        _attach_lines(issues, text)
        raise SpecError(file, issues) from None
    issues = registry_issues(spec, root=root, check_paths=check_paths)
    if issues:
        _attach_lines(issues, text)
        raise SpecError(file, issues)
    return spec


def load_pipeline_spec(
    path: str | Path,
    overrides: Mapping[str, Any] | None = None,
    root: str | Path | None = None,
    check_paths: bool = True,
) -> PipelineSpec:
    """Load, override and validate a pipeline spec file.

    Relative data paths resolve against ``root`` (default: the current directory, which is
    the repo root under ``dvc repro``).
    """
    path = Path(path)
    data = apply_overrides(load_yaml(path), overrides)
    text = path.read_text() if not overrides else None
    return validate_pipeline(
        data, file=str(path), text=text, root=Path(root) if root else Path.cwd(), check_paths=check_paths
    )


def dump_spec(spec: BaseModel) -> dict[str, Any]:
    """A plain, YAML/JSON-ready dict of a spec (or spec section)."""
    return spec.model_dump(mode="json")
