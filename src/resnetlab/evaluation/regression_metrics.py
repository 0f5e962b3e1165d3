"""Regression metrics for quality-score style targets (e.g. mean opinion scores).

Rank correlation (SRCC, KRCC) measures monotonicity, Pearson (PLCC) linearity and RMSE
absolute error. "plcc_logistic" is PLCC after the 4-parameter logistic mapping that
VQEG recommends, which removes the penalty for a monotone but non-linear scale.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable

import numpy as np
from scipy import optimize, special, stats

log = logging.getLogger(__name__)


def logistic4(x: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    """VQEG 4-parameter logistic: (b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2.

    Written with `expit` so large |x - b3| / |b4| cannot overflow `exp`.
    """
    scale = abs(b4) + 1e-12  # |b4| -> 0 would divide by zero during the fit
    return (b1 - b2) * special.expit((x - b3) / scale) + b2


def _logistic4_jacobian(x: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    # Analytic derivatives: curve_fit's finite differences scale their step with the
    # parameter, so a centre b3 starting at 0 (centred scores) would never move.
    scale = abs(b4) + 1e-12
    s = special.expit((x - b3) / scale)
    slope = (b1 - b2) * s * (1.0 - s)
    return np.stack(
        [s, 1.0 - s, -slope / scale, -slope * (x - b3) / scale**2 * np.sign(b4)], axis=1
    )


def fit_logistic(pred: np.ndarray, target: np.ndarray) -> Callable[[np.ndarray], np.ndarray] | None:
    """Fit `logistic4` mapping predictions onto targets; None when the fit fails.

    Starting point: the curve spans the target range and is centred on the predictions
    with their spread as the slope scale, which converges on typical score data.
    """
    x = np.asarray(pred, dtype=np.float64).ravel()
    y = np.asarray(target, dtype=np.float64).ravel()
    if x.size < 4 or np.ptp(x) == 0:  # 4 parameters need at least 4 points and spread
        return None
    start = [y.max(), y.min(), float(np.mean(x)), float(np.std(x))]
    try:
        with warnings.catch_warnings():
            # OptimizeWarning (covariance not estimable) is harmless: we only use popt.
            warnings.simplefilter("ignore", optimize.OptimizeWarning)
            # With an exact Jacobian good fits converge in well under 100 calls; a cap
            # of 1000 bounds a hopeless fit to ~0.3 s on 10k samples instead of seconds.
            params, _ = optimize.curve_fit(
                logistic4, x, y, p0=start, jac=_logistic4_jacobian, maxfev=1000
            )
    except (RuntimeError, ValueError, FloatingPointError) as exc:
        log.debug("logistic fit failed, falling back to raw PLCC: %s", exc)
        return None
    if not np.all(np.isfinite(params)):
        return None
    return lambda values: logistic4(np.asarray(values, dtype=np.float64), *params)


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(stats.pearsonr(a, b).statistic)


def regression_metrics(
    pred: np.ndarray, target: np.ndarray, *, loss: float | None = None
) -> dict[str, float]:
    """SRCC, PLCC, KRCC, RMSE and logistic-fitted PLCC of predictions against targets.

    Constant predictions (or targets) have no defined correlation; scipy returns NaN
    with a warning. We report 0.0 instead: a model that outputs one value carries no
    ranking information, and a NaN would break "best epoch" selection and averaging.
    When the logistic fit does not converge, "plcc_logistic" falls back to raw PLCC.
    The fitted curve may be decreasing, so "plcc_logistic" is positive even for a model
    whose scores run opposite to the targets: read the direction from srcc or plcc.
    """
    x = np.asarray(pred, dtype=np.float64).ravel()
    y = np.asarray(target, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"pred has {x.size} values but target has {y.size}")
    if x.size < 2:
        raise ValueError(f"need at least 2 samples for correlations, got {x.size}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("pred or target contain NaN or inf (did training diverge?)")

    out: dict[str, float] = {}
    if loss is not None:
        out["loss"] = float(loss)
    degenerate = np.ptp(x) == 0 or np.ptp(y) == 0
    out["srcc"] = 0.0 if degenerate else float(stats.spearmanr(x, y).statistic)
    out["krcc"] = 0.0 if degenerate else float(stats.kendalltau(x, y).statistic)
    out["plcc"] = _pearson(x, y)
    mapping = None if degenerate else fit_logistic(x, y)
    mapped = None if mapping is None else mapping(x)
    # A fit that collapsed to a flat line is a failed fit too, not "no correlation".
    fitted = mapped is not None and np.ptp(mapped) > 0
    out["plcc_logistic"] = _pearson(mapped, y) if fitted else out["plcc"]
    out["rmse"] = float(np.sqrt(np.mean((x - y) ** 2)))
    return out
