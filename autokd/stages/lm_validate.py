"""Validation of a language-model pipeline spec (``task: lm``) against the registries.

Pass 1 is the schema (:class:`autokd.spec.lm.LMPipelineSpec`); pass 2 here: both models are
registered language-model families with valid parameters, the method is a token-level
divergence with valid parameters and the one temperature rule (``distill.temperature`` goes to
the method's ``temperature``), a representation term names a language-model feature or
relation method, and a ``files`` corpus or a tokenizer file exists. Feature names are checked
against the built models when the objective is built (:mod:`autokd.stages.lm`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from autokd.spec.base import params_issues, validate_document
from autokd.spec.document import read_document
from autokd.spec.errors import SpecIssue, unknown_name_issue
from autokd.spec.lm import LMDistillSpec, LMPipelineSpec
from autokd.stages.validate import effective_params, temperature_and_params_issues


def lm_model_issues(name: str, params: dict[str, Any], loc: tuple) -> list[SpecIssue]:
    from autokd.models import MODELS

    lms = sorted(n for n, f in MODELS.items() if f.task == "lm")
    if name not in MODELS:
        return [unknown_name_issue(loc + ("name",), name, lms, "a language-model family")]
    if MODELS[name].task != "lm":
        return [SpecIssue(loc + ("name",), expected=f"a language-model family ({', '.join(lms)})", found=name)]
    return params_issues(MODELS[name].params, params, loc + ("params",))


def effective_lm_distill(distill: LMDistillSpec) -> dict[str, Any]:
    """The distillation recipe with every default filled in (fingerprints and lineage): the
    classifier's :func:`~autokd.stages.validate.effective_params` rule for the method and the
    representation term."""
    from autokd.losses import get_spec

    out = distill.model_dump(mode="json")
    out["params"] = effective_params(distill)
    out.pop("temperature")
    if distill.representation is not None:
        rep = distill.representation
        out["representation"]["params"] = get_spec(rep.method).params(**rep.params).model_dump(mode="json")
    return out


def _lm_methods(kinds: tuple[str, ...]) -> list[str]:
    from autokd.losses import available, get_spec

    return [n for n in available() if get_spec(n).task == "lm" and get_spec(n).kind in kinds]


def lm_distill_issues(distill: LMDistillSpec, loc: tuple = ("distill",)) -> list[SpecIssue]:
    from autokd.losses import get_spec

    tokens = _lm_methods(("token",))
    if distill.method not in tokens:
        issues = [unknown_name_issue(loc + ("method",), distill.method, tokens, "a token-level divergence")]
    else:
        issues = temperature_and_params_issues(distill, get_spec(distill.method).params, loc)
    rep = distill.representation
    if rep is not None:
        reps = _lm_methods(("feature", "relation"))
        if rep.method not in reps:
            issues.append(unknown_name_issue(loc + ("representation", "method"), rep.method, reps,
                                             "a representation-transfer method"))
        else:
            issues += params_issues(get_spec(rep.method).params, rep.params, loc + ("representation", "params"))
        for i, pattern in enumerate(rep.features):
            if rep.method == "ckd_ltr" and "{}" in pattern:
                issues.append(SpecIssue(loc + ("representation", "features", i), expected="a stacked-layers "
                                        "feature without '{}' for ckd_ltr (the decoder's 'layers')", found=pattern))
    return issues


def vocabulary_issues(spec: LMPipelineSpec, root: Path | None) -> list[SpecIssue]:
    """A Hugging Face model whose vocabulary is smaller than the pipeline tokenizer's (more rows is
    padding, cut by :class:`autokd.models.hf.HFCausalLM`): an error naming both
    (token-level distillation compares distributions over one vocabulary; cross-tokenizer
    distillation is out of scope)."""
    from autokd.models.hf import folder_config

    tok = spec.data.tokenizer
    size, where = tok.vocab_size, f"data.tokenizer.vocab_size ({tok.vocab_size})"
    if tok.kind == "file" and tok.path:
        from autokd.data.readers.base import DataReadError
        from autokd.data.text.tokenizer import load_tokenizer

        try:
            size = load_tokenizer(tok.path, root or Path.cwd()).get_vocab_size(with_added_tokens=True)
        except DataReadError:
            return []  # reported by the path check
        where = f"the tokenizer at {tok.path} ({size})"
    issues = []
    for role in ("teacher", "student"):
        model = getattr(spec, role).model
        if model.name != "hf_causal_lm" or not isinstance(model.params.get("path"), str):
            continue
        base = root or Path.cwd()
        path = Path(model.params["path"])
        try:
            vocab = folder_config(path if path.is_absolute() else base / path).get("vocab_size")
        except ValueError as exc:
            issues.append(SpecIssue((role, "model", "params", "path"), expected="a Hugging Face model folder",
                                    found=model.params["path"], hint=str(exc)))
            continue
        if not isinstance(vocab, int) or vocab < size:  # more rows than tokens: a padded embedding, cut
            issues.append(SpecIssue((role, "model", "params", "path"), expected=f"a model whose vocabulary is "
                                    f"{where} (or padded past it)",
                                    found=f"{model.params['path']} with {vocab} tokens (config.json)"))
    return issues


def corpus_issues(source: str) -> list[SpecIssue]:
    """``data.source`` against the corpus registry (a built-in name or ``pkg.module:function``)."""
    from autokd.data.readers.base import DataReadError
    from autokd.data.text import corpus as _builtins  # noqa: F401  (registers the built-in sources)
    from autokd.data.text.sources import CORPORA, get_corpus

    try:
        get_corpus(source)
    except DataReadError as exc:
        return [SpecIssue(("data", "source"), expected=f"a corpus source ({', '.join(sorted(CORPORA))}) or "
                          "'package.module:function'", found=source, hint=str(exc))]
    return []


#: the family whose weights come from a folder, so that a teacher can be used without training
PRETRAINED_FAMILY = "hf_causal_lm"


def student_init_issues(spec: LMPipelineSpec) -> list[SpecIssue]:
    """``student.init`` must cut the student's declared shape out of the teacher's (whole heads)."""
    init = spec.student.init
    if init is None:
        return []
    loc = ("student", "init")
    names = (spec.teacher.model.name, spec.student.model.name)
    if names != ("decoder", "decoder"):
        return [SpecIssue(loc, expected="a decoder student cut out of a decoder teacher",
                          found=f"teacher {names[0]}, student {names[1]}")]
    from autokd.models.decoder import DecoderParams

    try:
        t, st = DecoderParams(**spec.teacher.model.params), DecoderParams(**spec.student.model.params)
    except ValueError:
        return []  # the models' own parameter checks report it
    keep, head = init.layers(t.layers), t.width // t.heads
    issues = []
    if keep[-1] >= t.layers or len(keep) != st.layers:
        issues.append(SpecIssue(loc + ("keep_layers" if init.keep_layers is not None else "keep_every",),
                                expected=f"as many kept teacher layers (of {t.layers}) as the student has "
                                f"(student.model.params.layers: {st.layers})", found=f"layers {keep}"))
    if st.width > t.width or st.heads > t.heads or st.width != st.heads * head:
        issues.append(SpecIssue(("student", "model", "params"), expected=f"whole heads of the teacher ({t.heads} heads "
                                f"of {head}): width = heads x {head}, heads ≤ {t.heads}",
                                found=f"width {st.width}, heads {st.heads}"))
    if round(st.mlp_ratio * st.width) > round(t.mlp_ratio * t.width):
        issues.append(SpecIssue(("student", "model", "params", "mlp_ratio"), expected="an MLP no wider than the "
                                f"teacher's ({round(t.mlp_ratio * t.width)})", found=st.mlp_ratio))
    return issues


def lm_registry_issues(spec: LMPipelineSpec, root: Path | None = None, check_paths: bool = True) -> list[SpecIssue]:
    issues: list[SpecIssue] = corpus_issues(spec.data.source) + student_init_issues(spec)
    for role in ("teacher", "student"):
        r = getattr(spec, role)
        issues += lm_model_issues(r.model.name, r.model.params, (role, "model"))
    issues += lm_distill_issues(spec.distill)
    if spec.teacher.train is None and spec.teacher.model.name != PRETRAINED_FAMILY:
        issues.append(SpecIssue(("teacher", "train"), expected=f"a training section (a {spec.teacher.model.name} "
                                "teacher starts from random weights)", found=None,
                                hint=f"null uses a pretrained teacher as it is: model.name {PRETRAINED_FAMILY} "
                                     "with params.path, a local Hugging Face folder"))
    if check_paths:
        issues += vocabulary_issues(spec, root)
    if check_paths:
        base = root or Path.cwd()
        for loc, value in ((("data", "path"), spec.data.path), (("data", "tokenizer", "path"), spec.data.tokenizer.path)):
            if value and not (Path(value) if Path(value).is_absolute() else base / value).exists():
                issues.append(SpecIssue(loc, expected="an existing file or folder (relative to the working "
                                        "directory)", found=value))
    return issues


def validate_lm_pipeline(data: dict[str, Any], file: str | None = None, text: str | None = None,
                         root: Path | None = None, check_paths: bool = True) -> LMPipelineSpec:
    """Validate a language-model pipeline spec mapping (both passes), like ``validate_pipeline``."""
    return validate_document(LMPipelineSpec, data, file=file, text=text,
                             checks=lambda s: lm_registry_issues(s, root, check_paths))


def load_lm_spec(path: str | Path, overrides: Mapping[str, Any] | None = None, root: str | Path | None = None,
                 check_paths: bool = True) -> LMPipelineSpec:
    """Load, override and validate a language-model pipeline spec file."""
    data, text = read_document(path, overrides)
    return validate_lm_pipeline(data, file=str(path), text=text, root=Path(root) if root else None,
                                check_paths=check_paths)
