"""``autokd doctor``: the cheap health checks of a pipeline spec before any student is trained."""

from __future__ import annotations

from pathlib import Path

import typer

from autokd.cli.errors import guard


def doctor(
    spec: Path = typer.Argument(..., help="pipeline spec (YAML)"),
    root: Path = typer.Option(Path("."), help="output root holding artifacts/ (teacher, baseline) if any"),
    train_teacher: bool = typer.Option(False, "--train-teacher",
                                       help="run prepare and train_teacher into --root first when the teacher is missing"),
) -> None:
    """Health checks (capacity gap; with a trained teacher also target entropy, KD/CE gradient
    balance at init, teacher vs labels-only student): one `ok|WARN|skip <check>: …` line each.
    Warnings do not fail (exit 0); a spec that does not validate exits 2. With the default
    `distill.method: auto` the checks look at its first (distillation) candidate."""
    from autokd.stages.task import load_task_spec

    task, s = guard(load_task_spec, spec)
    for check in guard(task.doctor_checks, s, root, spec, train_teacher, bad_input=(ValueError,)):
        typer.echo(check.line)
