"""The Python face of resnetlab: ``train``, ``evaluate``, ``predict``, ``summary``, ``export``, ``explain``.

This package is the composition root: it turns the validated config into explicit typed
arguments for the data, model, train and evaluate packages, which never see the config as
a whole. The command line is a thin layer over these functions.
"""

from resnetlab.api.assemble import Task, build_model
from resnetlab.api.evaluation import EvalResult, evaluate, summary
from resnetlab.api.explanation import ExplainResult, explain
from resnetlab.api.export import ExportResult, export
from resnetlab.api.prediction import PredictResult, collect_images, predict
from resnetlab.api.trained import Trained, load_trained
from resnetlab.api.training import TrainResult, train

__all__ = ["EvalResult", "ExplainResult", "ExportResult", "PredictResult", "Task", "TrainResult", "Trained", "build_model", "collect_images",
           "evaluate", "explain", "export", "load_trained", "predict", "summary", "train"]
