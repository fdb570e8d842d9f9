"""Few-shot calibrated ranking: fit distilled accuracy on proxy values, re-rank the rest.

After ``--validate N`` has distilled N candidates, a small model (median imputation of
non-finite values, standardisation, ridge regression with its penalty chosen by efficient
leave-one-out inside the fit: :class:`sklearn.linear_model.RidgeCV`) maps each candidate's
oriented proxy values (log first for heavy-tailed proxies, :func:`~autokd.search.arch.ranking.oriented`)
plus log parameter count to distilled accuracy, and predicts it for the candidates that were
not distilled.

How good the calibrated ranking is can only be measured on candidates it was **not** fitted
on: :func:`loo_predictions` refits without each candidate in turn and predicts only that one;
:func:`predict_held_out` refuses any candidate in :attr:`Calibration.fitted_keys`. Both raise
:class:`CalibrationLeak` rather than score a fitted candidate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
from sklearn.impute import SimpleImputer
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from autokd.search.arch.ranking import oriented

ALPHAS = tuple(float(a) for a in np.logspace(-2, 3, 11))
MIN_FIT = 4


class CalibrationLeak(AssertionError):
    """A calibrated prediction was asked for a candidate the model was fitted on."""


@dataclass(frozen=True)
class Observation:
    """One candidate: its key, raw proxy values (as computed), and distilled accuracy if known."""

    key: str
    values: Mapping[str, float]
    accuracy: float | None = None


@dataclass
class Calibration:
    features: list[str]
    model: Pipeline
    fitted_keys: frozenset[str]
    alpha: float
    coefficients: dict[str, float] = field(default_factory=dict)  # on standardised features

    def to_dict(self) -> dict[str, Any]:
        return {"features": self.features, "n_fitted": len(self.fitted_keys), "alpha": self.alpha,
                "coefficients": self.coefficients}


def feature_matrix(obs: Sequence[Observation], features: Sequence[str]) -> np.ndarray:
    """Rows = candidates, columns = oriented (higher is better) values, log for heavy-tailed
    proxies; non-finite -> nan (imputed by the fitted model)."""
    cols = [oriented(name, [o.values[name] for o in obs], log=True) for name in features]
    return np.column_stack(cols) if cols else np.zeros((len(obs), 0))


def fit_calibration(obs: Sequence[Observation], features: Sequence[str],
                    alphas: Sequence[float] = ALPHAS) -> Calibration:
    """Fit accuracy ~ features on ``obs`` (all must have an accuracy and distinct keys)."""
    keys = [o.key for o in obs]
    if len(set(keys)) != len(keys):
        raise ValueError("calibration: duplicate candidate keys")
    if len(obs) < MIN_FIT:
        raise ValueError(f"calibration needs at least {MIN_FIT} distilled candidates, got {len(obs)}")
    if any(o.accuracy is None or not math.isfinite(o.accuracy) for o in obs):
        raise ValueError("calibration: every fitted candidate needs a finite accuracy")
    x = feature_matrix(obs, features)
    y = np.array([o.accuracy for o in obs], dtype=np.float64)
    model = make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler(),
                          RidgeCV(alphas=list(alphas)))
    model.fit(x, y)
    ridge = model[-1]
    return Calibration(list(features), model, frozenset(keys), float(ridge.alpha_),
                       {n: float(c) for n, c in zip(features, ridge.coef_)})


def predict_held_out(cal: Calibration, obs: Sequence[Observation]) -> np.ndarray:
    """Predicted accuracy of candidates the model was NOT fitted on (else :class:`CalibrationLeak`)."""
    leaked = sorted(cal.fitted_keys & {o.key for o in obs})
    if leaked:
        raise CalibrationLeak(f"calibrated scores asked for {len(leaked)} candidate(s) it was fitted on: "
                              f"{', '.join(leaked[:3])}")
    if not obs:
        return np.zeros(0)
    return cal.model.predict(feature_matrix(obs, cal.features))


def loo_predictions(obs: Sequence[Observation], features: Sequence[str],
                    alphas: Sequence[float] = ALPHAS) -> np.ndarray:
    """Leave-one-out: for each candidate, fit on all the others and predict it alone."""
    out = np.empty(len(obs))
    for i, o in enumerate(obs):
        cal = fit_calibration([p for j, p in enumerate(obs) if j != i], features, alphas)
        out[i] = predict_held_out(cal, [o])[0]
    return out


def calibrated_report(validated: Sequence[Observation], rest: Sequence[Observation], features: Sequence[str],
                      top: int = 5) -> dict[str, Any]:
    """LOO predictions over the validated candidates (for τ) and, from a fit on all of them,
    the predicted accuracy of the others, best first (``top`` of them named)."""
    if len(validated) < MIN_FIT + 1:
        return {"features": list(features), "skipped": f"needs at least {MIN_FIT + 1} validated candidates"}
    loo = loo_predictions(validated, features)
    cal = fit_calibration(validated, features)
    pred = predict_held_out(cal, rest)
    order = sorted(range(len(rest)), key=lambda i: (-pred[i], rest[i].key))
    return {
        **cal.to_dict(),
        "loo": {o.key: float(p) for o, p in zip(validated, loo)},
        "top_unvalidated": [{"key": rest[i].key, "predicted_accuracy": float(pred[i])} for i in order[:top]],
    }
