"""He et al. 2015 CIFAR ResNets (6n+2 layers, option-A shortcuts)."""

import pytest
import torch
from torch import nn

from resnetlab.models import create_model
from resnetlab.models.cifar_resnet import PadShortcut

PAPER_PARAMS = {"resnet20": 0.27e6, "resnet32": 0.46e6, "resnet44": 0.66e6, "resnet56": 0.85e6, "resnet110": 1.7e6}


@pytest.mark.parametrize(("name", "paper"), PAPER_PARAMS.items())
def test_parameter_counts_match_the_paper(name, paper):
    model = create_model(name)
    count = sum(p.numel() for p in model.parameters())
    assert abs(count - paper) / paper < 0.03, count


@pytest.mark.parametrize("name", PAPER_PARAMS)
def test_depth_is_6n_plus_2_weighted_layers(name):
    model = create_model(name)
    weighted = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(weighted) == int(name.removeprefix("resnet"))


def test_layout_defaults_and_face():
    model = create_model("resnet20")
    assert model.stage_channels == [16, 32, 64] and model.num_features == 64
    assert model.num_classes == 10 and model.fc.weight.shape == (10, 64)
    assert isinstance(model.maxpool, nn.Identity)
    assert [len(stage) for stage in model.get_stages()] == [3, 3, 3]
    assert not hasattr(model, "layer4")
    assert not any("downsample" in key for key in model.state_dict())  # option A holds no parameters
    assert isinstance(model.layer2[0].downsample, PadShortcut)
    assert model.layer2[0].conv1.stride == (2, 2)
    with torch.no_grad():
        stages = model.eval().forward_stages(torch.randn(2, 3, 32, 32))
    assert [tuple(s.shape[1:]) for s in stages] == [(16, 32, 32), (32, 16, 16), (64, 8, 8)]


def test_option_a_shortcut_subsamples_and_pads_with_zero_channels():
    x = torch.randn(2, 16, 8, 8)
    out = PadShortcut(16, stride=2)(x)
    assert out.shape == (2, 32, 4, 4)
    assert torch.equal(out[:, :16], x[:, :, ::2, ::2])
    assert torch.count_nonzero(out[:, 16:]) == 0


def test_any_input_channels_and_class_count():
    model = create_model("resnet32", in_channels=1, num_classes=100).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, 28, 28)).shape == (2, 100)
    assert model.conv1.weight.shape == (16, 1, 3, 3)
