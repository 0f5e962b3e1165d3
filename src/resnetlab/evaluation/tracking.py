"""Where a training run reports as it goes: TensorBoard and, when asked, MLflow.

The loop knows nothing of either: it calls ``on_step`` every few optimizer steps and
``on_epoch`` with each epoch's history row; ``finish`` records the final scores (the best
weights on val and test) against the run's settings, ``close`` ends whatever is still open.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from resnetlab.evaluation.mlflow_log import MlflowLogger
from resnetlab.evaluation.tensorboard_log import TensorBoardLogger


class Tracking:
    """TensorBoard (optional) and MLflow (optional) for one run folder."""

    def __init__(self, run_dir: Path, *, model: torch.nn.Module, params: Mapping[str, Any], tensorboard: bool,
                 histograms: bool = False, mlflow_uri: str | None = None, experiment: str = "resnetlab") -> None:
        self.run_dir, self._model, self._params, self._histograms = Path(run_dir), model, dict(params), histograms
        self._last_epoch = 0
        # MLflow first: a bad URI or a missing extra stops the run before any event file is written.
        self.mlflow = MlflowLogger(mlflow_uri, run_dir=self.run_dir, experiment=experiment, params=self._params) \
            if mlflow_uri else None
        self.tb = TensorBoardLogger(self.run_dir / "tensorboard") if tensorboard else None

    def on_step(self, step: int, loss: float, lr: float) -> None:
        """The loss of the step's last micro-batch and its lr, at the optimizer step count."""
        if self.tb is not None:
            self.tb.log_scalars({"step/train_loss": loss, "step/lr": lr}, step)

    def on_epoch(self, row: Mapping[str, Any]) -> None:
        scalars = {k: v for k, v in row.items() if isinstance(v, (int, float)) and k != "epoch"}
        self._last_epoch = int(row["epoch"])
        if self.tb is not None:
            self.tb.log_scalars(scalars, self._last_epoch)
            if self._histograms:
                self.tb.log_histograms(self._model, self._last_epoch)
        if self.mlflow is not None:
            self.mlflow.log_metrics(scalars, self._last_epoch)

    def log_figure_confusion(self, confusion: np.ndarray, class_names: Sequence[str], step: int) -> None:
        if self.tb is not None:
            self.tb.log_figure_confusion(confusion, class_names, step)

    def finish(self, final: Mapping[str, Mapping[str, Any]]) -> None:
        """``final``: each split's scores with the best weights, e.g. {"val": {...}, "test": {...}},
        logged as final/<split>/<metric>; then the settings against them (HParams) and, in MLflow,
        the run folder."""
        scalars = {f"final/{split}/{k}": float(v) for split, values in final.items()
                   for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if self.tb is not None:
            self.tb.log_scalars(scalars, self._last_epoch)
            self.tb.log_hparams(self._params, trial=self.run_dir.name)
            self.tb.flush()  # the artifacts below include the event file
        if self.mlflow is not None:
            self.mlflow.finish(scalars, self._last_epoch)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.mlflow is not None:
            self.mlflow.close()
