"""Clip-level metrics: frames' probabilities or scores averaged per clip."""

import numpy as np
import pytest

from resnetlab.evaluation.clips import clip_classification_metrics, clip_regression_metrics


def test_clip_decision_is_the_mean_of_frame_probabilities():
    # clip a (class 0): frames say 0, 0, 1 -> 0, right. clip b (class 1): one confident 0 outweighs two
    # hesitant 1s -> 0, wrong. clip c (class 1): 1, right.
    logits = np.log(np.array([[0.9, 0.1], [0.8, 0.2], [0.4, 0.6],
                              [0.99, 0.01], [0.45, 0.55], [0.45, 0.55],
                              [0.2, 0.8]]))
    targets = np.array([0, 0, 0, 1, 1, 1, 1])
    groups = np.array(["a", "a", "a", "b", "b", "b", "c"])
    scalars = clip_classification_metrics(logits, targets, groups)
    assert scalars["clip_accuracy"] == pytest.approx(2 / 3)
    assert scalars["clip_mpca"] == pytest.approx((1.0 + 0.5) / 2)  # class 0: 1/1, class 1: 1/2


def test_clip_regression_correlates_clip_means():
    scores = np.array([1.0, 3.0, 10.0, 12.0, 6.0])
    targets = np.array([2.0, 2.0, 11.0, 11.0, 6.0])
    groups = np.array([0, 0, 1, 1, 2])
    scalars = clip_regression_metrics(scores, targets, groups)
    assert scalars["clip_srcc"] == pytest.approx(1.0) and scalars["clip_rmse"] == pytest.approx(0.0, abs=1e-9)
    assert clip_regression_metrics(scores, targets, np.zeros(5)) == {}  # one clip: no correlation
