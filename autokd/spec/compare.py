"""The method-comparison spec (``pipelines/compare/methods.yaml``).

Every listed method is run as the ``distill`` stage of one pipeline spec (``pipeline``, the
default one) with ``distill.method`` and the method's own entry overridden, once per student
seed; the labels-only ``baseline`` (that pipeline's student, no distillation term) runs once
per seed too. The data and the teacher are the pipeline's own prepared artifacts (one
teacher, seed 0): only the student's seed (its initialisation and batch order) varies.

    pipeline: pipelines/default.yaml
    seeds: [0, 1, 2]
    overrides: {}                  # dotted pipeline paths applied to every run (baseline too)
    methods:
      kd: {}
      at: {features: [{student: stage1, teacher: stage1}]}
      dkd: {params: {warmup_epochs: 10}, temperature: 4.0}

Validation (before anything runs): the YAML against these models; then every run's pipeline
spec through :func:`autokd.spec.load.validate_pipeline` (method names, method parameters),
with errors reported at ``methods.<name>.…``; then feature pairs against the features the
pipeline's teacher and student actually expose, and whether their shapes can be adapted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from pydantic import Field, ValidationError, field_validator

from autokd.spec.errors import SpecError, SpecIssue, issues_from_validation, suggest, unknown_name_issue
from autokd.spec.load import _attach_lines, apply_overrides, load_yaml, validate_pipeline
from autokd.spec.pipeline import FeaturePair, PipelineSpec, Strict

#: The labels-only reference; it is always run and is not a method name.
BASELINE = "baseline"


class MethodEntry(Strict):
    """One method's settings; anything left out comes from the pipeline's ``distill`` block."""

    params: dict[str, Any] = Field(default_factory=dict, description="the method's own parameters")
    features: list[FeaturePair] = Field(default_factory=list, description="feature pairs (feature/relation methods)")
    temperature: float | None = Field(None, gt=0, description="distill.temperature for this method")
    alpha: float | None = Field(None, ge=0, le=1, description="distill.alpha for this method")


class CompareSpec(Strict):
    """Which methods, which seeds, on which pipeline."""

    pipeline: str = Field("pipelines/default.yaml", description="the pipeline spec whose data, teacher and student are used")
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1, description="student seeds")
    overrides: dict[str, Any] = Field(default_factory=dict, description="dotted pipeline paths set for every run")
    methods: dict[str, MethodEntry] = Field(min_length=1, description="method name -> its settings")

    @field_validator("seeds")
    @classmethod
    def _unique(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError("distinct seeds")
        return v

    @field_validator("overrides")
    @classmethod
    def _no_method_keys(cls, v: dict[str, Any]) -> dict[str, Any]:
        bad = [k for k in v if k in ("distill.method", "student.train.seed")]
        if bad:
            raise ValueError(f"no {' or '.join(bad)} here (set per run from methods and seeds)")
        return v

    def names(self) -> list[str]:
        """The baseline, then the methods in file order."""
        return [BASELINE] + list(self.methods)

    def run_overrides(self, method: str, seed: int) -> dict[str, Any]:
        """Dotted overrides that turn the pipeline into run (method, seed)."""
        out = dict(self.overrides)
        out["student.train.seed"] = int(seed)
        if method == BASELINE:
            return out
        entry = self.methods[method]
        out["distill.method"] = method
        out["distill.params"] = dict(entry.params)
        out["distill.features"] = [f.model_dump() for f in entry.features]
        if entry.temperature is not None:
            out["distill.temperature"] = entry.temperature
        if entry.alpha is not None:
            out["distill.alpha"] = entry.alpha
        return out


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
    return validate_pipeline(apply_overrides(load_yaml(path), spec.run_overrides(method, seed)), file=str(path), root=root)


def _input_shape(run: PipelineSpec, root: Path) -> tuple[int, ...] | None:
    """The data's input shape: from the prepared data if there is some, else known for digits."""
    import json

    meta = root / "artifacts" / "data" / "meta.json"
    if meta.exists():
        return tuple(json.loads(meta.read_text())["input_shape"])
    return (1, 8, 8) if run.data.source == "digits" else None


def _feature_issues(spec: CompareSpec, name: str, run: PipelineSpec, root: Path) -> list[SpecIssue]:
    from autokd.losses import get_spec as get_loss_spec
    from autokd.models import build_model
    from autokd.models.registry import feature_names
    from autokd.train.distill import FeatureAdapter

    entry = spec.methods[name]
    kind = get_loss_spec(name).kind
    loc = ("methods", name, "features")
    if kind not in ("feature", "relation"):
        return [SpecIssue(loc, expected=f"no feature pairs for the {kind} method {name!r}", found=len(entry.features),
                          found_text=f"{len(entry.features)} pair(s)")] if entry.features else []
    shape = _input_shape(run, root)
    if shape is None:
        return []  # checked when the run builds its objective
    s_shapes = feature_names(build_model(run.student.model.name, run.student.model.params, shape, 10), shape)
    t_shapes = feature_names(build_model(run.teacher.model.name, run.teacher.model.params, shape, 10), shape)
    issues = []
    for i, pair in enumerate(entry.features):
        if pair.student not in s_shapes:
            issues.append(unknown_name_issue(loc + (i, "student"), pair.student, s_shapes, "a student feature"))
        if pair.teacher not in t_shapes:
            issues.append(unknown_name_issue(loc + (i, "teacher"), pair.teacher, t_shapes, "a teacher feature"))
        if kind == "feature" and pair.student in s_shapes and pair.teacher in t_shapes:
            try:
                FeatureAdapter(s_shapes[pair.student], t_shapes[pair.teacher])
            except ValueError as exc:
                issues.append(SpecIssue(loc + (i,), expected="a student/teacher pair of the same rank (map-map or "
                                        "vector-vector)", found=f"{pair.student}->{pair.teacher}", hint=str(exc)))
    return issues


def validate_compare(data: dict[str, Any], file: str | None = None, text: str | None = None,
                     root: Path | None = None) -> CompareSpec:
    """Validate a comparison spec mapping; raise :class:`SpecError` listing every problem."""
    from autokd.losses import available

    root = root or Path.cwd()
    try:
        spec = CompareSpec.model_validate(data)
    except ValidationError as exc:
        issues = issues_from_validation(exc, CompareSpec)
        for issue in issues:  # unknown keys inside methods.<name>: list MethodEntry's keys
            if issue.loc[:1] == ("methods",) and len(issue.loc) == 3 and issue.expected == "a known key":
                valid = list(MethodEntry.model_fields)
                issue.expected = f"a known key ({', '.join(valid)})"
                issue.hint = suggest(str(issue.loc[-1]), valid)
        _attach_lines(issues, text)
        raise SpecError(file, issues) from None
    issues: list[SpecIssue] = []
    if not _resolve(spec.pipeline, root).exists():
        issues.append(SpecIssue(("pipeline",), expected="an existing pipeline spec", found=spec.pipeline))
    else:
        names = available()
        for name in spec.methods:
            if name not in names:
                issue = unknown_name_issue(("methods", name), name, names, "a distillation method")
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
    if issues:
        _attach_lines(issues, text)
        raise SpecError(file, issues)
    return spec


def load_compare_spec(path: str | Path = "pipelines/compare/methods.yaml", root: str | Path | None = None,
                      overrides: Mapping[str, Any] | None = None) -> CompareSpec:
    """Load and validate a comparison spec (paths in it are relative to ``root``, default: cwd)."""
    path = Path(path)
    data = apply_overrides(load_yaml(path), overrides)
    text = path.read_text() if not overrides else None
    return validate_compare(data, file=str(path), text=text, root=Path(root) if root else Path.cwd())
