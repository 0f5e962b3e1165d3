"""The Fashion-MNIST speed-run presets exist, validate, and train (a few steps on a tiny subset)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import resnetlab
from resnetlab.config import build_config
from resnetlab.config.lr_rule import with_auto_lr

FMNIST = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.parametrize("name", ["fmnist-fast", "fmnist-best"])
def test_speedrun_presets_name_their_recipe_and_fix_their_lr(name):
    cfg = build_config([f"preset={name}"])
    assert cfg.data.source == "fashion-mnist" and cfg.data.image_size == 28 and cfg.model.stem == "cifar"
    assert cfg.train.tta and cfg.train.label_smoothing > 0 and cfg.schedule.name == "onecycle"
    assert with_auto_lr(cfg)[1] == ""  # the recipe's lr, not the batch-scaled default


@pytest.mark.skipif(not FMNIST.is_dir(), reason="Debian's dataset-fashion-mnist is not installed (make fashion-mnist)")
@pytest.mark.parametrize("name", ["fmnist-fast", "fmnist-best"])
def test_speedrun_presets_train_a_few_steps_on_a_subset(tmp_path, name):
    result = resnetlab.train([f"preset={name}", "data.subset=96", "train.batch_size=32", "train.epochs=1",
                              "train.threads=1", f"data.cache_dir={tmp_path / 'cache'}", f"output.dir={tmp_path}",
                              "output.progress=false", "output.tensorboard=false", "output.plots=false"])
    assert len(result.history) == 1 and math.isfinite(result.history[0]["train/loss"])
    assert "accuracy" in result.test
    saved = (result.run_dir / "config.yaml").read_text()
    assert "name: resnet20" in saved and "tta: true" in saved
