"""``autokd search arch``: the typer command over :func:`autokd.search.arch.run_arch_search`.

Imports nothing heavy at module level (the CLI is imported by every DVC stage).
Exit codes: 0 done; 2 a space/pipeline spec that does not validate, or a search that cannot
run as asked (stale artifacts, nothing passes the constraints); 130 interrupted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from autokd.cli.errors import guard


def arch(
    space: Path = typer.Argument(..., help="student architecture space (YAML), e.g. search_spaces/students.yaml"),
    top_k: Optional[int] = typer.Option(None, "--top-k", min=1, help="shortlist size (default: the space's top_k)"),
    validate: int = typer.Option(
        0, "--validate", min=0,
        help="distill N candidates spread over the ranking and report Kendall tau / Spearman rho per proxy"),
    validate_epochs: Optional[int] = typer.Option(
        None, "--validate-epochs", min=1, help="short schedule for --validate (default: the space's validation.epochs)"),
    root: Optional[Path] = typer.Option(None, "--root", help="pipeline root (default: the space's root)"),
    out: Path = typer.Option(Path("searches"), "--out", help="results go to OUT/<space name>/"),
    seed: Optional[int] = typer.Option(None, "--seed", help="search seed (default: the space's search.seed)"),
    quiet: bool = typer.Option(False, "--quiet", help="no progress lines"),
) -> None:
    """Rank student architectures for the pipeline's teacher without training them."""
    from autokd.search.arch import ArchSearchError, run_arch_search

    summary = guard(run_arch_search, space, out=out, top_k=top_k, validate=validate, root=root,
                    validate_epochs=validate_epochs, seed=seed, progress=not quiet, bad_input=(ArchSearchError,),
                    interrupted="interrupted; validation checkpoints are kept, run the same command again to resume")
    meta = summary["meta"]
    typer.echo(
        f"{meta['algorithm']} search: {meta['admitted']} candidates scored, {meta['rejected']} rejected by the "
        f"constraints; median {meta['median_s_per_candidate']:.3f} s per candidate, peak RSS "
        f"{meta['peak_rss_mb']:.0f} MiB"
    )
    typer.echo(f"top: {', '.join(summary['top'])}")
    if "validation" in summary:
        for name, row in summary["validation"].items():
            a, b = row["all"], row["band"]
            fmt = lambda v: "n/a" if v is None else f"{v:+.3f}"  # noqa: E731
            typer.echo(f"  {name:16s} tau {fmt(a['tau'])} rho {fmt(a['rho'])} (n={a['n']}); "
                       f"in band tau {fmt(b['tau'])} rho {fmt(b['rho'])} (n={b['n']})")
    typer.echo(f"wrote {summary['out_dir']}/: {', '.join(summary['files'])}")


def arch_dvc(
    space: Path = typer.Argument(..., help="student architecture space (YAML), e.g. search_spaces/students.yaml"),
) -> None:
    """Print the ranking's DVC file: autokd search arch-dvc SPACE > pipelines/arch/dvc.yaml."""
    from autokd.search.arch import ArchSearchError, load_space
    from autokd.stages.dvcgen_studies import arch_dvc_text

    s = guard(load_space, space, bad_input=(ArchSearchError,))
    typer.echo(arch_dvc_text(space.as_posix(), s.name, s.pipeline, s.root), nl=False)
