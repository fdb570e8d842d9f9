"""Few-shot calibrated ranking: fits, predicts and never scores a candidate it was fitted on."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import kendalltau

from autokd.search.arch.calibrate import (
    CalibrationLeak,
    Observation,
    calibrated_report,
    feature_matrix,
    fit_calibration,
    loo_predictions,
    predict_held_out,
)


def _obs(n=20, seed=0, noise=0.002):
    """Accuracy rises with log params and with zico; snip is noise."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        p = float(rng.integers(1_000, 20_000))
        z = float(rng.normal())
        acc = 0.5 + 0.04 * np.log(p) + 0.02 * z + noise * rng.normal()
        out.append(Observation(f"c{i:02d}", {"params": p, "zico": z, "snip": float(rng.lognormal())}, acc))
    return out


def test_feature_matrix_orients_and_logs():
    obs = [Observation("a", {"params": 100.0, "diswot_relation": 0.5, "naswot": float("-inf")}),
           Observation("b", {"params": 1000.0, "diswot_relation": 0.2, "naswot": 3.0})]
    x = feature_matrix(obs, ["params", "diswot_relation", "naswot"])
    assert x[:, 0] == pytest.approx(np.log([100.0, 1000.0]))  # heavy-tailed: log
    assert x[:, 1] == pytest.approx([-0.5, -0.2])  # a distance: negated so higher is better
    assert np.isnan(x[0, 2]) and x[1, 2] == 3.0  # non-finite -> nan (imputed when fitted)


def test_fit_recovers_the_signal_and_ranks_held_out_candidates():
    train, test = _obs(30, seed=1), _obs(15, seed=2)
    test = [Observation("t" + o.key, o.values, o.accuracy) for o in test]
    cal = fit_calibration(train, ["params", "zico", "snip"])
    pred = predict_held_out(cal, test)
    assert kendalltau(pred, [o.accuracy for o in test]).statistic > 0.7
    assert cal.coefficients["params"] > 0 and cal.coefficients["zico"] > 0
    assert abs(cal.coefficients["snip"]) < cal.coefficients["params"]
    assert cal.to_dict()["n_fitted"] == 30


def test_scoring_a_fitted_candidate_is_refused():
    obs = _obs(10)
    cal = fit_calibration(obs, ["params", "zico"])
    with pytest.raises(CalibrationLeak, match="fitted on"):
        predict_held_out(cal, [obs[3]])
    with pytest.raises(CalibrationLeak):  # even mixed with new ones, and matched by key
        predict_held_out(cal, [Observation("new", obs[0].values), Observation(obs[5].key, obs[5].values)])


def test_loo_predicts_each_candidate_from_the_others_only():
    obs = _obs(12, seed=3)
    # an outlier: a fit that saw it would be pulled toward it; the LOO prediction is not
    outlier = Observation("out", obs[0].values, 0.10)
    obs = [outlier] + obs[1:]
    loo = loo_predictions(obs, ["params", "zico"])
    in_sample = fit_calibration(obs, ["params", "zico"]).model.predict(feature_matrix([outlier], ["params", "zico"]))
    held_out = fit_calibration(obs[1:], ["params", "zico"])
    assert loo[0] == pytest.approx(predict_held_out(held_out, [outlier])[0])
    assert abs(loo[0] - 0.10) > abs(in_sample[0] - 0.10)


def test_fit_rejects_duplicates_too_few_and_missing_accuracy():
    obs = _obs(6)
    with pytest.raises(ValueError, match="duplicate"):
        fit_calibration(obs + [obs[0]], ["params"])
    with pytest.raises(ValueError, match="at least"):
        fit_calibration(obs[:3], ["params"])
    with pytest.raises(ValueError, match="finite accuracy"):
        fit_calibration(obs[:5] + [Observation("x", obs[0].values)], ["params"])


def test_report_reranks_only_undistilled_candidates():
    validated, rest = _obs(12, seed=4), _obs(8, seed=5)
    rest = [Observation("r" + o.key, o.values) for o in rest]
    rep = calibrated_report(validated, rest, ["params", "zico"], top=3)
    assert set(rep["loo"]) == {o.key for o in validated}
    keys = [c["key"] for c in rep["top_unvalidated"]]
    assert len(keys) == 3 and not set(keys) & set(rep["loo"])
    preds = [c["predicted_accuracy"] for c in rep["top_unvalidated"]]
    assert preds == sorted(preds, reverse=True)
    assert "skipped" in calibrated_report(validated[:4], rest, ["params"])


def test_validation_scores_each_candidate_by_a_fit_without_it():
    from types import SimpleNamespace

    from autokd.search.arch.validate import CALIBRATED, calibrate

    obs = _obs(14, seed=6)
    ranked = [SimpleNamespace(candidate=SimpleNamespace(key=o.key), values=dict(o.values)) for o in obs]
    spec = SimpleNamespace(combined_proxies=["zico", "snip"], top_k=2)
    result = SimpleNamespace(ranked=ranked, proxies=["zico", "snip", "params"], spec=spec)
    chosen = [0, 2, 3, 5, 7, 8, 10, 11]
    rows = [{"key": obs[i].key, "accuracy": obs[i].accuracy, "scores": {}} for i in chosen]
    rep = calibrate(result, chosen, rows)
    assert rep["features"] == ["zico", "snip", "params"]  # every computed proxy, baselines included
    expected = loo_predictions([obs[i] for i in chosen], rep["features"])
    assert [r["scores"][CALIBRATED] for r in rows] == pytest.approx(list(expected))
    assert {c["key"] for c in rep["top_unvalidated"]} <= {obs[i].key for i in range(14) if i not in chosen}
