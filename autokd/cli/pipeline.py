"""``autokd validate | stage | run``: the default pipeline's commands."""

from __future__ import annotations

from pathlib import Path

import typer

from autokd.cli.errors import guard, unknown_choice


def validate(spec: Path = typer.Argument(..., help="pipeline or chain spec (YAML)")) -> None:
    """Check a pipeline spec without running anything."""
    from autokd.spec.chain import is_chain_spec
    from autokd.spec.document import load_yaml
    from autokd.stages.validate import load_chain_spec, load_pipeline_spec

    if guard(lambda: is_chain_spec(load_yaml(spec))):
        chain = guard(load_chain_spec, spec)
        typer.echo(f"{spec}: ok (multi-stage: teacher -> {' -> '.join(step.name for step in chain.steps)})")
        return
    s = guard(load_pipeline_spec, spec)
    t = s.distill.temperature
    typer.echo(
        f"{spec}: ok (data {s.data.source}, teacher {s.teacher.model.name}, student {s.student.model.name}, "
        f"method {s.distill.method}, T={'method default' if t is None else f'{t:g}'}, alpha={s.distill.alpha:g})"
    )


def stage(
    name: str = typer.Argument(..., help="prepare | train_teacher | train_baseline | distill | evaluate"),
    spec: Path = typer.Argument(Path("pipelines/default.yaml"), help="pipeline spec (YAML)"),
    root: Path = typer.Option(Path("."), help="output root (artifacts/, reports/ … go under it)"),
) -> None:
    """Run one pipeline stage (what dvc.yaml calls)."""
    from autokd.stages import STAGES, run_stage

    if name not in STAGES:
        unknown_choice("stage", name, STAGES)
    guard(run_stage, name, spec, root)


def run(
    spec: Path = typer.Argument(..., help="pipeline spec (YAML)"),
    root: Path = typer.Option(Path("."), help="output root"),
) -> None:
    """Run every stage in order without DVC (no caching; DVC is the cached way)."""
    from autokd.stages import STAGES, load_pipeline_spec, run_stage

    guard(load_pipeline_spec, spec, root=root)
    for name in STAGES:
        typer.echo(f"== {name}")
        guard(run_stage, name, spec, root)
