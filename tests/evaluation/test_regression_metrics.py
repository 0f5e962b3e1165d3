import importlib
import warnings

import numpy as np
import pytest
from scipy import stats

from resnetlab.evaluation.regression_metrics import logistic4, regression_metrics

# The package re-exports the function under the module's name, so fetch the module itself.
module = importlib.import_module("resnetlab.evaluation.regression_metrics")


def test_matches_scipy_on_noisy_data():
    rng = np.random.default_rng(0)
    target = rng.uniform(1, 5, size=60)
    pred = target + rng.normal(scale=0.5, size=60)
    result = regression_metrics(pred, target, loss=0.25)
    assert result["loss"] == 0.25
    assert result["srcc"] == pytest.approx(stats.spearmanr(pred, target).statistic)
    assert result["plcc"] == pytest.approx(stats.pearsonr(pred, target).statistic)
    assert result["krcc"] == pytest.approx(stats.kendalltau(pred, target).statistic)
    assert result["rmse"] == pytest.approx(np.sqrt(np.mean((pred - target) ** 2)))
    # the logistic can only help a least-squares fit, never hurt it by much
    assert result["plcc_logistic"] >= result["plcc"] - 1e-3


def test_perfect_monotone_nonlinear_relation():
    pred = np.linspace(-3, 3, 40)
    target = logistic4(pred, 5.0, 1.0, 0.5, 0.6)  # sigmoid-shaped, strictly increasing
    result = regression_metrics(pred, target)
    assert result["srcc"] == pytest.approx(1.0)
    assert result["krcc"] == pytest.approx(1.0)
    assert result["plcc"] < 0.97  # linear correlation is hurt by the curvature
    assert result["plcc_logistic"] == pytest.approx(1.0, abs=1e-6)


def test_exponential_relation_ranks_perfectly():
    pred = np.linspace(0, 1, 30)
    result = regression_metrics(pred, np.exp(4 * pred))
    assert result["srcc"] == pytest.approx(1.0)
    assert result["krcc"] == pytest.approx(1.0)
    assert result["plcc"] < 1.0


def test_constant_predictions_give_zero_not_nan():
    target = np.arange(10, dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ConstantInputWarning may leak out
        result = regression_metrics(np.full(10, 3.0), target)
    assert result["srcc"] == result["plcc"] == result["krcc"] == result["plcc_logistic"] == 0.0
    assert result["rmse"] == pytest.approx(np.sqrt(np.mean((3.0 - target) ** 2)))


def test_failed_logistic_fit_falls_back_to_raw_plcc(monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("Optimal parameters not found")

    monkeypatch.setattr(module.optimize, "curve_fit", fail)
    rng = np.random.default_rng(1)
    target = rng.normal(size=20)
    result = regression_metrics(target + rng.normal(size=20), target)
    assert result["plcc_logistic"] == result["plcc"]


def test_column_vectors_are_accepted():
    target = np.arange(8, dtype=float)
    result = regression_metrics(target[:, None] * 2, target)
    assert result["plcc"] == pytest.approx(1.0)


def test_bad_inputs():
    with pytest.raises(ValueError, match="3 values but target has 4"):
        regression_metrics(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="at least 2"):
        regression_metrics(np.zeros(1), np.zeros(1))
    with pytest.raises(ValueError, match="NaN"):
        regression_metrics(np.array([1.0, np.nan]), np.array([1.0, 2.0]))
