"""The composition root's pieces that the end-to-end tests do not pin down."""

import warnings

import numpy as np
import pytest

from resnetlab.api.assemble import Task


def test_regression_loss_of_huge_outputs_is_finite_and_quiet():
    # A barely trained model in eval mode can emit outputs whose float32 square overflows.
    task = Task("regression", [], None)
    outputs = np.array([[3e20], [-2e20], [1.0]], dtype=np.float32)
    targets = np.array([0.5, 0.1, 0.9], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        scalars, _ = task.metrics(outputs, targets)
    assert np.isfinite(scalars["loss"]) and scalars["loss"] == pytest.approx((9e40 + 4e40) / 3, rel=1e-3)
