"""Every consumer of a metric's direction agrees with the one table, for every metric the evaluators emit."""

from __future__ import annotations

import pytest

from resnetlab.evaluation.plots import _best_epoch
from resnetlab.metric_direction import lower_is_better
from resnetlab.studies.spec import metric_names, parse_search
from resnetlab.training.monitor import Monitor

EMITTED = sorted(set(metric_names("classification")) | set(metric_names("regression")))
# Names users give their own metrics, which the four old definitions read differently.
OTHERS = ["top1_error", "mse", "mae", "clip_mae", "nll_loss", "feature_zero_share"]
LOWER = {"loss", "rmse", "clip_rmse", "top1_error", "mse", "mae", "clip_mae", "nll_loss"}


def test_the_evaluators_emit_what_this_test_expects():
    assert {"accuracy", "loss", "mpca", "srcc", "rmse", "clip_rmse", "top5"} <= set(EMITTED)


@pytest.mark.parametrize("name", EMITTED + OTHERS)
def test_the_table_says_which_metrics_are_lower_is_better(name):
    assert lower_is_better(f"val/{name}") == (name in LOWER)
    assert lower_is_better(name) == (name in LOWER)


@pytest.mark.parametrize("name", EMITTED + OTHERS)
def test_monitor_plots_and_search_agree_with_the_table(name):
    metric = f"val/{name}"
    lower = lower_is_better(metric)

    monitor = Monitor(metric)
    assert monitor.maximize is not lower
    monitor.update(1.0, 1)
    assert monitor.update(0.5, 2) is lower  # a smaller value is an improvement exactly when lower is better

    history = [{"epoch": 1, metric: 3.0}, {"epoch": 2, metric: 1.0}, {"epoch": 3, metric: 2.0}]
    assert _best_epoch(history, metric) == (2 if lower else 1)

    spec = parse_search({"base": ["preset=test"], "metric": metric,
                         "space": {"optim.lr": {"type": "loguniform", "low": 1e-3, "high": 1e-1}}}, name="s")
    assert spec.direction == ("minimize" if lower else "maximize")
