"""A thin TensorBoard writer for scalars, HParams, parameter histograms and confusion matrices.

TensorBoard is a convenience, not a requirement: when the `tensorboard` package cannot
be imported, the logger warns once and every method does nothing, so training runs on.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

_warned_missing = False


def _summary_writer_class() -> Any:
    """SummaryWriter, or None (with one warning per process) when tensorboard is missing."""
    global _warned_missing
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        if not _warned_missing:
            warnings.warn(
                f"TensorBoard logging is off: {exc}; pip install 'resnetlab[tensorboard]' to enable it "
                "(or set output.tensorboard=false)",
                RuntimeWarning,
                stacklevel=3,
            )
            _warned_missing = True
        return None
    return SummaryWriter


class TensorBoardLogger:
    """Writes event files under `log_dir`; a no-op when tensorboard is not installed."""

    def __init__(self, log_dir: str | Path) -> None:
        self.log_dir = Path(log_dir)
        writer_class = _summary_writer_class()
        self._writer = writer_class(log_dir=str(self.log_dir)) if writer_class else None

    @property
    def enabled(self) -> bool:
        return self._writer is not None

    def log_scalars(self, scalars: Mapping[str, float], step: int) -> None:
        """One point per name ("val/accuracy", "lr", ...) at `step`."""
        if self._writer is None:
            return
        for name, value in scalars.items():
            self._writer.add_scalar(name, float(value), global_step=step)

    def log_hparams(self, hparams: Mapping[str, Any], *, trial: str) -> None:
        """The run's settings as one HParams session, ended as a success.

        Only the session is written, no experiment summary: TensorBoard then builds the HParams
        table from every session under --logdir (settings that differ between runs first) and takes
        each session's metrics from its own scalars, so the runs of a study sort side by side by
        their final scores. An experiment summary per run would make it show one run's columns only.
        """
        if self._writer is None:
            return
        from tensorboard.compat.proto.summary_pb2 import Summary
        from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2, summary_v2

        values = {k: v if isinstance(v, (bool, int, float, str)) else _hparam_text(v) for k, v in hparams.items()}
        end = plugin_data_pb2.HParamsPluginData(session_end_info=plugin_data_pb2.SessionEndInfo(
            status=api_pb2.STATUS_SUCCESS, end_time_secs=time.time()))
        end_pb = Summary()  # tensorboard's own session_end_pb imports TensorFlow
        end_pb.value.add(tag=metadata.SESSION_END_INFO_TAG, metadata=metadata.create_summary_metadata(end),
                         tensor=metadata.NULL_TENSOR)
        writer = self._writer._get_file_writer()
        writer.add_summary(summary_v2.hparams_pb(values, trial_id=trial))
        writer.add_summary(end_pb)

    def log_histograms(self, model: torch.nn.Module, step: int) -> None:
        """Weights as "weights/<name>" and, when present, gradients as "grads/<name>"."""
        if self._writer is None:
            return
        for name, param in model.named_parameters():
            self._add_histogram(f"weights/{name}", param, step)
            if param.grad is not None:
                self._add_histogram(f"grads/{name}", param.grad, step)

    def _add_histogram(self, tag: str, tensor: torch.Tensor, step: int) -> None:
        values = tensor.detach().float().cpu().numpy()
        # TensorBoard rejects NaN/inf; a diverged layer must not also crash the logger.
        if values.size == 0 or not np.isfinite(values).all():
            return
        self._writer.add_histogram(tag, values, global_step=step)

    def log_figure_confusion(
        self,
        confusion: np.ndarray,
        class_names: Sequence[str],
        step: int,
        *,
        tag: str = "val/confusion_matrix",
        normalize: bool = True,
    ) -> None:
        """The confusion matrix rendered as an image under `tag`."""
        if self._writer is None:
            return
        # Imported here so a logger used only for scalars does not load matplotlib.
        from resnetlab.evaluation.plots import confusion_matrix_figure

        figure = confusion_matrix_figure(confusion, class_names, normalize=normalize)
        self._writer.add_figure(tag, figure, global_step=step, close=True)

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> TensorBoardLogger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _hparam_text(value: Any) -> str:
    """A setting as it is typed in an override: null, [0.9, 0.999]."""
    return "null" if value is None else str(value)
