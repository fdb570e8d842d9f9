"""Hyperparameter search over a pipeline spec: Ray Tune + Optuna (or Optuna alone).

- :mod:`.spec`: the pydantic search spec (``search_spaces/*.yaml``) and its validation;
- :mod:`.objectives`: the metrics a search can optimise;
- :mod:`.space`: the define-by-run Optuna space (conditional per-method parameters) and the
  spec patch of a trial;
- :mod:`.inputs`: the prepared data and teacher outputs, made once before a search;
- :mod:`.trial`: one trial = the pipeline's distill stage with the spec patched;
- :mod:`.ray_backend` / :mod:`.optuna_backend`: the engines;
- :mod:`.results`: trials.csv/json, best.yaml, pareto.json/png, ``--apply``;
- :mod:`.run`: :func:`run_search`, what ``autokd search hparams`` calls.

Nothing heavy is imported here (Ray and Optuna load inside the functions that use them).
"""

from autokd.search.hparams.spec import LoadedSearch, SearchSpec, load_search_spec

__all__ = ["LoadedSearch", "SearchSpec", "load_search_spec", "run_search", "apply_only"]


def __getattr__(name):
    if name in ("run_search", "apply_only"):
        from autokd.search.hparams import run

        return getattr(run, name)
    raise AttributeError(name)
