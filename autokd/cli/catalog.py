"""``autokd methods | models``: what the registries hold."""

from __future__ import annotations

import json

import typer


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


def models() -> None:
    """List model families and their parameters."""
    from autokd.models import MODELS

    for name, fam in sorted(MODELS.items()):
        typer.echo(f"{name}: {fam.summary}")
        for k, f in fam.params.model_fields.items():
            default = f.default_factory() if f.default_factory else f.default
            typer.echo(f"    {k} = {default!r}  {f.description or ''}")
