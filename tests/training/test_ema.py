"""The weight average: its arithmetic, and a run that validates, keeps and resumes it."""

import pytest
import torch
from torch import nn

import resnetlab
from resnetlab.config import build_config
from resnetlab.errors import UserError
from resnetlab.training.checkpoint import load_checkpoint
from resnetlab.training.ema import WeightEma


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))


def test_each_update_moves_the_average_by_one_minus_the_warmed_up_decay():
    model = _model()
    ema = WeightEma(model, decay=0.9)
    start = model[0].weight.detach().clone()
    with torch.no_grad():
        model[0].weight.add_(1.0)
    assert ema.current_decay() == pytest.approx(1 / 10)  # warm-up: (1 + 0) / (10 + 0)
    ema.update()
    assert torch.allclose(ema.module[0].weight, start + 0.9)  # moved 1 - 0.1 of the way
    for _ in range(200):
        ema.update()
    assert ema.current_decay() == 0.9  # the warm-up has reached the set decay
    assert torch.allclose(ema.module[0].weight, start + 1.0, atol=1e-6)  # it converges on fixed weights


def test_running_statistics_are_averaged_and_batch_counters_copied():
    model = _model()
    ema = WeightEma(model, decay=0.5)
    model.train()(torch.randn(8, 3) * 5 + 3)  # moves running_mean/var and counts one batch
    ema.update()
    bn, averaged = model[1], ema.module[1]
    # The copy started with zeros; the first update moves it 1 - 1/10 of the way (the warm-up).
    assert torch.allclose(averaged.running_mean, 0.9 * bn.running_mean)
    assert averaged.num_batches_tracked == bn.num_batches_tracked == 1


def test_the_average_is_a_separate_frozen_copy():
    model = _model()
    ema = WeightEma(model, decay=0.99)
    assert all(not p.requires_grad for p in ema.module.parameters())
    assert all(p.requires_grad for p in model.parameters())
    assert ema.module[0].weight.data_ptr() != model[0].weight.data_ptr()
    assert not ema.module.training


def test_state_round_trips_the_weights_and_the_warm_up():
    model = _model()
    ema = WeightEma(model, decay=0.99)
    with torch.no_grad():
        model[0].weight.mul_(3)
    for _ in range(5):
        ema.update()
    other = WeightEma(_model(), decay=0.99)
    other.load_state_dict(ema.state_dict())
    assert other.updates == 5
    assert torch.equal(other.module[0].weight, ema.module[0].weight)


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.5])
def test_a_decay_outside_the_open_interval_is_refused(decay):
    with pytest.raises(ValueError, match="EMA decay"):
        WeightEma(_model(), decay=decay)


def _cfg(tmp_path, *extra):
    return build_config(["preset=test", "train.threads=1", f"output.dir={tmp_path}", "data.subset=256",
                         "train.ema=0.9", "output.plots=false", "output.tensorboard=false", *extra])


def test_a_run_validates_and_keeps_the_average_not_the_raw_weights(tmp_path):
    result = resnetlab.train(_cfg(tmp_path, "train.epochs=2", "output.name=ema", "train.monitor_mode=min",
                                  "train.monitor=val/loss"))
    last = load_checkpoint(result.run_dir / "last.pt")
    best = load_checkpoint(result.run_dir / "best.pt")
    assert last["ema"]["updates"] == 2 * 8  # 256 images at batch 32, two epochs
    averaged, raw = last["ema"]["module"], last["model"]
    assert any(not torch.equal(averaged[k], raw[k]) for k in raw)
    if result.best_epoch == 2:
        assert all(torch.equal(best["model"][k], averaged[k]) for k in averaged)
    # The run's reported val/loss is the average's, as the final evaluation of best.pt finds it.
    assert result.history[result.best_epoch - 1]["val/loss"] == pytest.approx(result.val["loss"], rel=1e-5)


def test_a_stopped_run_with_an_average_resumes_bit_for_bit(tmp_path, train_until):
    common = ["train.epochs=3", "augment.hflip=0.5"]
    straight = resnetlab.train(_cfg(tmp_path, *common, "output.name=straight"))
    train_until(_cfg(tmp_path, *common, "output.name=resumed"), 2)
    resumed = resnetlab.train(_cfg(tmp_path, *common, "output.name=resumed", "train.resume=auto"))
    a = load_checkpoint(straight.run_dir / "last.pt")["ema"]
    b = load_checkpoint(resumed.run_dir / "last.pt")["ema"]
    assert a["updates"] == b["updates"]
    for key, value in a["module"].items():
        assert torch.equal(value, b["module"][key]), key


def test_the_average_cannot_be_switched_on_for_a_resume(tmp_path):
    resnetlab.train(_cfg(tmp_path, "train.epochs=1", "output.name=plain", "train.ema=0"))
    with pytest.raises(UserError, match=r"train.ema was 0.0, now 0.9"):
        resnetlab.train(_cfg(tmp_path, "train.epochs=2", "output.name=plain", "train.resume=auto"))
