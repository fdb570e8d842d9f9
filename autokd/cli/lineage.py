"""``autokd lineage …``: artifact lineage (data -> teacher -> student)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from autokd.cli.errors import fail

app = typer.Typer(help="Artifact lineage (data -> teacher -> student).", no_args_is_help=True)


@app.command("show")
def show(
    artifact: Path = typer.Argument(..., help="artifact folder (e.g. artifacts/student) or manifest.json"),
    root: Path = typer.Option(Path("."), help="root that artifact paths in manifests are relative to"),
    as_json: bool = typer.Option(False, "--json", help="print the expanded lineage as JSON"),
) -> None:
    """Print an artifact's chain back to its data: student <- teacher <- data."""
    from autokd.lineage.graph import lineage_tree, render_tree

    try:
        tree = lineage_tree(artifact, root)
    except FileNotFoundError as exc:
        fail(f"{exc} (is {artifact} an artifact folder? run the pipeline first)", 2)
    if as_json:
        typer.echo(json.dumps(tree, indent=2))
    else:
        typer.echo("\n".join(render_tree(tree)))
