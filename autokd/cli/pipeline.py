"""``autokd validate | stage | run``: the default pipeline's commands."""

from __future__ import annotations

from pathlib import Path

import typer

from autokd.cli.errors import guard, unknown_choice


def validate(spec: Path = typer.Argument(..., help="pipeline or chain spec (YAML)")) -> None:
    """Check a pipeline spec without running anything."""
    from autokd.spec.chain import is_chain_spec
    from autokd.spec.document import load_yaml
    from autokd.spec.lm import is_lm_spec
    from autokd.stages.validate import load_chain_spec, load_pipeline_spec

    doc = guard(load_yaml, spec)
    if is_chain_spec(doc):
        chain = guard(load_chain_spec, spec)
        typer.echo(f"{spec}: ok (multi-stage: teacher -> {' -> '.join(step.name for step in chain.steps)})")
        return
    if is_lm_spec(doc):
        from autokd.stages.lm_validate import load_lm_spec

        lm = guard(load_lm_spec, spec)
        d = lm.distill
        live = d.teacher_outputs == "live" or d.representation is not None
        teacher = "live teacher" if live else f"top-{d.top_k} cache"
        extra = f", + {d.representation.method} (weight {d.representation.weight:g})" if d.representation else ""
        typer.echo(f"{spec}: ok (language model: {lm.data.source}, vocab {lm.data.tokenizer.vocab_size}, context "
                   f"{lm.data.context}; teacher {lm.teacher.model.params}, student {lm.student.model.params}; "
                   f"method {d.method}, alpha={d.alpha:g}, {teacher}{extra})")
        return
    s = guard(load_pipeline_spec, spec)
    t = s.distill.temperature
    from autokd.stages.auto_spec import candidate_distills, describe, is_auto

    recipe = (f"method auto: the best by validation accuracy of {', '.join(map(describe, candidate_distills(s.distill)))}"
              if is_auto(s.distill) else
              f"method {s.distill.method}, T={'method default' if t is None else f'{t:g}'}, alpha={s.distill.alpha:g}")
    typer.echo(f"{spec}: ok (data {s.data.source}, teacher {s.teacher.model.name}, student {s.student.model.name}, "
               f"{recipe})")


def stage(
    name: str = typer.Argument(..., help="prepare | train_teacher | train_baseline | distill | evaluate "
                               "(language models: also cache_teacher, train_baseline_equal)"),
    spec: Path = typer.Argument(Path("pipelines/default.yaml"), help="pipeline spec (YAML)"),
    root: Path = typer.Option(Path("."), help="output root (artifacts/, reports/ … go under it)"),
) -> None:
    """Run one pipeline stage (what dvc.yaml calls)."""
    stages, run_stage = _stages_for(spec)
    if name not in stages:
        unknown_choice("stage", name, stages)
    guard(run_stage, name, spec, root)


def _stages_for(spec: Path):
    """The stage names and runner of a classification (default) or language-model (``task: lm``) spec."""
    from autokd.spec.document import load_yaml
    from autokd.spec.lm import is_lm_spec

    if is_lm_spec(guard(load_yaml, spec)):
        from autokd.stages.lm import LM_STAGES, run_lm_stage

        return LM_STAGES, run_lm_stage
    from autokd.stages import STAGES, run_stage

    return STAGES, run_stage


def run(
    spec: Path = typer.Argument(..., help="pipeline spec (YAML)"),
    root: Path = typer.Option(Path("."), help="output root"),
) -> None:
    """Run every stage in order without DVC (no caching; DVC is the cached way)."""
    stages, run_stage = _stages_for(spec)
    if run_stage.__name__ == "run_stage":
        from autokd.stages import load_pipeline_spec

        guard(load_pipeline_spec, spec)  # data paths resolve as `validate` resolves them
    else:
        from autokd.stages.lm_validate import load_lm_spec

        guard(load_lm_spec, spec)
    for name in stages:
        typer.echo(f"== {name}")
        guard(run_stage, name, spec, root)
