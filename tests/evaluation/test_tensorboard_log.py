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
                                        "output.histograms=true", f"output.dir={tmp_path}", "output.name=tb"])
    accumulator = EventAccumulator(str(result.run_dir / "tensorboard"), size_guidance={"histograms": 0})
    accumulator.Reload()
    histograms = accumulator.Tags()["histograms"]
    assert "weights/conv1.weight" in histograms and "grads/conv1.weight" in histograms
    grads = accumulator.Histograms("grads/fc.weight")
    assert [event.step for event in grads] == [1, 2] and all(event.histogram_value.max > 0 for event in grads)


# ---------------------------------------------------------------- a study's runs in the HParams tab
@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Two runs of one study under <tmp>/runs/sweep/: lr 0.05 logging every step, lr 0.02 every 2nd."""
    pytest.importorskip("tensorboard")
    import resnetlab

    root = tmp_path_factory.mktemp("tb") / "runs" / "sweep"
    results = {}
    for name, lr, every in (("lr0.05", 0.05, 1), ("lr0.02", 0.02, 2)):
        results[name] = resnetlab.train(overrides=[
            "preset=test", "train.epochs=2", "train.threads=1", "output.tensorboard=true", f"optim.lr={lr}",
            f"output.log_steps={every}", f"output.dir={root}", f"output.name={name}"])
    return root, results


def _accumulator(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"histograms": 0, "scalars": 0})
    accumulator.Reload()
    return accumulator


def test_a_study_s_runs_sort_together_in_the_hparams_tab(study):
    """TensorBoard's own HParams backend, pointed at the study folder, lists both runs with their
    settings and final scores (what `tensorboard --logdir runs/sweep` shows)."""
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import api_pb2, backend_context, get_experiment, list_session_groups

    root, results = study
    mux = plugin_event_multiplexer.EventMultiplexer()
    mux.AddRunsFromDirectory(str(root))
    mux.Reload()
    backend = backend_context.Context(base_plugin.TBContext(
        logdir=str(root), multiplexer=mux, data_provider=data_provider.MultiplexerDataProvider(mux, str(root))))
    experiment = get_experiment.Handler(context.RequestContext(), backend, "", api_pb2.GetExperimentRequest()).run()
    differs = {info.name for info in experiment.hparam_infos if info.differs}
    assert differs == {"optim.lr", "output.log_steps", "output.name"}
    assert {"final/test/accuracy", "final/val/accuracy"} <= {m.name.tag for m in experiment.metric_infos}

    request = api_pb2.ListSessionGroupsRequest(
        start_index=0, slice_size=10, allowed_statuses=[api_pb2.STATUS_SUCCESS],
        col_params=[api_pb2.ColParams(hparam="optim.lr", order=api_pb2.ORDER_ASC)])
    groups = list_session_groups.Handler(context.RequestContext(), backend, "", request).run().session_groups
    assert [g.name for g in groups] == ["lr0.02", "lr0.05"]
    for group in groups:
        scores = {m.name.tag: m.value for m in group.metric_values}
        assert group.hparams["optim.lr"].number_value == float(group.name[2:])
        assert group.hparams["data.split_column"].string_value == "null"
        result = results[group.name]
        assert scores["final/test/accuracy"] == pytest.approx(result.test["accuracy"])
        assert scores["final/val/mpca"] == pytest.approx(result.val["mpca"])


def test_train_loss_and_lr_every_n_steps_and_no_histograms_by_default(study):
    _, results = study
    for name, every in (("lr0.05", 1), ("lr0.02", 2)):  # 128 images, batch 32: 4 steps an epoch
        accumulator = _accumulator(results[name].run_dir)
        assert [e.step for e in accumulator.Scalars("step/train_loss")] == list(range(every, 9, every))
        lrs = {e.step: e.value for e in accumulator.Scalars("step/lr")}
        # each epoch's last step has the lr the history reports for the epoch
        assert [lrs[4], lrs[8]] == pytest.approx([row["lr"] for row in results[name].history])
        assert all(np.isfinite(e.value) and e.value > 0 for e in accumulator.Scalars("step/train_loss"))
        assert accumulator.Tags()["histograms"] == []
