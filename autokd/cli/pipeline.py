"""``autokd validate | stage | run | dvc``: a pipeline's commands, for every task.

Each asks the spec's :class:`~autokd.stages.task.PipelineTask` (``task:`` classify, lm or a
user's ``package.module:Class``) for its validation, stages and DVC file; a chain spec is the
classification chain's (:mod:`autokd.cli.chain`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from autokd.cli.errors import fail, guard, unknown_choice


def _task(spec: Path):
    from autokd.spec.document import load_yaml
    from autokd.stages.task import task_of

    return guard(task_of, guard(load_yaml, spec), str(spec))


def validate(spec: Path = typer.Argument(..., help="pipeline or chain spec (YAML)")) -> None:
    """Check a pipeline spec without running anything."""
    from autokd.spec.chain import is_chain_spec
    from autokd.spec.document import load_yaml
    from autokd.stages.validate import load_chain_spec

    if is_chain_spec(guard(load_yaml, spec)):
        chain = guard(load_chain_spec, spec)
        typer.echo(f"{spec}: ok (multi-stage: teacher -> {' -> '.join(step.name for step in chain.steps)})")
        return
    task = _task(spec)
    typer.echo(f"{spec}: ok ({task.describe(guard(task.load, spec))})")


def stage(
    name: str = typer.Argument(..., help="prepare | train_teacher | train_baseline | distill | evaluate "
                               "(language models: also cache_teacher, train_baseline_equal)"),
    spec: Path = typer.Argument(Path("pipelines/default.yaml"), help="pipeline spec (YAML)"),
    root: Path = typer.Option(Path("."), help="output root (artifacts/, reports/ … go under it)"),
) -> None:
    """Run one pipeline stage (what dvc.yaml calls)."""
    task = _task(spec)
    if name not in task.stages:
        unknown_choice("stage", name, task.stages)
    guard(task.run_stage, name, spec, root)


def run(
    spec: Path = typer.Argument(..., help="pipeline spec (YAML)"),
    root: Path = typer.Option(Path("."), help="output root"),
) -> None:
    """Run every stage in order without DVC (no caching; DVC is the cached way)."""
    task = _task(spec)
    guard(task.load, spec)  # every problem reported before the first stage runs
    for name in task.stages:
        typer.echo(f"== {name}")
        guard(task.run_stage, name, spec, root)


def dvc(
    spec: Path = typer.Argument(..., help="pipeline spec (YAML), as dvc.yaml names it (relative to the repo root)"),
    root: str = typer.Option(".", help="output root the stages write under (e.g. runs/lm)"),
    wdir: Optional[str] = typer.Option(None, help="from the DVC file's folder to the repo root (e.g. ../..)"),
    code: str = typer.Option("auto", help="the stages' code dependency: source (autokd/ folders of this checkout), "
                             "installed (.autokd/code.json), auto (source where the repo holds autokd's source)"),
) -> None:
    """Print the DVC file of a pipeline spec (every task), e.g. `autokd dvc pipelines/default.yaml > dvc.yaml`."""
    from autokd.spec.document import load_yaml
    from autokd.stages.dvcgen import code_mode, pipeline_dvc_text

    if code not in ("auto", "source", "installed"):
        fail(f"--code {code!r}: expected auto, source or installed", 2)
    mode = code_mode(".") if code == "auto" else code  # run at the repo root
    task = _task(spec)
    typer.echo(pipeline_dvc_text(task, guard(task.load, spec), spec.as_posix(), root, guard(load_yaml, spec), wdir,
                                 mode), nl=False)
