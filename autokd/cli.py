"""The ``autokd`` command line: a thin typer layer over the library.

Exit codes: 0 success; 1 a run failed (e.g. a non-finite loss); 2 bad input (a spec or data
file that does not validate: the message names the file, key path, expected and found);
130 interrupted (checkpoints kept: run again to resume).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(
    help="autokd: reproducible, automatic knowledge distillation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
lineage_app = typer.Typer(help="Artifact lineage (data -> teacher -> student).", no_args_is_help=True)
app.add_typer(lineage_app, name="lineage")
search_app = typer.Typer(help="Searches: hyperparameters (Ray Tune + Optuna), student architectures.",
                         no_args_is_help=True)
app.add_typer(search_app, name="search")
# --- search commands: each module defines a typer command function with lazy heavy imports ---
from autokd.search.hparams_cli import hparams as _hparams_cmd  # noqa: E402
search_app.command("hparams")(_hparams_cmd)
from autokd.chain_cli import app as _chain_app  # noqa: E402
app.add_typer(_chain_app, name="chain")
from autokd.compare_cli import app as _compare_app  # noqa: E402
app.add_typer(_compare_app, name="compare")
from autokd.search.arch_cli import arch as _arch_cmd  # noqa: E402
search_app.command("arch")(_arch_cmd)


def _fail(message: str, code: int) -> None:
    typer.echo("\n".join(f"error: {line}" for line in message.splitlines()), err=True)
    raise typer.Exit(code)


def _guard(fn, *args, **kwargs):
    """Run ``fn`` turning known errors into clear messages and exit codes."""
    from autokd.data.readers import DataReadError
    from autokd.models.registry import ModelBuildError
    from autokd.spec.errors import SpecError
    from autokd.train.trainer import NonFiniteLossError

    try:
        return fn(*args, **kwargs)
    except SpecError as exc:
        _fail(exc.render(), 2)
    except (DataReadError, ModelBuildError) as exc:
        _fail(str(exc), 2)
    except NonFiniteLossError as exc:
        _fail(str(exc), 1)
    except KeyboardInterrupt:
        _fail("interrupted; checkpoints are kept, run the same command again to resume", 130)


@app.command()
def validate(spec: Path = typer.Argument(..., help="pipeline spec (YAML)")) -> None:
    """Check a pipeline spec without running anything."""
    from autokd.spec.chain import is_chain_spec, load_chain_spec
    from autokd.spec.load import load_pipeline_spec, load_yaml

    if _guard(lambda: is_chain_spec(load_yaml(spec))):
        chain = _guard(load_chain_spec, spec)
        typer.echo(f"{spec}: ok (multi-stage: teacher -> {' -> '.join(step.name for step in chain.steps)})")
        return
    s = _guard(load_pipeline_spec, spec)
    typer.echo(
        f"{spec}: ok (data {s.data.source}, teacher {s.teacher.model.name}, student {s.student.model.name}, "
        f"method {s.distill.method}, T={s.distill.temperature:g}, alpha={s.distill.alpha:g})"
    )


@app.command()
def stage(
    name: str = typer.Argument(..., help="prepare | train_teacher | train_baseline | distill | evaluate"),
    spec: Path = typer.Argument(Path("pipelines/default.yaml"), help="pipeline spec (YAML)"),
    root: Path = typer.Option(Path("."), help="output root (artifacts/, reports/ … go under it)"),
) -> None:
    """Run one pipeline stage (what dvc.yaml calls)."""
    from autokd.stages import STAGES, run_stage

    if name not in STAGES:
        from autokd.spec.errors import suggest

        hint = suggest(name, STAGES)
        _fail(f"unknown stage {name!r}; stages: {', '.join(STAGES)}" + (f" ({hint})" if hint else ""), 2)
    _guard(run_stage, name, spec, root)


@app.command()
def run(
    spec: Path = typer.Argument(..., help="pipeline spec (YAML)"),
    root: Path = typer.Option(Path("."), help="output root"),
) -> None:
    """Run every stage in order without DVC (no caching; DVC is the cached way)."""
    from autokd.spec.load import load_pipeline_spec
    from autokd.stages import STAGES, run_stage

    _guard(load_pipeline_spec, spec, root=root)
    for name in STAGES:
        typer.echo(f"== {name}")
        _guard(run_stage, name, spec, root)


@lineage_app.command("show")
def lineage_show(
    artifact: Path = typer.Argument(..., help="artifact folder (e.g. artifacts/student) or manifest.json"),
    root: Path = typer.Option(Path("."), help="root that artifact paths in manifests are relative to"),
    as_json: bool = typer.Option(False, "--json", help="print the expanded lineage as JSON"),
) -> None:
    """Print an artifact's chain back to its data: student <- teacher <- data."""
    from autokd.lineage.graph import lineage_tree, render_tree

    try:
        tree = lineage_tree(artifact, root)
    except FileNotFoundError as exc:
        _fail(f"{exc} (is {artifact} an artifact folder? run the pipeline first)", 2)
    if as_json:
        typer.echo(json.dumps(tree, indent=2))
    else:
        typer.echo("\n".join(render_tree(tree)))


@app.command()
def methods(as_json: bool = typer.Option(False, "--json", help="machine-readable")) -> None:
    """List every distillation method with its parameters, defaults and paper."""
    from autokd.losses import available, get_spec

    rows = []
    for name in available():
        s = get_spec(name)
        params = {
            k: {"default": f.default, "description": f.description or ""} for k, f in s.params.model_fields.items()
        }
        rows.append({"name": name, "kind": s.kind, "summary": s.summary, "paper": s.paper, "params": params})
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    for r in rows:
        typer.echo(f"{r['name']} ({r['kind']}): {r['summary']}")
        typer.echo(f"    paper: {r['paper']}")
        for k, p in r["params"].items():
            typer.echo(f"    {k} = {p['default']!r}  {p['description']}")


@app.command()
def models() -> None:
    """List model families and their parameters."""
    from autokd.models import MODELS

    for name, fam in sorted(MODELS.items()):
        typer.echo(f"{name}: {fam.summary}")
        for k, f in fam.params.model_fields.items():
            default = f.default_factory() if f.default_factory else f.default
            typer.echo(f"    {k} = {default!r}  {f.description or ''}")


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
