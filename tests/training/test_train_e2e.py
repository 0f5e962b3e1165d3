"""End to end on digits: the spine trains, writes its run folder, resumes exactly."""

import json

import numpy as np
import pytest
import torch
import yaml

import resnetlab
from resnetlab.config import build_config
from resnetlab.errors import UserError
from resnetlab.training.checkpoint import load_checkpoint


def _cfg(tmp_path, *extra):
    return build_config(["preset=test", "train.threads=1", f"output.dir={tmp_path}", *extra])


def test_short_run_on_digits_learns_and_fills_the_run_folder(tmp_path):
    result = resnetlab.train(_cfg(tmp_path, "data.subset=600", "data.image_size=16", "train.epochs=4",
                                  "model.name=resnet20", "optim.lr=0.1", "output.plots=true",
                                  "output.name=learns"))
    run = result.run_dir
    assert run == tmp_path / "learns"
    # It learns: the loss falls from the first epoch and ends below a uniform guess's ln(10) (2.30). A
    # property, not an accuracy bar: a 4-epoch run's accuracy depends on the machine's kernels.
    losses = [row["train/loss"] for row in result.history]
    assert losses[-1] < losses[0] and losses[-1] < np.log(10), losses
    for name in ("config.yaml", "best.pt", "last.pt", "history.csv", "history.json", "metrics.json",
                 "final_results.json", "data_summary.json", "provenance.json", "train.log", "report.md",
                 "skipped_files.txt"):
        assert (run / name).is_file(), name
    history = json.loads((run / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]
    assert {"train/loss", "val/loss", "val/accuracy", "lr", "seconds", "images_per_s"} <= set(history[0])
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["best_epoch"] == result.best_epoch and "test" in metrics
    ckpt = load_checkpoint(run / "best.pt")
    assert ckpt["class_names"] == [str(i) for i in range(10)] and ckpt["channels"] == 1
    final = json.loads((run / "final_results.json").read_text())
    assert final["test_accuracy"] == pytest.approx(result.test["accuracy"])
    provenance = json.loads((run / "provenance.json").read_text())
    assert provenance["torch_version"] == torch.__version__ and provenance["data_hash"]


def test_existing_run_folder_is_never_overwritten(tmp_path):
    resnetlab.train(_cfg(tmp_path, "output.name=once"))
    with pytest.raises(UserError, match="already holds a run"):
        resnetlab.train(_cfg(tmp_path, "output.name=once"))


def test_two_plus_two_epochs_equal_four_bit_for_bit(tmp_path, train_until):
    common = ["train.epochs=4", "augment.crop_padding=1", "augment.hflip=0.5", "schedule.name=cosine"]
    straight = resnetlab.train(_cfg(tmp_path, *common, "output.name=straight"))
    train_until(_cfg(tmp_path, *common, "output.name=resumed"), 2)
    # the callback fired before epoch 2's checkpoint: last.pt is after epoch 1; resume covers 3 epochs
    resumed = resnetlab.train(_cfg(tmp_path, *common, "output.name=resumed", "train.resume=auto"))
    a = load_checkpoint(straight.run_dir / "last.pt")
    b = load_checkpoint(resumed.run_dir / "last.pt")
    assert a["epoch"] == b["epoch"] == 4
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert [r["train/loss"] for r in straight.history] == [r["train/loss"] for r in resumed.history]


def test_resume_refuses_changed_settings_keeps_the_record_and_may_extend_epochs(tmp_path, capsys):
    # A list passed positionally is the overrides, as on the command line.
    first = resnetlab.train(["preset=test", f"output.dir={tmp_path}", "output.name=r", "optim.lr=0.05",
                             "train.threads=1"])
    run = first.run_dir
    record = {name: (run / name).read_text() for name in ("config.yaml", "final_results.json")}
    # output.progress=false (preset=test): nothing on screen, everything in train.log
    assert capsys.readouterr().out == ""
    log = (run / "train.log").read_text()
    assert "resnetlab train →" in log and "done: best val/accuracy" in log

    again = ["preset=test", f"output.dir={tmp_path}", "output.name=r", "train.resume=auto", "train.threads=1"]
    with pytest.raises(UserError) as err:
        resnetlab.train(overrides=[*again, "optim.lr=0.5"])
    assert "optim.lr was 0.05, now 0.5" in str(err.value) and "another output.name" in str(err.value)
    assert "\n" not in str(err.value)
    # the --resume form: the run's own config.yaml with the new value on top
    cli = build_config(["optim.lr=0.5", "augment.hflip=0.5", "model.name=resnet32", "data.image_size=16",
                        f"train.resume={run}"], base=yaml.safe_load(record["config.yaml"]))
    with pytest.raises(UserError, match=r"\(model.name was resnet20, now resnet32, .*, .* and 1 more\)"):
        resnetlab.train(cli)
    assert {name: (run / name).read_text() for name in record} == record

    longer = resnetlab.train(overrides=[*again, "optim.lr=0.05", "train.epochs=2", "output.plots=true"])
    assert [row["epoch"] for row in longer.history] == [1, 2]
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["epochs"] == 2


def test_a_run_halved_by_auto_batch_resumes_with_its_halved_batch(tmp_path):
    from resnetlab.api.training import _resumed_config
    from resnetlab.config import to_dict
    from resnetlab.training.checkpoint import atomic_save

    halved = _cfg(tmp_path, "train.auto_batch=true", "train.batch_size=16", "train.accumulate=2")
    atomic_save({"config": to_dict(halved)}, tmp_path / "last.pt")
    asked = _cfg(tmp_path, "train.auto_batch=true", "train.batch_size=32")
    resumed = _resumed_config(asked, tmp_path / "last.pt")
    assert (resumed.train.batch_size, resumed.train.accumulate) == (16, 2)
    with pytest.raises(UserError, match="train.batch_size was 16, now 64"):
        _resumed_config(_cfg(tmp_path, "train.auto_batch=true", "train.batch_size=64"), tmp_path / "last.pt")


def test_outputs_that_blow_up_after_the_last_checked_loss_stop_the_run_in_one_line(tmp_path, monkeypatch):
    # The epoch's last step can send the weights to inf after the loop checked its loss: validation sees it.
    from resnetlab.api import evaluator

    real = evaluator.run_model

    def blown_up(*args, **kwargs):
        out = real(*args, **kwargs)
        out.outputs[:] = np.nan
        return out

    monkeypatch.setattr(evaluator, "run_model", blown_up)
    with pytest.raises(UserError, match=r"outputs on the validation split became NaN or infinite; lower optim.lr"):
        resnetlab.train(_cfg(tmp_path, "output.name=blown"))


def test_saving_mid_epoch_leaves_the_reported_loss_bit_identical(tmp_path):
    # The epoch's loss is one float32 sum, carried through checkpoints rather than restarted in pieces.
    common = ["data.subset=256", "train.epochs=2", "train.threads=1"]
    plain = resnetlab.train(_cfg(tmp_path, *common, "output.name=plain"))
    saved = resnetlab.train(_cfg(tmp_path, *common, "train.checkpoint_steps=1", "output.name=saved"))
    assert [r["train/loss"] for r in saved.history] == [r["train/loss"] for r in plain.history]
