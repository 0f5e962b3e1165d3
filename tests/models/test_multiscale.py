import pytest
import torch
from torch import nn

from resnetlab.models import MultiScaleResNet, create_model, with_multiscale

R50_TRUNK = 25_557_032 - (2048 * 1000 + 1000)  # torchvision ResNet-50 without its fc


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def se_params(c: int) -> int:
    hidden = c // 16
    return 2 * c * hidden + hidden + c


@pytest.mark.parametrize(("project_dim", "attention", "expected"), [
    (None, False, R50_TRUNK + 3840 * 1000 + 1000),
    (None, True, R50_TRUNK + se_params(3840) + 3840 * 1000 + 1000),
    (512, False, R50_TRUNK + 3840 * 512 + 4 * 512 + 2048 * 1000 + 1000),
    (512, True, R50_TRUNK + 3840 * 512 + 4 * 512 + se_params(2048) + 2048 * 1000 + 1000),
])
def test_resnet50_parameter_counts(project_dim, attention, expected):
    with torch.device("meta"):
        model = with_multiscale(create_model("resnet50"), project_dim=project_dim, attention=attention)
    assert count(model) == expected
    assert model.num_features == (3840 if project_dim is None else 4 * project_dim)


def test_documented_counts():
    with torch.device("meta"):
        sizes = [count(with_multiscale(create_model("resnet50"), project_dim=p, attention=a))
                 for p, a in [(None, False), (None, True), (512, False), (512, True)]]
    assert sizes == [27_349_032, 29_196_312, 27_525_160, 28_051_624]


@pytest.mark.parametrize(("project_dim", "attention"), [(None, False), (None, True), (32, False), (32, True)])
def test_forward_shapes_and_gradients(project_dim, attention):
    torch.manual_seed(0)
    model = with_multiscale(create_model("resnet18", stem="cifar"), num_classes=6, project_dim=project_dim,
                            attention=attention)
    x = torch.randn(2, 3, 32, 32)
    features = model.forward_features(x)
    fused = 64 + 128 + 256 + 512 if project_dim is None else 4 * project_dim
    assert features.shape == (2, fused) == (2, model.num_features)
    out = model.forward_head(features)
    assert out.shape == (2, 6)
    assert torch.equal(model.forward_head(features, pre_logits=True), features)
    out.sum().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
    assert (model.se is not None) == attention


def test_backbone_classifier_is_dropped_and_class_count_inherited():
    backbone = create_model("resnet20", num_classes=10)
    model = with_multiscale(backbone)
    assert isinstance(model, MultiScaleResNet)
    assert isinstance(backbone.fc, nn.Identity)
    assert model.num_classes == 10 and model.num_features == 16 + 32 + 64
    assert model.stage_channels == [16, 32, 64]
    assert model.get_classifier() is model.fc
    with torch.no_grad():
        assert model.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_reset_classifier():
    model = with_multiscale(create_model("resnet18"), project_dim=8)
    model.reset_classifier(3)
    assert model.fc.weight.shape == (3, 32)
    model.reset_classifier(0)
    assert isinstance(model.fc, nn.Identity)
    with torch.no_grad():
        assert model.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 32)


def test_bad_options():
    with pytest.raises(ValueError, match="project_dim 0 is not valid"):
        with_multiscale(create_model("resnet18"), project_dim=0)
    with pytest.raises(TypeError, match="lacks 'forward_stages'"):
        with_multiscale(nn.Linear(3, 3))
