"""End to end on digits: the spine trains, writes its run folder, resumes exactly."""

import json

import pytest
import torch

import resnetlab
from resnetlab.config import build_config
from resnetlab.errors import UserError
from resnetlab.train.checkpoint import load_checkpoint


def _cfg(tmp_path, *extra):
    return build_config(["preset=test", f"output.dir={tmp_path}", *extra])


def test_short_run_on_digits_learns_and_fills_the_run_folder(tmp_path):
    result = resnetlab.train(_cfg(tmp_path, "data.subset=600", "data.image_size=16", "train.epochs=4",
                                  "model.name=resnet20", "optim.lr=0.1", "output.plots=true",
                                  "output.name=learns"))
    run = result.run_dir
    assert run == tmp_path / "learns"
    # 10 classes: chance is 0.1
    assert result.val["accuracy"] > 0.6, result.history
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


def test_two_plus_two_epochs_equal_four_bit_for_bit(tmp_path):
    common = ["train.epochs=4", "augment.crop_padding=1", "augment.hflip=0.5", "schedule.name=cosine"]
    straight = resnetlab.train(_cfg(tmp_path, *common, "output.name=straight"))

    class StopAfterTwo(Exception):
        pass

    def stop_after_two(row):
        if row["epoch"] == 2:
            raise StopAfterTwo

    with pytest.raises(StopAfterTwo):
        resnetlab.train(_cfg(tmp_path, *common, "output.name=resumed"), callbacks=[stop_after_two])
    # the callback fired before epoch 2's checkpoint: last.pt is after epoch 1; resume covers 3 epochs
    resumed = resnetlab.train(_cfg(tmp_path, *common, "output.name=resumed", "train.resume=auto"))
    a = load_checkpoint(straight.run_dir / "last.pt")
    b = load_checkpoint(resumed.run_dir / "last.pt")
    assert a["epoch"] == b["epoch"] == 4
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert [r["train/loss"] for r in straight.history] == [r["train/loss"] for r in resumed.history]
