"""The ``autokd`` command line: a thin typer layer over the library, one module per command group.

Every command turns known errors into a clear message and an exit code through
:mod:`autokd.cli.errors` (0 success; 1 a run failed; 2 bad input; 130 interrupted). Heavy
modules are imported inside the commands: every DVC stage imports the CLI.
"""

from __future__ import annotations

import sys

import typer

from autokd.cli import (catalog, chain, compare, doctor, export, lineage, pipeline, project, report, search_arch,
                        search_hparams)

app = typer.Typer(
    help="autokd: reproducible, automatic knowledge distillation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
search_app = typer.Typer(help="Searches: hyperparameters (Ray Tune + Optuna), student architectures.",
                         no_args_is_help=True)

def _version(value: bool) -> None:
    if value:
        from autokd import __version__

        typer.echo(f"autokd {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="print the version and exit")) -> None:
    """autokd: reproducible, automatic knowledge distillation."""


app.command()(project.init)
app.command("code-record")(project.code_record)
app.command()(pipeline.validate)
app.command()(pipeline.stage)
app.command()(pipeline.run)
app.command()(pipeline.dvc)
app.command()(doctor.doctor)
app.command()(catalog.methods)
app.command()(catalog.models)
app.command("export")(export.export)
app.add_typer(lineage.app, name="lineage")
app.add_typer(chain.app, name="chain")
app.add_typer(compare.app, name="compare")
app.add_typer(search_app, name="search")
app.command()(report.report)
search_app.command("hparams")(search_hparams.hparams)
search_app.command("arch")(search_arch.arch)
search_app.command("arch-dvc")(search_arch.arch_dvc)


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
