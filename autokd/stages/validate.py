"""Spec validation that needs the registries: data readers, model families, distillation methods.

:mod:`autokd.spec` checks a document against its pydantic models (types, ranges, unknown
keys) and knows nothing else. This module adds the second pass, before anything trains:
names against the registries that own them and each named component's own parameter model,
so ``student.model.params`` and ``distill.params`` are checked as strictly as the rest, and
the temperature rule below. Every problem is a :class:`SpecIssue` naming file, line, key
path, what was expected and what was found.

**Temperature.** ``distill.temperature`` is optional: absent, a method uses its own default
(``kd`` 4, ``lskd`` 2); given, it is passed to the method's ``temperature`` parameter. A
method without one (``normkd``, ``ctkd``, feature and relation methods) refuses it, naming
its own knob where it has one (``normkd``'s ``t_norm``), so a value that would be silently
ignored can never change a fingerprint.

**User losses.** ``distill.method`` may be a ``pkg.module:Class`` import path: the class is
imported and checked against the loss protocol (:mod:`autokd.losses.registry`), an error at
``distill.method``; its ``Params`` then check ``distill.params`` like a built-in's.

**Feature pairs** name aliases or module paths (:mod:`autokd.models.features`); they can
only be checked against built models, so against the data's input shape:
:func:`feature_pair_issues`, called when the distill stage builds its objective and by the
method comparison's validation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from autokd.spec.base import params_issues, validate_document
from autokd.spec.chain import ChainSpec, apply_chain_overrides
from autokd.spec.document import load_yaml, read_document
from autokd.spec.errors import SpecIssue, suggest, unknown_name_issue
from autokd.spec.pipeline import DistillSpec, PipelineSpec
from autokd.stages.auto_spec import AUTO, AutoParams, candidate_distills, is_auto

DISK_SOURCES_WITHOUT_PATH = {"digits"}


def resolve_path(path: str, root: Path | None) -> Path:
    p = Path(path)
    return p if p.is_absolute() or root is None else root / p


def temperature_knobs(method: str) -> list[str]:
    """A method's own temperature-like parameters other than ``temperature`` (e.g. ``t_norm``)."""
    from autokd.losses import get_spec

    fields = get_spec(method).params.model_fields
    return [k for k, f in fields.items()
            if k != "temperature" and ("temperature" in k or "temperature" in (f.description or "").lower())]


def uses_temperature(method: str) -> bool:
    """Whether ``distill.temperature`` means something for ``method``."""
    from autokd.losses import get_spec

    return "temperature" in get_spec(method).params.model_fields


def temperature_issue(distill: DistillSpec, loc: tuple = ("distill",)) -> SpecIssue | None:
    """The issue of a temperature given to a method that has none, naming the method's own knob."""
    if distill.temperature is None or uses_temperature(distill.method):
        return None
    knobs = temperature_knobs(distill.method)
    own = (f"its own knob is distill.params.{knobs[0]}" if len(knobs) == 1 else
           f"its own knobs are {', '.join('distill.params.' + k for k in knobs)}" if knobs else
           "it has no temperature")
    return SpecIssue(loc + ("temperature",), expected=f"no temperature for method {distill.method!r} ({own}); "
                     "remove the key", found=distill.temperature)


def method_params(distill: DistillSpec) -> dict[str, Any]:
    """The keyword arguments for ``autokd.losses.create(distill.method, …)``: the method's
    ``params``, plus ``distill.temperature`` when it is set and the method has a temperature."""
    params = dict(distill.params)
    if distill.temperature is not None and uses_temperature(distill.method):
        params["temperature"] = distill.temperature
    return params


def effective_params(distill) -> dict[str, Any]:
    """The method's parameters as it acts (defaults filled in, the temperature rule applied); any
    ``distill`` section with ``method``, ``params`` and ``temperature`` (classifier or language model)."""
    from autokd.losses import get_spec

    return get_spec(distill.method).params.model_validate(method_params(distill)).model_dump(mode="json")


def temperature_and_params_issues(distill, params_model, loc: tuple) -> list[SpecIssue]:
    """A temperature in ``params`` (it belongs in ``distill.temperature``), a temperature the method
    has no use for, and the method's own parameters: one rule for every task's ``distill``."""
    if "temperature" in distill.params:
        return [SpecIssue(loc + ("params", "temperature"), expected="no temperature here (set distill.temperature)",
                          found=distill.params["temperature"])]
    t_issue = temperature_issue(distill, loc)
    return ([t_issue] if t_issue is not None else []) + params_issues(params_model, dict(distill.params),
                                                                      loc + ("params",))


def effective_distill(distill: DistillSpec) -> dict[str, Any]:
    """The distillation recipe as it acts: every method parameter with its default filled in.

    This is what a run's fingerprint and lineage record: two specs that train the same way
    (``lskd`` with and without ``temperature: 2``) give the same value. ``auto``: every candidate's.
    """
    from autokd.losses import get_spec

    if is_auto(distill):
        return {"method": AUTO, "candidates": [effective_distill(c) for c in candidate_distills(distill)]}

    return {"method": distill.method, "alpha": distill.alpha, "params": effective_params(distill),
            "features": [f.model_dump(mode="json") for f in distill.features],
            "teacher_outputs": distill.teacher_outputs}


def method_issue(method: str, loc: tuple) -> SpecIssue | None:
    """The issue of an unknown method name, or of a user loss class that cannot be used."""
    from autokd.losses import LossImportError, available, get_spec
    from autokd.utils.imports import is_import_path

    if is_import_path(method):
        try:
            get_spec(method)
        except LossImportError as exc:
            return SpecIssue(loc, expected=exc.expected, found=exc.found, found_text=exc.found, hint=exc.detail)
        return None
    names = available()
    if method not in names:
        return unknown_name_issue(loc, method, names, "a distillation method or a pkg.module:Class loss")
    return None


def distill_issues(distill: DistillSpec, augment: bool, loc: tuple = ("distill",)) -> list[SpecIssue]:
    """The method name (or loss class), its parameters, its temperature and its teacher-output mode."""
    from autokd.losses import get_spec

    if is_auto(distill):
        return auto_issues(distill, augment, loc)

    m_issue = method_issue(distill.method, loc + ("method",))
    if m_issue is not None:
        return [m_issue]
    lspec = get_spec(distill.method)
    if lspec.task != "classify":
        return [SpecIssue(loc + ("method",), expected="a classification method (language-model methods compare "
                          "next-token distributions or transformer representations)", found=distill.method)]
    issues = temperature_and_params_issues(distill, lspec.params, loc)
    if distill.features and lspec.kind not in ("feature", "relation"):
        issues.append(SpecIssue(loc + ("features",), expected=f"no feature pairs for the {lspec.kind} method "
                                f"{distill.method!r} (they would be ignored)", found=len(distill.features),
                                found_text=f"{len(distill.features)} pair(s)"))
    if distill.teacher_outputs == "cache":
        if augment:
            issues.append(SpecIssue(loc + ("teacher_outputs",), expected="'auto' or 'live' when student.train.augment "
                                    "is enabled (cached teacher outputs would be paired with different, augmented "
                                    "inputs)", found="cache"))
        elif lspec.kind in ("feature", "relation"):
            issues.append(SpecIssue(loc + ("teacher_outputs",), expected=f"'auto' or 'live' for the {lspec.kind} "
                                    f"method {distill.method!r} (it needs the teacher's features on every batch)",
                                    found="cache"))
    return issues


def auto_issues(distill: DistillSpec, augment: bool, loc: tuple = ("distill",)) -> list[SpecIssue]:
    """``method: auto`` (:mod:`autokd.stages.auto_spec`): no ``distill.temperature`` (each candidate
    has its own), then every candidate checked as a plain distill section at its own key path."""
    issues: list[SpecIssue] = []
    if distill.temperature is not None:
        issues.append(SpecIssue(loc + ("temperature",), expected="no temperature with method 'auto' (each "
                                "candidate has its own: distill.params.candidates[i].temperature); remove the key",
                                found=distill.temperature))
    issues += params_issues(AutoParams, dict(distill.params), loc + ("params",))
    if issues:
        return issues
    seen: set[tuple] = set()
    for i, cand in enumerate(candidate_distills(distill)):
        cloc = loc + ("params", "candidates", i)
        if is_auto(cand):
            issues.append(SpecIssue(cloc + ("method",), expected="a distillation method other than 'auto'", found=AUTO))
            continue
        for issue in distill_issues(cand, augment, cloc):
            if issue.loc[-1] in ("features", "teacher_outputs"):  # inherited: reported once, where written
                issue.loc = loc + (issue.loc[-1],)
                if issue.loc in seen:
                    continue
                seen.add(issue.loc)
            issues.append(issue)
    return issues


def _feature_hint(found: str, valid: list[str]) -> str | None:
    """``did you mean`` for a feature name; look-alike characters first (``layers.l`` -> ``layers.1``,
    where plain similarity ties between ``layers.0`` … ``layers.3``)."""
    look = str.maketrans("lIiOo", "11100")
    same = [v for v in valid if v.translate(look) == str(found).translate(look)]
    return f"did you mean {same[0]!r}?" if same else suggest(found, valid)


def feature_name_issue(loc: tuple, found: str, shapes: Mapping[str, tuple], role: str) -> SpecIssue:
    """An unknown feature name: some of the valid ones (aliases first) and the nearest."""
    valid = list(shapes)
    shown = ", ".join(valid[:12]) + (f", … ({len(valid)} in all)" if len(valid) > 12 else "")
    return SpecIssue(loc, expected=f"a {role} feature: an alias or a module path from named_modules() "
                     f"({shown or 'none'})", found=found, hint=_feature_hint(found, valid))


def feature_pair_issues(
    pairs: list, kind: str, s_shapes: Mapping[str, tuple], t_shapes: Mapping[str, tuple], loc: tuple
) -> list[SpecIssue]:
    """Feature pairs (``FeaturePair``) of a ``kind`` method against the shapes of the built student
    and teacher (:func:`autokd.models.features.feature_shapes`); ``loc`` is the pairs' key path."""
    from autokd.train.distill import FeatureAdapter

    if not pairs:
        missing = [r for r, shapes in (("student", s_shapes), ("teacher", t_shapes)) if "pool" not in shapes]
        if missing:
            return [SpecIssue(loc, expected=f"feature pairs for the {kind} method (the default pool -> pool needs "
                              f"a feature 'pool', which the {' and the '.join(missing)} lacks)", found=[],
                              found_text="none")]
        return []
    issues = []
    for i, pair in enumerate(pairs):
        ok = True
        for role, name, shapes in (("student", pair.student, s_shapes), ("teacher", pair.teacher, t_shapes)):
            if name not in shapes:
                issues.append(feature_name_issue(loc + (i, role), name, shapes, role))
                ok = False
        if ok and kind == "feature":
            try:
                FeatureAdapter(s_shapes[pair.student], t_shapes[pair.teacher])
            except ValueError as exc:
                issues.append(SpecIssue(loc + (i,), expected="a student/teacher pair of the same rank (map-map or "
                                        "vector-vector)", found=f"{pair.student}->{pair.teacher}", hint=str(exc)))
    return issues


def model_issues(name: str, params: dict[str, Any], loc: tuple) -> list[SpecIssue]:
    from autokd.models import MODELS
    from autokd.models.registry import ModelBuildError, import_object, is_import_path

    if is_import_path(name):
        try:
            import_object(name)
        except ModelBuildError as exc:
            return [SpecIssue(loc + ("name",), expected="an importable model class", found=name, hint=str(exc))]
        return []
    if name not in MODELS:
        return [unknown_name_issue(loc + ("name",), name, MODELS, "a model family or pkg.module:Class")]
    if MODELS[name].task != "classify":
        classifiers = sorted(n for n, f in MODELS.items() if f.task == "classify")
        return [SpecIssue(loc + ("name",), expected=f"a classifier family ({', '.join(classifiers)}); "
                          f"{name!r} is a {MODELS[name].task} model", found=name)]
    return params_issues(MODELS[name].params, params, loc + ("params",))


def data_issues(spec: PipelineSpec, root: Path | None, check_paths: bool) -> list[SpecIssue]:
    from autokd.data.readers import READERS
    from autokd.data.readers.base import DataReadError, get_reader
    from autokd.utils.imports import is_import_path

    d = spec.data
    if is_import_path(d.source):
        try:
            get_reader(d.source)
        except DataReadError as exc:
            return [SpecIssue(("data", "source"), expected="an importable reader 'package.module:function'",
                              found=d.source, hint=str(exc))]
        return []
    if d.source not in READERS:
        return [unknown_name_issue(("data", "source"), d.source, READERS, "a data source")]
    if d.source in DISK_SOURCES_WITHOUT_PATH:
        return []
    if not d.path:
        return [SpecIssue(("data", "path"), expected=f"a file or folder path for source {d.source!r}", found=None)]
    if check_paths and not resolve_path(d.path, root).exists():
        return [SpecIssue(("data", "path"), expected="an existing file or folder", found=d.path, hint="not found")]
    return []


def registry_issues(spec: PipelineSpec, root: Path | None = None, check_paths: bool = True) -> list[SpecIssue]:
    """Pass 2 of a pipeline spec: names against the data, model and method registries."""
    issues = data_issues(spec, root, check_paths)
    for role in ("teacher", "student"):
        m = getattr(spec, role).model
        issues += model_issues(m.name, m.params, (role, "model"))
    issues += distill_issues(spec.distill, spec.student.train.augment.enabled)
    return issues


def validate_pipeline(
    data: dict[str, Any], file: str | None = None, text: str | None = None, root: Path | None = None,
    check_paths: bool = True,
) -> PipelineSpec:
    """Validate a pipeline spec mapping (both passes); raise :class:`SpecError` listing every problem."""
    return validate_document(PipelineSpec, data, file=file, text=text,
                             checks=lambda s: registry_issues(s, root=root, check_paths=check_paths))


def load_pipeline_spec(
    path: str | Path, overrides: Mapping[str, Any] | None = None, root: str | Path | None = None,
    check_paths: bool = True,
) -> PipelineSpec:
    """Load, override and validate a pipeline spec file.

    Relative data paths resolve against ``root`` (default: the current directory, which is
    the repo root under ``dvc repro``).
    """
    data, text = read_document(path, overrides)
    return validate_pipeline(data, file=str(path), text=text, root=Path(root) if root else Path.cwd(),
                             check_paths=check_paths)


# ------------------------------------------------------------------------------- chains


def _step_issues(spec: ChainSpec, root: Path | None, check_paths: bool) -> list[SpecIssue]:
    """Pass 2: each step as a one-step pipeline against the registries, with chain key paths."""
    from autokd.losses import get_spec as get_loss_spec
    from autokd.spec.chain import BLOCKWISE_FAMILIES

    issues: list[SpecIssue] = []
    for i, step in enumerate(spec.steps):
        for issue in registry_issues(spec.step_pipeline(i), root=root, check_paths=check_paths and i == 0):
            head, rest = issue.loc[0], tuple(issue.loc[1:])
            if head == "data" and i > 0:
                continue  # reported once, for the first step
            if head == "teacher":
                if i > 0:
                    continue  # the previous step, already checked as a student
                issue.loc = ("teacher",) + rest
            elif head == "student":
                issue.loc = ("steps", i) + rest
            elif head == "distill":
                issue.loc = ("steps", i, "distill") + rest
            issues.append(issue)
        if step.blockwise is not None:
            loc = ("steps", i, "blockwise")
            src = spec.source_role(i)
            if step.model.name not in BLOCKWISE_FAMILIES:
                issues.append(SpecIssue(loc, expected=f"a step whose model family is one of {sorted(BLOCKWISE_FAMILIES)} "
                                        "(stepping stones are cut at stage boundaries)", found=step.model.name,
                                        hint=f"steps[{i}].model.name"))
            if src.model.name not in BLOCKWISE_FAMILIES:
                issues.append(SpecIssue(loc, expected=f"a source model ({spec.source(i)}) whose family is one of "
                                        f"{sorted(BLOCKWISE_FAMILIES)}", found=src.model.name))
            if method_issue(step.distill.method, ()) is None and get_loss_spec(step.distill.method).kind != "logit":
                issues.append(SpecIssue(("steps", i, "distill", "method"), expected="a logit method with blockwise "
                                        "(stepping stones are distilled by logits)", found=step.distill.method))
            n_stages = len(step.model.params.get("widths", [])) if step.model.name == "cnn" else 3
            bad = [k for k in (step.blockwise.stones or []) if n_stages and k > n_stages]
            if bad:
                issues.append(SpecIssue(loc + ("stones",), expected=f"stage numbers between 1 and {n_stages}",
                                        found=bad))
    return issues


def validate_chain(
    data: dict[str, Any], file: str | None = None, text: str | None = None, root: Path | None = None,
    check_paths: bool = True,
) -> ChainSpec:
    """Validate a chain spec mapping (both passes); raise :class:`SpecError` listing every problem."""
    return validate_document(ChainSpec, data, file=file, text=text,
                             checks=lambda s: _step_issues(s, root, check_paths))


def load_chain_spec(
    path: str | Path, overrides: Mapping[str, Any] | None = None, root: str | Path | None = None,
    check_paths: bool = True,
) -> ChainSpec:
    """Load, override (dotted paths, e.g. ``steps.0.train.epochs``) and validate a chain spec file."""
    path = Path(path)
    data = apply_chain_overrides(load_yaml(path), overrides)
    text = path.read_text() if not overrides else None
    return validate_chain(data, file=str(path), text=text, root=Path(root) if root else Path.cwd(),
                          check_paths=check_paths)
