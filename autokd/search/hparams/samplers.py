"""Optuna samplers by name (both backends draw trial parameters through Optuna)."""

from __future__ import annotations

import warnings
from typing import Callable

from autokd.search.hparams.space import Space
from autokd.search.hparams.spec import SearchSpec


def _tpe(spec: SearchSpec, space: Space):
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # group=True models the conditional sub-spaces (one per method) separately;
        # constant_liar keeps concurrent trials from piling onto the same point.
        return optuna.samplers.TPESampler(seed=spec.sampler.seed, n_startup_trials=spec.sampler.n_startup_trials,
                                          multivariate=True, group=True, constant_liar=True)


def _random(spec: SearchSpec, space: Space):
    import optuna

    return optuna.samplers.RandomSampler(seed=spec.sampler.seed)


def _nsga2(spec: SearchSpec, space: Space):
    import optuna

    return optuna.samplers.NSGAIISampler(seed=spec.sampler.seed, population_size=spec.sampler.population_size)


def _grid(spec: SearchSpec, space: Space):
    import optuna

    return optuna.samplers.GridSampler(space.grid(), seed=spec.sampler.seed)


SAMPLERS: dict[str, Callable] = {"tpe": _tpe, "random": _random, "nsga2": _nsga2, "grid": _grid}


def make_sampler(spec: SearchSpec, space: Space):
    return SAMPLERS[spec.sampler_type](spec, space)
