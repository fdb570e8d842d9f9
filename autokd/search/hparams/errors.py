"""The errors of a hyperparameter search that cannot start or continue (exit 2 in the CLI).

Standard library only, so the CLI catches them without importing Ray or Optuna.
"""

from __future__ import annotations

__all__ = ["SearchError", "StudyMismatch"]


class SearchError(RuntimeError):
    """A search cannot start or continue (nothing to resume, an old search in the way)."""


class StudyMismatch(SearchError):
    """The storage holds a study of the same name made by another search spec."""
