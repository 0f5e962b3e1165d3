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


def test_settings_that_are_valid_but_probably_not_meant_are_named():
    from resnetlab.api.assemble import setting_warnings
    from resnetlab.config import build_config

    assert setting_warnings(build_config(["preset=quick"]), channels=1) == []
    lines = setting_warnings(build_config(["augment.saturation=0.5", "train.monitor=val/loss",
                                           "train.monitor_mode=max", "model.freeze=backbone"]), channels=1)
    assert len(lines) == 3
    assert lines[0].startswith("warning: model.freeze=backbone with random weights")
    assert "augment.saturation and augment.hue change nothing on 1-channel images" in lines[1]
    assert "train.monitor_mode=max with val/loss: the best epoch is the one with the highest loss" in lines[2]
    assert setting_warnings(build_config(["augment.saturation=0.5"]), channels=3) == []
