"""Fusion of image features with a side-feature vector."""

import pytest
import torch

from resnetlab.models import create_model, with_fusion, with_multiscale


@pytest.mark.parametrize("fusion", ["concat", "bilinear", "add"])
def test_every_fusion_uses_both_inputs_and_trains_every_parameter(fusion):
    torch.manual_seed(0)
    model = with_fusion(create_model("resnet20", num_classes=0, in_channels=1), num_classes=3, feature_dim=4,
                        visual_dim=4, fusion=fusion)
    images, features = torch.randn(5, 1, 12, 12), torch.randn(5, 4)
    out = model(images, features)
    assert out.shape == (5, 3) and torch.isfinite(out).all()
    assert not torch.allclose(out, model(images, features + 1.0))  # the side features matter
    assert not torch.allclose(out, model(images.flip(-1), features))  # and so does the image
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_fused_size_follows_the_rule():
    def build(fusion: str, visual: int = 16):
        return with_fusion(create_model("resnet20", num_classes=0), num_classes=2, feature_dim=8,
                           visual_dim=visual, fusion=fusion)

    assert build("concat").num_features == 24
    assert build("bilinear").num_features == 16
    assert build("add", 8).num_features == 8


def test_add_needs_equal_sizes():
    with pytest.raises(ValueError, match="visual_dim=8"):
        with_fusion(create_model("resnet20", num_classes=0), num_classes=2, feature_dim=8, visual_dim=16,
                    fusion="add")


def test_fusion_wraps_a_multiscale_model_and_keeps_the_head_separate():
    backbone = with_multiscale(create_model("resnet18", num_classes=0, stem="cifar"), num_classes=0, attention=True)
    model = with_fusion(backbone, num_classes=1, feature_dim=3, fusion="concat")
    assert model(torch.randn(2, 3, 16, 16), torch.randn(2, 3)).shape == (2, 1)
    head = {id(p) for p in model.get_classifier().parameters()}
    assert head and not head & {id(p) for p in model.backbone.parameters()}


def test_reset_classifier_gives_a_new_head_or_the_fused_vector():
    model = with_fusion(create_model("resnet20", num_classes=0), num_classes=2, feature_dim=3, visual_dim=8)
    images, features = torch.randn(2, 3, 12, 12), torch.randn(2, 3)
    model.reset_classifier(5)
    assert model(images, features).shape == (2, 5) and model.num_classes == 5
    model.reset_classifier(0)  # a feature extractor: the fused vector itself
    assert model(images, features).shape == (2, model.num_features)
    with pytest.raises(ValueError, match="num_classes -1 is not valid"):
        model.reset_classifier(-1)
    with pytest.raises(ValueError, match="num_classes True is not valid"):
        with_fusion(create_model("resnet20", num_classes=0), num_classes=True, feature_dim=3)


@pytest.mark.parametrize("fusion", ["concat", "bilinear", "add"])
def test_every_fusion_runs_under_bf16_autocast(fusion):
    model = with_fusion(create_model("resnet20", num_classes=0), num_classes=3, feature_dim=4, visual_dim=4,
                        fusion=fusion)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.randn(2, 3, 12, 12), torch.randn(2, 4))
    assert out.shape == (2, 3) and torch.isfinite(out.float()).all()
    out.float().sum().backward()
