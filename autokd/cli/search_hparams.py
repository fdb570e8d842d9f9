"""``autokd search hparams``: a thin typer layer over :func:`autokd.search.hparams.run_search`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from autokd.cli.errors import fail, guard, unknown_choice

# The search package is imported inside the command: every other command (the pipeline's stages
# among them) runs below the search, and its dvc.yaml deps do not list autokd/search.
BACKEND_HELP = ("the search engine: ray (Ray Tune + Optuna sampler), optuna (Optuna alone), "
                "or one registered with autokd.search.hparams.backends.register_backend")


def hparams(
    spec: Path = typer.Argument(..., help="search spec (YAML), e.g. search_spaces/default.yaml"),
    trials: Optional[int] = typer.Option(None, "--trials", "-n", min=1, help="number of trials (default: the spec's budget)"),
    address: Optional[str] = typer.Option(None, "--address", help="connect to a running Ray cluster HOST:PORT"),
    resume: bool = typer.Option(False, "--resume", help="continue an interrupted search (finished trials are kept)"),
    apply: bool = typer.Option(False, "--apply", help="write best.yaml into the pipeline spec afterwards"),
    apply_only: bool = typer.Option(False, "--apply-only", help="apply an earlier search's best.yaml; run nothing"),
    backend: str = typer.Option("ray", "--backend", help=BACKEND_HELP),
    storage: Optional[str] = typer.Option(
        None, "--storage",
        help="ray: results path/URI (shared on a cluster); optuna: sqlite:///file.db, a database URL or a journal file",
    ),
    out: Optional[Path] = typer.Option(None, "--out", help="output folder (default searches/<name>)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="discard an earlier search of the same name"),
    no_dvc_exp: bool = typer.Option(
        False, "--no-dvc-exp", help="do not record trials as DVC experiments (spec: record_experiments: false)",
    ),
    completed_only: bool = typer.Option(
        False, "--completed-only",
        help="record only completed trials as DVC experiments, not stopped or failed ones (spec: record_experiments: completed)",
    ),
) -> None:
    """Search distillation hyperparameters (T, lambda, method, student, training knobs) of a classifier or language-model pipeline."""
    from autokd.search.hparams.backends import available_backends
    from autokd.search.hparams.errors import SearchError

    if backend not in available_backends():
        unknown_choice("backend", backend, available_backends())
    if apply_only:
        from autokd.search.hparams.run import apply_only as _apply_only

        try:
            guard(_apply_only, spec, out_dir=out, log=typer.echo)
        except FileNotFoundError as exc:
            fail(str(exc), 2)
        return
    from autokd.search.hparams.run import run_search

    try:
        outcome = guard(run_search, spec, trials=trials, address=address, resume=resume, apply=apply,
                         backend=backend, storage=storage, out_dir=out, overwrite=overwrite, log=typer.echo,
                         record_experiments=False if no_dvc_exp else "completed" if completed_only else None)
    except SearchError as exc:  # a search that cannot start or continue (StudyMismatch included)
        fail(str(exc), 2)
    except ValueError as exc:
        fail(str(exc), 2)
    if outcome is not None and not any(r.status == "completed" for r in outcome.records):
        fail("no trial completed its schedule (see trials.csv for the reasons)", 1)
