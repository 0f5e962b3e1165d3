"""Settings each valid alone that do not go together: one line naming the keys, before any data is read."""

import subprocess
import sys

import pytest

from resnetlab.config import build_config
from resnetlab.config.cross_checks import check_cross_fields, freeze_specs
from resnetlab.errors import UserError


@pytest.mark.parametrize(("tokens", "message"), [
    (["model.freeze=stages:x"], "model.freeze=stages:x is not understood"),
    (["train.loss=mse"], "train.loss=mse is a regression loss"),
    (["data.task=regression", "train.loss=cross_entropy"], "train.loss=cross_entropy needs classes"),
    (["optim.betas=[0.9,1.0]"], r"optim.betas takes two numbers in \[0, 1\)"),
    (["augment.scale=[1.2,0.8]"], "augment.scale takes"),
    (["model.width=0"], "model.width=0.0 is not a channel multiplier"),
    (["model.width=2", "model.pretrained=imagenet"], "model.pretrained=imagenet cannot load"),
    (["data.image_size=32", "train.resize_from=32"], r"train.resize_from=32 must lie in \[4, 32\)"),
    (["data.image_size=32", "patches.size=16", "train.resize_from=20"], r"patches.size=16\)"),
    (["model.fusion=concat"], "model.fusion=concat needs side features"),
    (["data.task=regression", "train.balanced_sampler=true"], "train.balanced_sampler needs classes"),
])
def test_each_mismatch_is_one_line_naming_the_keys(tokens, message):
    with pytest.raises(UserError, match=message):
        check_cross_fields(build_config(tokens))


def test_the_defaults_and_the_presets_pass():
    for preset in ("quick", "test", "fmnist-fast", "fmnist-best", "iqa", "resnet18_frozen"):
        check_cross_fields(build_config([f"preset={preset}"]))


def test_freeze_specs_name_every_key_that_freezes():
    cfg = build_config(["model.freeze=backbone"])
    assert freeze_specs(cfg) == [("model.freeze", "backbone")]
    staged = build_config(["train.stages=[{epochs: 1, freeze: backbone}, {epochs: 2}]"])
    assert [key for key, _ in freeze_specs(staged)] == ["model.freeze", "train.stages[0].freeze",
                                                        "train.stages[1].freeze"]


def test_the_checks_load_no_model_library():
    code = ("import sys, resnetlab.config.cross_checks as c, resnetlab.config as k; "
            "c.check_cross_fields(k.build_config([])); "
            "print(any(m.startswith(('torch', 'resnetlab.models')) for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
