"""``autokd lineage …``: show one chain, graph every artifact, verify hashes, diff two recipes."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from autokd.cli.errors import fail

app = typer.Typer(help="Artifact lineage: one chain, the whole graph, verify hashes, diff two recipes.",
                  no_args_is_help=True)


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


FORMATS = ("mermaid", "dot", "svg", "png", "json")


@app.command("graph")
def graph(
    root: Path = typer.Option(Path("."), help="folder to collect every manifest.json under"),
    fmt: str = typer.Option("mermaid", "--format", "-f", help="mermaid, dot, svg, png or json"),
    out: Path = typer.Option(None, "--out", "-o", help="write to this file (required for png)"),
    focus: str = typer.Option(None, help="only this artifact (path relative to root), its ancestors and descendants"),
) -> None:
    """Draw every artifact under ROOT and how they derive from each other (stale links in red)."""
    from autokd.cli.errors import unknown_choice
    from autokd.lineage.graph import build_graph
    from autokd.utils.io import atomic_path, atomic_write_text

    if fmt not in FORMATS:
        unknown_choice("format", fmt, FORMATS)
    if fmt == "png" and out is None:
        fail("--format png writes binary: give --out FILE.png", 2)
    if not root.is_dir():
        fail(f"--root {root}: no such folder", 2)
    g = build_graph(root)
    if not g.nodes:
        fail(f"no manifest.json under {root} (run the pipeline first, or give --root)", 2)
    if focus is not None:
        import os

        key = Path(focus).as_posix().rstrip("/")
        if key not in g.nodes and Path(focus).exists():  # a path from here rather than from the root
            key = Path(os.path.relpath(Path(focus).resolve(), root.resolve())).as_posix()
        if key not in g.nodes:
            from autokd.spec.errors import suggest

            hint = suggest(key, sorted(g.nodes))
            fail(f"--focus {focus}: no such artifact under {root}" + (f" ({hint})" if hint else ""), 2)
        g = g.focus(key)
    for warning in g.warnings:
        typer.echo(f"warning: {warning}", err=True)
    if fmt == "png":
        data = g.to_png()
        with atomic_path(out) as tmp:
            tmp.write_bytes(data)
        typer.echo(f"wrote {out} ({len(g.nodes)} artifacts, {len(g.edges)} links, {len(g.stale())} stale)")
        return
    text = {"mermaid": g.to_mermaid, "dot": g.to_dot, "svg": g.to_svg,
            "json": lambda: json.dumps(g.to_dict(), indent=2) + "\n"}[fmt]()
    if out is None:
        typer.echo(text, nl=False)
    else:
        atomic_write_text(out, text)
        typer.echo(f"wrote {out} ({len(g.nodes)} artifacts, {len(g.edges)} links, {len(g.stale())} stale)")


@app.command("verify")
def verify(
    root: Path = typer.Option(Path("."), help="folder to verify every manifest.json under"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """Re-hash every artifact's files against its manifest and check every parent's hash.

    One line per problem; exit 1 when anything fails, 0 when everything verifies."""
    from autokd.lineage.verify import verify_tree

    if not root.is_dir():
        fail(f"--root {root}: no such folder", 2)
    report = verify_tree(root)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        for problem in report.problems:
            typer.echo(f"FAIL {problem.line()}")
        if report.ok:
            typer.echo(f"verified {report.artifacts} artifacts ({report.files} files) under {root}: all match")
        else:
            typer.echo(f"{len(report.problems)} problem(s) in {report.artifacts} artifacts ({report.files} files)")
    if not report.artifacts and not report.problems:
        fail(f"no manifest.json under {root} (run the pipeline first, or give --root)", 2)
    if not report.ok:
        raise typer.Exit(1)


@app.command("diff")
def diff(
    a: str = typer.Argument(..., help="artifact folder, its manifest.json, or searches/<name>/trials/<trial>"),
    b: str = typer.Argument(..., help="the artifact to compare it with"),
    root: Path = typer.Option(Path("."), help="root that artifact paths are relative to"),
    as_json: bool = typer.Option(False, "--json", help="print the differences as JSON"),
) -> None:
    """What differs between two artifacts' recipes: spec keys, parents, git, packages, metrics."""
    from autokd.lineage.diff import diff_artifacts, render_diff

    try:
        d = diff_artifacts(a, b, root)
    except FileNotFoundError as exc:
        fail(str(exc), 2)
    except ValueError as exc:
        fail(f"not a readable manifest: {exc}", 2)
    if as_json:
        typer.echo(json.dumps(d.to_dict(), indent=2, default=str))
    else:
        typer.echo("\n".join(render_diff(d)))
