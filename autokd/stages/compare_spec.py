"""Validation of the method-comparison spec (:mod:`autokd.spec.compare`) against the registries.

Every run's pipeline spec (the comparison's pipeline + that method's overrides) is validated
like ``dvc repro`` would, with errors reported at ``methods.<name>.…``; feature pairs are
checked against the features the pipeline's teacher and student actually expose.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from autokd.spec.base import validate_document
from autokd.spec.compare import BASELINE, CompareSpec, MethodEntry
from autokd.spec.document import apply_overrides, load_yaml, read_document
from autokd.spec.errors import SpecError, SpecIssue, unknown_name_issue
from autokd.spec.pipeline import PipelineSpec
from autokd.stages.validate import feature_pair_issues, validate_pipeline


def _resolve(path: str, root: Path) -> Path:
    p = Path(path)
    return p if p.is_absolute() else root / p


def run_pipeline_spec(spec: CompareSpec, method: str, seed: int, root: str | Path = ".") -> PipelineSpec:
    """The validated pipeline spec of run (method, seed)."""
    root = Path(root)
    if method != BASELINE and method not in spec.methods:
        raise SpecError(None, [unknown_name_issue(("method",), method, spec.names(), "a method of the comparison")])
    if seed not in spec.seeds:
        raise SpecError(None, [SpecIssue(("seed",), expected=f"one of the comparison's seeds {spec.seeds}", found=seed)])
    path = _resolve(spec.pipeline, root)
    return validate_pipeline(apply_overrides(load_yaml(path), spec.run_overrides(method, seed)), file=str(path),
                             root=root)


def _input_shape(run: PipelineSpec, root: Path) -> tuple[int, ...] | None:
    """The data's input shape: from the prepared data if there is some, else known for digits."""
    import json

    meta = root / "artifacts" / "data" / "meta.json"
    if meta.exists():
        return tuple(json.loads(meta.read_text())["input_shape"])
    return (1, 8, 8) if run.data.source == "digits" else None


def _feature_issues(spec: CompareSpec, name: str, run: PipelineSpec, root: Path) -> list[SpecIssue]:
    """A method's feature pairs (aliases or module paths) against the run's built student and
    teacher (:func:`autokd.stages.validate.feature_pair_issues`), where the input shape is known."""
    from autokd.losses import get_spec as get_loss_spec
    from autokd.models import build_model
    from autokd.models.features import feature_shapes

    entry = spec.methods[name]
    kind = get_loss_spec(name).kind
    loc = ("methods", name, "features")
    if kind not in ("feature", "relation"):
        return [SpecIssue(loc, expected=f"no feature pairs for the {kind} method {name!r}", found=len(entry.features),
                          found_text=f"{len(entry.features)} pair(s)")] if entry.features else []
    shape = _input_shape(run, root)
    if shape is None:
        return []  # checked when the run builds its objective
    s_shapes = feature_shapes(build_model(run.student.model.name, run.student.model.params, shape, 10), shape)
    t_shapes = feature_shapes(build_model(run.teacher.model.name, run.teacher.model.params, shape, 10), shape)
    return feature_pair_issues(entry.features, kind, s_shapes, t_shapes, loc)


def _compare_issues(spec: CompareSpec, root: Path) -> list[SpecIssue]:
    """Pass 2: every method's run spec against the registries, feature pairs against the models."""
    from autokd.stages.validate import method_issue

    issues: list[SpecIssue] = []
    if not _resolve(spec.pipeline, root).exists():
        issues.append(SpecIssue(("pipeline",), expected="an existing pipeline spec", found=spec.pipeline))
    else:
        for name in spec.methods:
            issue = method_issue(name, ("methods", name))
            if issue is not None:
                if name == BASELINE:
                    issue.hint = "the labels-only baseline is always run; do not list it"
                issues.append(issue)
                continue
            try:
                run = run_pipeline_spec(spec, name, spec.seeds[0], root)
            except SpecError as exc:
                for issue in exc.issues:
                    if issue.loc[:1] == ("distill",) and len(issue.loc) > 1 and issue.loc[1] in MethodEntry.model_fields:
                        issue.loc = ("methods", name) + tuple(issue.loc[1:])
                    else:
                        issue.hint = (issue.hint + "; " if issue.hint else "") + f"in the run of {name!r} ({spec.pipeline} + overrides)"
                    issues.append(issue)
                continue
            issues += _feature_issues(spec, name, run, root)
        if not any(i.loc[:1] == ("methods",) for i in issues):
            try:
                run_pipeline_spec(spec, BASELINE, spec.seeds[0], root)
            except SpecError as exc:
                for issue in exc.issues:
                    issue.hint = (issue.hint + "; " if issue.hint else "") + f"in the baseline run ({spec.pipeline} + overrides)"
                    issues.append(issue)
    return issues


def validate_compare(data: dict[str, Any], file: str | None = None, text: str | None = None,
                     root: Path | None = None) -> CompareSpec:
    """Validate a comparison spec mapping; raise :class:`SpecError` listing every problem."""
    root = root or Path.cwd()
    return validate_document(CompareSpec, data, file=file, text=text, checks=lambda s: _compare_issues(s, root))


def load_compare_spec(path: str | Path = "pipelines/compare/methods.yaml", root: str | Path | None = None,
                      overrides: Mapping[str, Any] | None = None) -> CompareSpec:
    """Load and validate a comparison spec (paths in it are relative to ``root``, default: cwd)."""
    data, text = read_document(path, overrides)
    return validate_compare(data, file=str(path), text=text, root=Path(root) if root else Path.cwd())
