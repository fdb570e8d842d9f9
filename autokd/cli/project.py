"""``autokd init`` (a project of the user's own) and ``autokd code-record`` (the ``code`` stage)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from autokd.cli.errors import guard


def init(
    directory: Path = typer.Argument(Path("."), help="the project folder (made if missing)"),
    task: str = typer.Option("classify", "--task", help="classify | lm"),
    data: Optional[str] = typer.Option(
        None, "--data", help="digits | pydoc (the embedded data) | csv:PATH | folder:PATH (images for classify, "
        ".txt/.md/.jsonl for lm); default: the task's embedded data"),
    name: Optional[str] = typer.Option(None, "--name", help="pipeline name (default: default, or lm)"),
    force: bool = typer.Option(False, "--force", help="make the project in a non-empty folder"),
    update: bool = typer.Option(False, "--update", help="regenerate dvc.yaml (keeping stages you added) and "
                                "refresh the files you have not changed"),
    no_git: bool = typer.Option(False, "--no-git", help="DVC without git (dvc init --no-scm)"),
) -> None:
    """Start a git + DVC project: pipelines/NAME.yaml, dvc.yaml, search_spaces/NAME.yaml, validated."""
    from autokd.stages.project import ProjectError, init_project

    result = guard(init_project, directory, task=task, data=data, name=name, force=force, update=update,
                   git=not no_git, bad_input=(ProjectError,))
    typer.echo(f"{'updated' if update else 'made'} {result.root}: wrote {', '.join(result.written)}")
    if result.kept:
        typer.echo(f"kept (changed by you, not overwritten): {', '.join(result.kept)}")
    if not update:
        typer.echo(f"next: cd {directory} && git add -A && git commit -m 'autokd init' && dvc repro")


def code_record(
    out: Path = typer.Argument(Path(".autokd/code.json"), help="where to write the record"),
) -> None:
    """Write the installed autokd's version and code digest (what every stage of a user project depends on)."""
    import json

    from autokd.utils.code import installed_code
    from autokd.utils.io import atomic_write_text

    text = json.dumps(installed_code(), indent=2, sort_keys=True) + "\n"
    if not out.exists() or out.read_text() != text:  # same code: the file is not touched
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, text)
    typer.echo(text, nl=False)
