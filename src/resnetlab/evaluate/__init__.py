"""Judging a run: metrics, plots, reports, comparisons, TensorBoard, and the inference path."""

from resnetlab.evaluate.inference import Outputs, run_model
from resnetlab.evaluate.metrics import ClassificationReport, classification_metrics
from resnetlab.evaluate.regression_metrics import regression_metrics

__all__ = ["ClassificationReport", "Outputs", "classification_metrics", "regression_metrics", "run_model"]
