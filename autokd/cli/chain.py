"""``autokd chain …``: multi-stage distillation (TAKD, born-again, block-wise) from a chain spec.

    autokd chain run pipelines/takd.yaml                 every stage, in order, without DVC
    autokd chain step pipelines/takd.yaml ta             one stage (what pipelines/takd/dvc.yaml runs)
    autokd chain evaluate pipelines/takd.yaml            the metrics of every model of the chain
    autokd chain dvc pipelines/takd.yaml                 print the chain's DVC stages (dvc.yaml)

Outputs go under ``--root`` (default ``runs/<spec name>``). Heavy modules are imported inside
the commands: every DVC stage imports the CLI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from autokd.cli.errors import fail, guard

app = typer.Typer(
    help="Multi-stage distillation chains: teacher -> step 1 -> step 2 …, each distilled from the model before.",
    no_args_is_help=True,
)

SPEC_ARG = typer.Argument(..., help="chain spec (YAML), e.g. pipelines/takd.yaml")
ROOT_OPT = typer.Option(None, help="output root (default: runs/<spec name>)")


def _load(spec: Path, root: Optional[Path]):
    from autokd.stages.chain import load_and_layout

    return guard(load_and_layout, spec, root)


def _run(fn, *args):
    try:
        return guard(fn, *args)
    except KeyError as exc:
        fail(str(exc.args[0]) if exc.args else str(exc), 2)


@app.command()
def step(
    spec: Path = SPEC_ARG,
    name: str = typer.Argument(..., help="prepare | teacher | <step name> | baseline | direct"),
    root: Optional[Path] = ROOT_OPT,
) -> None:
    """Run one stage of the chain (what its dvc.yaml calls)."""
    from autokd.stages.chain import run_chain_stage

    s, layout = _load(spec, root)
    _run(run_chain_stage, s, layout, name)


@app.command()
def evaluate(spec: Path = SPEC_ARG, root: Optional[Path] = ROOT_OPT) -> None:
    """Test metrics of every model of the chain, each step's gains: reports/metrics.json under the root."""
    from autokd.stages.chain import chain_evaluate

    s, layout = _load(spec, root)
    _run(chain_evaluate, s, layout)


@app.command()
def run(spec: Path = SPEC_ARG, root: Optional[Path] = ROOT_OPT) -> None:
    """Every stage in order without DVC (no caching; `dvc repro pipelines/<name>/dvc.yaml` is the cached way)."""
    from autokd.stages.chain import run_chain_stage

    s, layout = _load(spec, root)
    for name in s.stage_names():
        typer.echo(f"== {name}")
        _run(run_chain_stage, s, layout, name)


@app.command("dvc")
def dvc_yaml(
    spec: Path = SPEC_ARG,
    root: Optional[Path] = ROOT_OPT,
    code: str = typer.Option("auto", help="the stages' code dependency: source (autokd/ folders of this checkout), "
                             "installed (.autokd/code.json), auto (source where the repo holds autokd's source)"),
) -> None:
    """Print the chain's DVC stages (redirect to pipelines/<name>/dvc.yaml)."""
    from autokd.spec.document import load_yaml
    from autokd.stages.chain import default_root
    from autokd.stages.dvcgen import code_mode, dvc_yaml_text

    if code not in ("auto", "source", "installed"):
        fail(f"--code {code!r}: expected auto, source or installed", 2)
    s, _ = _load(spec, root)
    text = dvc_yaml_text(s, spec.as_posix(), (root or default_root(s)).as_posix(), raw=load_yaml(spec),
                         code=code_mode(".") if code == "auto" else code)
    typer.echo(text, nl=False)
