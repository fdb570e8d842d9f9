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
    from autokd.stages import Layout, load_pipeline_spec, run_stage
    from autokd.stages.health_run import doctor_checks
    from autokd.stages.recipe import resolve_auto

    s = resolve_auto(guard(load_pipeline_spec, spec))
    layout = Layout(root)
    if train_teacher and not (layout.model_dir("teacher") / "model.safetensors").exists():
        for name in ("prepare", "train_teacher"):
            guard(run_stage, name, spec, root, progress=False)
    for check in guard(doctor_checks, s, layout, spec):
        typer.echo(check.line)
