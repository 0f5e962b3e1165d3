"""Judging a run: metrics, plots, reports, comparisons, TensorBoard, and the inference path.

The function users call is :func:`resnetlab.evaluate` (:func:`resnetlab.api.evaluate`).
"""

from resnetlab.evaluation.inference import Outputs, run_model
from resnetlab.evaluation.metrics import ClassificationReport, classification_metrics
from resnetlab.evaluation.regression_metrics import regression_metrics

__all__ = ["ClassificationReport", "Outputs", "classification_metrics", "regression_metrics", "run_model"]
