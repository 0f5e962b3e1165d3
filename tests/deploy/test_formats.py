"""Every model family resnetlab builds goes through ONNX and back with the same outputs."""

import numpy as np
import pytest
import torch

from resnetlab.deploy import ModelCard, write_model
from resnetlab.deploy.formats import load_runner, read_card
from resnetlab.models import create_model, with_multiscale


def _card(channels: int, size: int, classes: int) -> ModelCard:
    return ModelCard(task="classification", class_names=[f"c{i}" for i in range(classes)], input_size=size,
                     channels=channels, mean=[0.5] * channels, std=[0.25] * channels, model="m")


MODELS = {
    "torchvision layout, ImageNet stem": lambda: create_model("resnet18", num_classes=4, in_channels=3),
    "CIFAR ResNet with pad shortcuts": lambda: create_model("resnet20", num_classes=4, in_channels=1),
    "SE blocks": lambda: create_model("resnet18", num_classes=4, in_channels=3, stem="cifar",
                                      block_attention=True),
    "multi-scale fusion with attention": lambda: with_multiscale(
        create_model("resnet18", num_classes=4, in_channels=3, stem="cifar"), project_dim=16, attention=True),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_onnx_outputs_match_pytorch(name, tmp_path):
    torch.manual_seed(0)
    model = MODELS[name]().eval()
    channels = model.get_stem()[0].in_channels
    card = _card(channels, 32, 4)
    path = tmp_path / "m.onnx"
    assert write_model(model, card, path, fmt="onnx") == [path]
    assert read_card(path, fmt="onnx") == card
    images = torch.randn(3, channels, 32, 32)
    with torch.no_grad():
        expected = model(images).numpy()
    got = load_runner(path, fmt="onnx")(images.numpy())
    assert np.abs(got - expected).max() < 1e-4


def test_card_round_trips_through_strings():
    card = ModelCard(task="regression", class_names=[], input_size=64, channels=3, mean=[0.1, 0.2, 0.3],
                     std=[1.0, 2.0, 3.0], model="resnet50", target_stats=[50.0, 10.0], resnetlab_version="0.1.0")
    assert ModelCard.from_strings(card.to_strings(), source="x") == card
    assert card.decode_scores(np.array([[0.0], [1.0]])).tolist() == [50.0, 60.0]
