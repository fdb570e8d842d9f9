"""``autokd compare …``: every single-stage method vs the labels-only baseline, over seeds.

    autokd compare run kd 0          one run (what pipelines/compare/dvc.yaml calls per method and seed)
    autokd compare aggregate         reports/methods.json + reports/methods.png, prints the table
    autokd compare all               every run, then the aggregate, without DVC
    autokd compare table             the markdown table of reports/methods.json
    autokd compare tune kd           search kd with the spec's tuning budget (validation only)
    autokd compare run-tuned kd 0    one run of kd's chosen configuration
    autokd compare aggregate-tuned   reports/methods_tuned.json: untuned beside tuned, prints the table
    autokd compare dvc               the comparison's DVC file (pipelines/compare/dvc.yaml)

The runs read the default pipeline's prepared data and teacher under the root ``artifacts/``
(``dvc repro pipelines/compare/dvc.yaml`` builds them first). Heavy modules are imported
inside the commands: every DVC stage imports the CLI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from autokd.cli.errors import fail, guard, unknown_choice

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


def _checked_run(spec: Path, root: Path, method: str, seed: int):
    """The comparison spec, once ``method`` and ``seed`` are known to it (checked before anything
    else) and the default pipeline's inputs exist."""
    from autokd.stages.compare_spec import run_pipeline_spec

    s = _spec(spec, root)
    guard(run_pipeline_spec, s, method, seed, root)
    _missing_inputs(root)
    return s


@app.command()
def run(
    method: str = typer.Argument(..., help="a method of the comparison, or 'baseline'"),
    seed: int = typer.Argument(..., help="student seed (one of the spec's seeds)"),
    spec: Path = SPEC_OPT,
    root: Path = ROOT_OPT,
) -> None:
    """Train one (method, seed) student into runs/compare/<method>/<seed>/."""
    from autokd.stages.compare import run_one

    s = _checked_run(spec, root, method, seed)
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
def table(root: Path = ROOT_OPT,
          tuned: bool = typer.Option(False, "--tuned", help="the tuned comparison (reports/methods_tuned.json)")) -> None:
    """Print reports/methods.json (or, with --tuned, reports/methods_tuned.json) as the README's markdown table."""
    import json

    from autokd.stages.compare import REPORT_JSON, markdown_table
    from autokd.stages.compare_tuned import REPORT_JSON as TUNED_JSON, tuned_table

    path = root / (TUNED_JSON if tuned else REPORT_JSON)
    if not path.exists():
        fail(f"{path} does not exist: run `dvc repro pipelines/compare/dvc.yaml` first", 2)
    typer.echo((tuned_table if tuned else markdown_table)(json.loads(path.read_text())))


@app.command()
def tune(
    method: str = typer.Argument(..., help="a method of the comparison"),
    spec: Path = SPEC_OPT,
    root: Path = ROOT_OPT,
    address: Optional[str] = typer.Option(None, "--address", envvar="AUTOKD_RAY_ADDRESS",
                                          help="a running Ray cluster HOST:PORT (under dvc repro: $AUTOKD_RAY_ADDRESS)"),
    backend: str = typer.Option("ray", "--backend", envvar="AUTOKD_SEARCH_BACKEND",
                                help="ray (Tune + Optuna sampler) or optuna (Optuna alone)"),
    storage: Optional[str] = typer.Option(None, "--storage", envvar="AUTOKD_SEARCH_STORAGE",
                                          help="base path/URI of the searches' storage, one folder per method "
                                               "(shared on a multi-node cluster)"),
    resume: bool = typer.Option(False, "--resume", help="continue an interrupted tuning search"),
) -> None:
    """Search one method with the spec's tuning budget (validation only): runs/compare_tuned/<method>/chosen.json."""
    if backend not in ("ray", "optuna"):
        unknown_choice("backend", backend, ("ray", "optuna"))
    from autokd.search.tuned_compare import tune_method

    s = _spec(spec, root)
    _missing_inputs(root)
    try:
        guard(tune_method, s, method, root, address=address, backend=backend, storage=storage, resume=resume,
              log=typer.echo)
    except RuntimeError as exc:
        fail(str(exc), 1 if "no trial completed" in str(exc) else 2)
    except ValueError as exc:
        fail(str(exc), 2)


@app.command("run-tuned")
def run_tuned(
    method: str = typer.Argument(..., help="a method of the comparison"),
    seed: int = typer.Argument(..., help="student seed (one of the spec's seeds)"),
    spec: Path = SPEC_OPT,
    root: Path = ROOT_OPT,
) -> None:
    """Train the chosen configuration of one (method, seed) into runs/compare_tuned/<method>/<seed>/."""
    from autokd.stages.compare_tuned import run_tuned as go

    if method == "baseline":
        fail("the baseline has nothing to tune: its runs are the untuned comparison's (autokd compare run baseline)", 2)
    s = _checked_run(spec, root, method, seed)
    try:
        guard(go, s, method, seed, root)
    except FileNotFoundError as exc:
        fail(str(exc), 2)


@app.command("aggregate-tuned")
def aggregate_tuned(spec: Path = SPEC_OPT, root: Path = ROOT_OPT) -> None:
    """Untuned beside tuned per method: reports/methods_tuned.json, prints the table."""
    from autokd.stages.compare_tuned import REPORT_JSON as TUNED_JSON, aggregate_tuned as agg, tuned_table

    s = _spec(spec, root)
    try:
        report = guard(agg, s, root)
    except FileNotFoundError as exc:
        fail(str(exc), 2)
    typer.echo(tuned_table(report))
    typer.echo(f"wrote {root / TUNED_JSON}")


@app.command("dvc")
def dvc_file(spec: Path = SPEC_OPT, root: Path = ROOT_OPT,
             code: str = typer.Option("auto", help="the stages' code dependency: source (autokd/ folders of this "
                                      "checkout), installed (.autokd/code.json), auto (source where the repo holds "
                                      "autokd's source)")) -> None:
    """Print the comparison's DVC file: autokd compare dvc > pipelines/compare/dvc.yaml."""
    from autokd.spec.document import load_yaml
    from autokd.stages.dvcgen import code_mode
    from autokd.stages.dvcgen_studies import compare_dvc_text

    if code not in ("auto", "source", "installed"):
        fail(f"--code {code!r}: expected auto, source or installed", 2)
    s = _spec(spec, root)
    pipeline = root / s.pipeline
    raw = guard(load_yaml, pipeline) if pipeline.exists() else None
    typer.echo(compare_dvc_text(spec.as_posix(), s.pipeline, raw, code_mode(".") if code == "auto" else code), nl=False)
