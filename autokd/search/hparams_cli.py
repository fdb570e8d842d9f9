"""``autokd search hparams``: a thin typer layer over :func:`autokd.search.hparams.run_search`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def hparams(
    spec: Path = typer.Argument(..., help="search spec (YAML), e.g. search_spaces/default.yaml"),
    trials: Optional[int] = typer.Option(None, "--trials", "-n", min=1, help="number of trials (default: the spec's budget)"),
    address: Optional[str] = typer.Option(None, "--address", help="connect to a running Ray cluster HOST:PORT"),
    resume: bool = typer.Option(False, "--resume", help="continue an interrupted search (finished trials are kept)"),
    apply: bool = typer.Option(False, "--apply", help="write best.yaml into the pipeline spec afterwards"),
    apply_only: bool = typer.Option(False, "--apply-only", help="apply an earlier search's best.yaml; run nothing"),
    backend: str = typer.Option("ray", "--backend", help="ray (Tune + Optuna sampler) or optuna (Optuna alone)"),
    storage: Optional[str] = typer.Option(
        None, "--storage",
        help="ray: results path/URI (shared on a cluster); optuna: sqlite:///file.db, a database URL or a journal file",
    ),
    out: Optional[Path] = typer.Option(None, "--out", help="output folder (default searches/<name>)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="discard an earlier search of the same name"),
) -> None:
    """Search distillation hyperparameters (T, lambda, method, student, training knobs)."""
    from autokd.cli import _fail, _guard

    if backend not in ("ray", "optuna"):
        from autokd.spec.errors import suggest

        hint = suggest(backend, ("ray", "optuna"))
        _fail(f"unknown backend {backend!r}; backends: ray, optuna" + (f" ({hint})" if hint else ""), 2)
    if apply_only:
        from autokd.search.hparams.run import apply_only as _apply_only

        try:
            _guard(_apply_only, spec, out_dir=out, log=typer.echo)
        except FileNotFoundError as exc:
            _fail(str(exc), 2)
        return
    from autokd.search.hparams.run import run_search

    try:
        outcome = _guard(run_search, spec, trials=trials, address=address, resume=resume, apply=apply,
                         backend=backend, storage=storage, out_dir=out, overwrite=overwrite, log=typer.echo)
    except RuntimeError as exc:  # SearchError, StudyMismatch: a search that cannot start
        if type(exc).__name__ in ("SearchError", "StudyMismatch"):
            _fail(str(exc), 2)
        raise
    except ValueError as exc:
        _fail(str(exc), 2)
    if outcome is not None and not any(r.status == "completed" for r in outcome.records):
        _fail("no trial completed its schedule (see trials.csv for the reasons)", 1)
