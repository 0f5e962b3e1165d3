import sys

import numpy as np
import pytest
import torch

from resnetlab.evaluation import tensorboard_log
from resnetlab.evaluation.tensorboard_log import TensorBoardLogger


def test_logger_writes_scalars_histograms_and_figure(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    model = torch.nn.Linear(3, 2)
    model(torch.randn(4, 3)).sum().backward()
    with TensorBoardLogger(tmp_path) as logger:
        assert logger.enabled
        logger.log_scalars({"val/accuracy": 0.5, "lr": np.float32(0.1)}, step=1)
        logger.log_scalars({"val/accuracy": 0.75}, step=2)
        logger.log_histograms(model, step=2)
        logger.log_figure_confusion(np.array([[3, 1], [0, 4]]), ["a", "b"], step=2)

    events = list(tmp_path.glob("events.out.tfevents.*"))
    assert len(events) == 1 and events[0].stat().st_size > 0
    accumulator = EventAccumulator(str(tmp_path), size_guidance={"images": 0})
    accumulator.Reload()
    tags = accumulator.Tags()
    assert {"val/accuracy", "lr"} <= set(tags["scalars"])
    assert [e.value for e in accumulator.Scalars("val/accuracy")] == [0.5, 0.75]
    assert {"weights/weight", "weights/bias", "grads/weight", "grads/bias"} <= set(
        tags["histograms"])
    assert "val/confusion_matrix" in tags["images"]


def test_histograms_skip_missing_grads_and_non_finite_weights(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    model = torch.nn.Linear(2, 2)
    with torch.no_grad():
        model.bias.fill_(float("nan"))
    with TensorBoardLogger(tmp_path) as logger:
        logger.log_histograms(model, step=0)
    accumulator = EventAccumulator(str(tmp_path))
    accumulator.Reload()
    assert accumulator.Tags()["histograms"] == ["weights/weight"]


def test_logger_is_a_no_op_without_tensorboard(tmp_path, monkeypatch):
    # A None entry in sys.modules makes the import raise ImportError.
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    monkeypatch.setattr(tensorboard_log, "_warned_missing", False)
    with pytest.warns(RuntimeWarning, match="TensorBoard logging is off"):
        logger = TensorBoardLogger(tmp_path / "tb")
    assert not logger.enabled
    logger.log_scalars({"loss": 1.0}, step=0)
    logger.log_histograms(torch.nn.Linear(2, 2), step=0)
    logger.log_figure_confusion(np.eye(2, dtype=int), ["a", "b"], step=0)
    logger.close()
    assert not (tmp_path / "tb").exists()
    # the warning is given once per process, not once per logger
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TensorBoardLogger(tmp_path / "tb2").close()


def test_a_training_run_logs_the_last_steps_gradients_each_epoch(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    import resnetlab

    result = resnetlab.train(overrides=["preset=test", "train.epochs=2", "train.threads=1", "output.tensorboard=true",
                                        f"output.dir={tmp_path}", "output.name=tb"])
    accumulator = EventAccumulator(str(result.run_dir / "tensorboard"), size_guidance={"histograms": 0})
    accumulator.Reload()
    histograms = accumulator.Tags()["histograms"]
    assert "weights/conv1.weight" in histograms and "grads/conv1.weight" in histograms
    grads = accumulator.Histograms("grads/fc.weight")
    assert [event.step for event in grads] == [1, 2] and all(event.histogram_value.max > 0 for event in grads)
