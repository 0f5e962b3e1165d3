"""fit() on its own: a two-layer model, plain parts, no config and no command line."""

import functools

import numpy as np
import pytest
import torch
from torch import nn

from resnetlab.data.loader import BatchLoader
from resnetlab.training.checkpointer import Checkpointer
from resnetlab.training.history import History
from resnetlab.training.loop import (
    Control,
    Diverged,
    LoopState,
    StagePlan,
    Stages,
    StepRules,
    TrainParts,
    fit,
)
from resnetlab.training.monitor import Monitor
from resnetlab.training.optim import build_optimizer
from resnetlab.training.schedule import LrSchedule
from resnetlab.training.signals import Interrupted, StopRequest

N, SIDE = 24, 4
_rng = np.random.default_rng(0)
IMAGES = _rng.integers(0, 256, size=(N, 1, SIDE, SIDE), dtype=np.uint8)
LABELS = (IMAGES.reshape(N, -1).mean(axis=1) > 127).astype(np.int64)


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(SIDE * SIDE, 8), nn.ReLU(), nn.Linear(8, 2))


def _to_float(images, targets):
    return images.float() / 255, targets


def _parts(model, *, batch_size=4, accumulate=1, epochs=3, momentum=0.9, evaluate=None, patience=0,
           loss_fn=None, save=None, checkpoint_steps=0):
    loader = BatchLoader(IMAGES, LABELS, batch_size=batch_size, device="cpu", shuffle=True, seed=1)

    def val_loss():
        with torch.no_grad():
            logits = model(torch.from_numpy(IMAGES).float() / 255)
        return {"val/loss": float(nn.functional.cross_entropy(logits, torch.from_numpy(LABELS)))}

    return TrainParts(
        model=model, loader=loader, augment=_to_float, loss_fn=loss_fn or nn.functional.cross_entropy,
        optimizer=build_optimizer(model, name="sgd", lr=0.1, momentum=momentum, weight_decay=1e-4),
        schedule=functools.partial(LrSchedule, name="cosine", warmup_epochs=1.0),
        stages=Stages([StagePlan(epochs=epochs, freeze="none", lr=0.1)]),
        evaluate=evaluate or val_loss, monitor=Monitor("val/loss", patience=patience), history=History(),
        save=save or (lambda kind, loop: None),
        rules=StepRules(accumulate=accumulate, checkpoint_steps=checkpoint_steps), control=Control())


def _checkpointed(parts, folder):
    stateful = {"model": parts.model, "optimizer": parts.optimizer, "monitor": parts.monitor,
                "history": parts.history, "loader": parts.loader}
    checkpointer = Checkpointer(folder, stateful, meta={"class_names": ["dark", "bright"]},
                                best_extra=lambda: {"metrics": parts.history.rows[-1]})
    parts.save = checkpointer.save
    return checkpointer


def _stop_at(call: int, stop: StopRequest):
    """A loss that asks the loop to stop at its ``call``-th micro-batch, as a Ctrl-C would."""
    calls = {"n": 0}

    def loss(outputs, targets):
        calls["n"] += 1
        if calls["n"] == call:
            stop.requested = "SIGINT"
        return nn.functional.cross_entropy(outputs, targets)

    return loss


def test_a_run_stopped_mid_epoch_and_resumed_ends_with_the_weights_of_an_uninterrupted_one(tmp_path):
    straight = _parts(_model())
    fit(straight)

    stop = StopRequest()
    stopped = _parts(_model(), loss_fn=_stop_at(8, stop))  # 6 steps an epoch: mid second epoch
    stopped.control.stop = stop
    _checkpointed(stopped, tmp_path)
    with pytest.raises(Interrupted):
        fit(stopped)

    resumed = _parts(_model(seed=1))  # other initial weights: everything must come from last.pt
    loop = _checkpointed(resumed, tmp_path).restore(tmp_path / "last.pt")
    assert (loop["epoch"], loop["step"]) == (1, 8)
    fit(resumed, LoopState(**loop))
    for key, value in straight.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key
    assert [r["train/loss"] for r in resumed.history.rows] == [r["train/loss"] for r in straight.history.rows]


def test_best_checkpoint_holds_the_weights_and_metadata_but_no_optimizer(tmp_path):
    parts = _parts(_model(), epochs=1)
    _checkpointed(parts, tmp_path)
    fit(parts)
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    assert {"model", "class_names", "metrics"} <= set(best) and "optimizer" not in best and "loader" not in best
    assert best["metrics"]["val/loss"] == parts.history.rows[0]["val/loss"]
    assert "optimizer" in torch.load(tmp_path / "last.pt", weights_only=True)


def test_k_micro_batches_accumulated_step_like_one_batch_k_times_larger():
    one = _parts(_model(), batch_size=8, accumulate=1, epochs=1, momentum=0.0)
    three = _parts(_model(), batch_size=8 // 2, accumulate=2, epochs=1, momentum=0.0)
    fit(one)
    state = fit(three)
    assert state.step == 3  # 24 images, 8 per optimizer step
    for key, value in one.model.state_dict().items():
        torch.testing.assert_close(three.model.state_dict()[key], value, rtol=1e-5, atol=1e-6)


def test_early_stopping_ends_the_run_after_patience_epochs_without_improvement():
    parts = _parts(_model(), epochs=10, patience=2, evaluate=lambda: {"val/loss": 1.0})
    state = fit(parts)
    assert state.epoch == 3 and len(parts.history.rows) == 3  # best at 1, no better at 2 and 3
    assert parts.monitor.best_epoch == 1


def test_a_stop_request_saves_last_then_raises_interrupted():
    saved = []
    stop = StopRequest()
    parts = _parts(_model(), loss_fn=_stop_at(3, stop), save=lambda kind, loop: saved.append((kind, loop)))
    parts.control.stop = stop
    with pytest.raises(Interrupted) as stopped:
        fit(parts)
    assert stopped.value.signal_name == "SIGINT"
    assert [(kind, loop["epoch"], loop["step"]) for kind, loop in saved] == [("last", 0, 3)]
    assert parts.loader.position == 3


def test_a_nan_loss_raises_diverged_with_the_step_and_learning_rate():
    calls = {"n": 0}

    def poisoned(outputs, targets):
        calls["n"] += 1
        loss = nn.functional.cross_entropy(outputs, targets)
        return loss * float("nan") if calls["n"] == 5 else loss

    parts = _parts(_model(), loss_fn=poisoned)
    with pytest.raises(Diverged) as diverged:
        fit(parts)
    assert (diverged.value.step, diverged.value.epoch) == (5, 1)
    assert diverged.value.lr == LrSchedule(name="cosine", warmup_epochs=1.0, peak_lr=0.1, steps_per_epoch=6,
                                           epochs=3).lr(4)
