"""``autokd compare …``: every single-stage method vs the labels-only baseline, over seeds.

    autokd compare run kd 0          one run (what pipelines/compare/dvc.yaml calls per method and seed)
    autokd compare aggregate         reports/methods.json + reports/methods.png, prints the table
    autokd compare all               every run, then the aggregate, without DVC
    autokd compare table             the markdown table of reports/methods.json

The runs read the default pipeline's prepared data and teacher under the root ``artifacts/``
(``dvc repro pipelines/compare/dvc.yaml`` builds them first). Heavy modules are imported
inside the commands: every DVC stage imports the CLI.
"""

from __future__ import annotations

from pathlib import Path

import typer

from autokd.cli.errors import fail, guard

app = typer.Typer(help="Compare every distillation method over seeds (pipelines/compare).", no_args_is_help=True)

SPEC_OPT = typer.Option(Path("pipelines/compare/methods.yaml"), "--spec", help="comparison spec (YAML)")
ROOT_OPT = typer.Option(Path("."), help="repo root: artifacts/ is read, runs/compare/ and reports/ written")


def _spec(spec: Path, root: Path):
    from autokd.stages.compare import load

    return guard(load, spec, root)


def _missing_inputs(root: Path) -> None:

    for sub in ("artifacts/data", "artifacts/teacher", "artifacts/teacher_outputs"):
        if not (root / sub / "manifest.json").exists():
            fail(f"{root / sub} is missing: run the default pipeline first (dvc repro, or "
                  f"dvc repro pipelines/compare/dvc.yaml which builds it)", 2)


@app.command()
def run(
    method: str = typer.Argument(..., help="a method of the comparison, or 'baseline'"),
    seed: int = typer.Argument(..., help="student seed (one of the spec's seeds)"),
    spec: Path = SPEC_OPT,
    root: Path = ROOT_OPT,
) -> None:
    """Train one (method, seed) student into runs/compare/<method>/<seed>/."""
    from autokd.stages.compare import run_one
    from autokd.stages.compare_spec import run_pipeline_spec

    s = _spec(spec, root)
    guard(run_pipeline_spec, s, method, seed, root)  # an unknown method or seed before anything else
    _missing_inputs(root)
    guard(run_one, s, method, seed, root)


@app.command()
def aggregate(spec: Path = SPEC_OPT, root: Path = ROOT_OPT) -> None:
    """Mean and std over seeds per method: reports/methods.json and reports/methods.png."""
    from autokd.stages.compare import REPORT_JSON, aggregate as agg, markdown_table

    s = _spec(spec, root)
    try:
        report = guard(agg, s, root)
    except FileNotFoundError as exc:
        fail(str(exc), 2)
    typer.echo(markdown_table(report))
    typer.echo(f"wrote {root / REPORT_JSON}")


@app.command("all")
def run_all(spec: Path = SPEC_OPT, root: Path = ROOT_OPT) -> None:
    """Every run then the aggregate, without DVC (no caching)."""
    from autokd.stages.compare import markdown_table, run_all as go

    s = _spec(spec, root)
    _missing_inputs(root)
    typer.echo(markdown_table(guard(go, s, root)))


@app.command()
def table(root: Path = ROOT_OPT) -> None:
    """Print reports/methods.json as the README's markdown table."""
    import json

    from autokd.stages.compare import REPORT_JSON, markdown_table

    path = root / REPORT_JSON
    if not path.exists():
        fail(f"{path} does not exist: run `dvc repro pipelines/compare/dvc.yaml` first", 2)
    typer.echo(markdown_table(json.loads(path.read_text())))
