"""User code named by an import path: ``package.module:Name`` (a model class, a loss class).

One rule for every registry that accepts a user's own class instead of a registered name: a
name with a colon is an import path; the part before the colon is imported with
:func:`importlib.import_module` (so the package must be on ``sys.path``: installed, or in the
current directory), the part after it is looked up attribute by attribute (``mod:Outer.Inner``).

This module imports only the standard library, so both ``autokd.models`` and ``autokd.losses``
use it without importing each other.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["ImportPathError", "import_object", "is_import_path", "lookup"]


class ImportPathError(ValueError):
    """An import path is malformed, its module cannot be imported, or it lacks the attribute."""


def is_import_path(name: Any) -> bool:
    """``pkg.mod:Class`` names a user's own class (registered names never contain a colon)."""
    return isinstance(name, str) and ":" in name


def import_object(path: str, what: str = "object") -> Any:
    """The object ``path`` names; :class:`ImportPathError` saying why it cannot be had.

    ``what`` ("model", "distillation loss") only words the message. Any exception raised
    while importing the user's module (a syntax error, a failing import inside it) is
    reported, not just :class:`ImportError`.
    """
    module_name, _, attr = str(path).partition(":")
    if not module_name or not attr or ":" in attr:
        raise ImportPathError(f"{what} {path!r} is not an import path of the form 'package.module:Name'")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - user code: report whatever its import raised
        raise ImportPathError(
            f"cannot import module {module_name!r} for {what} {path!r}: {type(exc).__name__}: {exc}"
        ) from exc
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ImportPathError(f"module {module_name!r} has no attribute {attr!r} ({what} {path!r})")
        obj = getattr(obj, part)
    return obj


def lookup(name: str, registry: dict[str, Any], what: str, expected: str, error: type[Exception]) -> Any:
    """A registered ``name`` in ``registry``, or the callable its import path names; ``error``
    (e.g. ``DataReadError``) saying why not. ``expected`` words the callable's contract
    ("a function reader(path, **options) -> RawDataset")."""
    if is_import_path(name):
        try:
            obj = import_object(name, what)
        except ImportPathError as exc:
            raise error(str(exc)) from None
        if not callable(obj):
            raise error(f"{what} {name!r} is not callable (found {type(obj).__name__}); expected {expected}")
        return obj
    try:
        return registry[name]
    except (KeyError, TypeError):
        raise error(f"unknown {what} {name!r}; known: {', '.join(sorted(registry))} "
                    "or a 'package.module:function' import path") from None
