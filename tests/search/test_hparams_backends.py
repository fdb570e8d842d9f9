"""The search backend registry and the search errors' common base."""

from __future__ import annotations

import pytest

from autokd.search.hparams.backends import available_backends, get_backend
from autokd.search.hparams.errors import SearchError, StudyMismatch


def test_builtin_backends():
    assert available_backends() == ["ray", "optuna"]
    from autokd.search.hparams.optuna_backend import run_optuna

    assert get_backend("optuna").load() is run_optuna


def test_unknown_backend():
    with pytest.raises(ValueError, match="unknown backend 'nope'; backends: ray, optuna"):
        get_backend("nope")


def test_ray_preflight_rejects_bad_address():
    from autokd.search.hparams.address import RayAddressError

    with pytest.raises(RayAddressError):
        get_backend("ray").check(address="127.0.0.1:1")
    get_backend("optuna").check(address="127.0.0.1:1")  # no preflight: nothing raised


def test_errors_share_a_base():
    from autokd.search.hparams import optuna_backend

    assert issubclass(StudyMismatch, SearchError) and issubclass(SearchError, RuntimeError)
    assert optuna_backend.StudyMismatch is StudyMismatch


def test_trial_is_backend_neutral():
    import autokd.search.hparams.trial as trial

    assert not hasattr(trial, "RayReporter") and not hasattr(trial, "ray_trainable")
    from autokd.search.hparams.ray_report import RayReporter, ray_trainable

    assert callable(ray_trainable) and RayReporter.__module__.endswith("ray_report")
