"""The one error helper of every command: known errors become a clear message and an exit code.

Exit codes: 0 success; 1 a run failed (e.g. a non-finite loss); 2 bad input (a spec or data
file that does not validate: the message names the file, key path, expected and found);
130 interrupted (checkpoints kept: run again to resume).
"""

from __future__ import annotations

from typing import Any, Callable, NoReturn

import typer


def fail(message: str, code: int) -> NoReturn:
    """Print ``error: …`` for each line of ``message`` on stderr and exit with ``code``."""
    typer.echo("\n".join(f"error: {line}" for line in str(message).splitlines()), err=True)
    raise typer.Exit(code)


def _bad_input_types() -> tuple[type[BaseException], ...]:
    from autokd.data.readers import DataReadError
    from autokd.models.registry import ModelBuildError

    return (DataReadError, ModelBuildError)


def guard(
    fn: Callable[..., Any], *args: Any, interrupted: str | None = None,
    bad_input: tuple[type[BaseException], ...] = (), **kwargs: Any,
) -> Any:
    """Run ``fn`` turning known errors into clear messages and exit codes (no traceback).

    ``bad_input``: more exception types that mean "the input cannot work" (exit 2)."""
    from autokd.spec.errors import SpecError
    from autokd.train.distributed import WorkersFailedError
    from autokd.train.trainer import NonFiniteLossError

    try:
        return fn(*args, **kwargs)
    except SpecError as exc:
        fail(exc.render(), 2)
    except _bad_input_types() + tuple(bad_input) as exc:
        fail(str(exc), 2)
    except NonFiniteLossError as exc:
        fail(str(exc), 1)
    except WorkersFailedError as exc:
        fail(str(exc), 1)
    except KeyboardInterrupt:
        fail(interrupted or "interrupted; checkpoints are kept, run the same command again to resume", 130)


def unknown_choice(kind: str, name: str, valid: tuple[str, ...] | list[str]) -> NoReturn:
    """Exit 2 naming an unknown choice, the valid ones and the nearest."""
    from autokd.spec.errors import suggest

    hint = suggest(name, valid)
    fail(f"unknown {kind} {name!r}; {kind}s: {', '.join(valid)}" + (f" ({hint})" if hint else ""), 2)
