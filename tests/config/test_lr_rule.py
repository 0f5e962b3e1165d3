"""The learning rate follows the batch size unless optim.lr is set."""

from __future__ import annotations

import math

import pytest

from resnetlab.config import build_config
from resnetlab.config.lr_rule import auto_lr, with_auto_lr


def test_sgd_scales_linearly_from_point_one_per_256_images():
    cfg, note = with_auto_lr(build_config(["train.batch_size=32"]))
    assert cfg.optim.lr == pytest.approx(0.0125)
    assert note == "0.1 × 32/256, linear scaling; set optim.lr to override"


def test_the_batch_of_one_optimizer_step_counts_accumulation_too():
    cfg, _ = with_auto_lr(build_config(["train.batch_size=32", "train.accumulate=8"]))
    assert cfg.optim.lr == pytest.approx(0.1)


def test_adam_and_adamw_scale_with_the_square_root():
    for name in ("adam", "adamw"):
        lr, words = auto_lr(name, 64)
        assert lr == pytest.approx(1e-3 * math.sqrt(64 / 256)) and "square-root" in words


def test_an_explicit_lr_is_kept_and_needs_no_note():
    cfg, note = with_auto_lr(build_config(["train.batch_size=32", "optim.lr=0.3"]))
    assert cfg.optim.lr == 0.3 and note == ""


@pytest.mark.parametrize("preset", ["quick", "resnet18", "cifar-resnet18", "iqa", "resnet18_frozen"])
def test_presets_that_set_lr_keep_it(preset):
    cfg = build_config([f"preset={preset}"])
    assert with_auto_lr(cfg)[0].optim.lr == cfg.optim.lr is not None


def test_unset_lr_is_none_in_the_schema_and_a_negative_one_is_refused():
    assert build_config([]).optim.lr is None
    from resnetlab.errors import UserError

    with pytest.raises(UserError, match="optim.lr"):
        build_config(["optim.lr=-1"])


def test_regression_clips_the_gradient_unless_told_otherwise():
    assert with_auto_lr(build_config(["data.task=regression"]))[0].train.grad_clip == 1.0
    assert with_auto_lr(build_config([]))[0].train.grad_clip == 0.0
    assert with_auto_lr(build_config(["data.task=regression", "train.grad_clip=0"]))[0].train.grad_clip == 0.0


def test_the_banner_words_name_the_formula_only_for_the_batch_scaled_lr():
    from resnetlab.config.lr_rule import lr_words

    auto, _ = with_auto_lr(build_config(["train.batch_size=32"]))
    assert lr_words(auto) == " = 0.1 × 32/256, linear scaling; set optim.lr to override"
    assert lr_words(with_auto_lr(build_config(["train.batch_size=32", "optim.lr=0.05"]))[0]) == ""
