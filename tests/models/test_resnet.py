"""ImageNet ResNets: the face every registered model shares, and torchvision compatibility."""

import pytest
import torch
from torch import nn

from resnetlab.models import create_model, list_models

TORCHVISION_PARAMS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
}


def torchvision_layout(block: str, layers: list[int], *, num_classes: int = 1000) -> list[tuple[str, tuple]]:
    """(key, shape) of a torchvision ResNet state dict in order, written from its published layout."""

    def bn(prefix: str, c: int) -> list[tuple[str, tuple]]:
        return [(f"{prefix}.weight", (c,)), (f"{prefix}.bias", (c,)), (f"{prefix}.running_mean", (c,)),
                (f"{prefix}.running_var", (c,)), (f"{prefix}.num_batches_tracked", ())]

    expansion = 1 if block == "basic" else 4
    keys = [("conv1.weight", (64, 3, 7, 7)), *bn("bn1", 64)]
    inplanes = 64
    for stage, (planes, depth) in enumerate(zip((64, 128, 256, 512), layers), start=1):
        out = planes * expansion
        for index in range(depth):
            p = f"layer{stage}.{index}"
            cin = inplanes if index == 0 else out
            if block == "basic":
                keys += [(f"{p}.conv1.weight", (planes, cin, 3, 3)), *bn(f"{p}.bn1", planes),
                         (f"{p}.conv2.weight", (planes, planes, 3, 3)), *bn(f"{p}.bn2", planes)]
            else:
                keys += [(f"{p}.conv1.weight", (planes, cin, 1, 1)), *bn(f"{p}.bn1", planes),
                         (f"{p}.conv2.weight", (planes, planes, 3, 3)), *bn(f"{p}.bn2", planes),
                         (f"{p}.conv3.weight", (out, planes, 1, 1)), *bn(f"{p}.bn3", out)]
            if index == 0 and (stage > 1 or cin != out):
                keys += [(f"{p}.downsample.0.weight", (out, cin, 1, 1)), *bn(f"{p}.downsample.1", out)]
        inplanes = out
    return keys + [("fc.weight", (num_classes, 512 * expansion)), ("fc.bias", (num_classes,))]


LAYOUTS = {"resnet18": ("basic", [2, 2, 2, 2]), "resnet50": ("bottleneck", [3, 4, 6, 3])}


def layout_of(model: nn.Module) -> list[tuple[str, tuple]]:
    return [(key, tuple(value.shape)) for key, value in model.state_dict().items()]


@pytest.mark.parametrize("name", list_models())
def test_every_model_trains_one_step(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=5)
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 5)
    assert torch.isfinite(out).all()
    out.logsumexp(dim=1).sum().backward()
    for pname, param in model.named_parameters():
        assert param.grad is not None, f"{name}: no gradient for {pname}"
        assert torch.isfinite(param.grad).all(), f"{name}: non-finite gradient for {pname}"


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize(("in_channels", "num_classes", "stem", "size"),
                         [(1, 3, "imagenet", 32), (4, 7, "cifar", 8), (3, 2, "imagenet", 40)])
def test_every_model_output_shape(name, in_channels, num_classes, stem, size):
    model = create_model(name, in_channels=in_channels, num_classes=num_classes, stem=stem).eval()
    x = torch.randn(2, in_channels, size, size)
    with torch.no_grad():
        out = model(x)
        stages = model.forward_stages(x)
        features = model.forward_features(x)
        pooled = model.forward_head(features, pre_logits=True)
    assert out.shape == (2, num_classes)
    assert not out.isnan().any()
    assert [s.shape[1] for s in stages] == model.stage_channels
    assert torch.equal(features, stages[-1])
    assert features.shape[1] == model.num_features == model.stage_channels[-1]
    assert pooled.shape == (2, model.num_features)
    assert torch.allclose(model.get_classifier()(pooled), out)


@pytest.mark.parametrize(("name", "expected"), TORCHVISION_PARAMS.items())
def test_parameter_counts_equal_torchvision(name, expected):
    with torch.device("meta"):  # counting needs shapes only
        model = create_model(name)
    assert sum(p.numel() for p in model.parameters()) == expected
    assert model.num_features == (512 if name in ("resnet18", "resnet34") else 2048)


@pytest.mark.parametrize("name", LAYOUTS)
def test_state_dict_layout_equals_torchvision(name):
    with torch.device("meta"):
        model = create_model(name)
    assert layout_of(model) == torchvision_layout(*LAYOUTS[name])
    assert len(model.state_dict()) == {"resnet18": 122, "resnet50": 320}[name]


@pytest.mark.parametrize("name", LAYOUTS)
def test_strict_load_of_a_torchvision_format_state_dict(name):
    generator = torch.Generator().manual_seed(0)
    state = {key: (torch.randn(shape, generator=generator) if shape else torch.tensor(7))
             for key, shape in torchvision_layout(*LAYOUTS[name], num_classes=10)}
    model = create_model(name, num_classes=10)
    model.load_state_dict(state, strict=True)
    assert torch.equal(model.layer3[1].conv2.weight, state["layer3.1.conv2.weight"])


def test_bottleneck_strides_on_the_3x3_conv_like_torchvision_v1_5():
    model = create_model("resnet50")
    first = model.layer2[0]
    assert first.conv1.stride == (1, 1)
    assert first.conv2.stride == (2, 2)
    assert first.downsample[0].stride == (2, 2)


def test_imagenet_stem_reduces_by_four_and_cifar_stem_keeps_resolution():
    x = torch.randn(2, 3, 16, 16)
    imagenet = create_model("resnet18").eval()
    cifar = create_model("resnet18", stem="cifar").eval()
    with torch.no_grad():
        assert imagenet.forward_stages(x)[0].shape[-1] == 4
        assert cifar.forward_stages(x)[0].shape[-1] == 16
    assert isinstance(cifar.maxpool, nn.Identity)
    assert cifar.conv1.kernel_size == (3, 3) and cifar.conv1.stride == (1, 1)
    assert list(cifar.state_dict()) == list(imagenet.state_dict())


def test_reset_classifier():
    model = create_model("resnet18", num_classes=10).eval()
    x = torch.randn(2, 3, 32, 32)
    model.reset_classifier(7)
    assert model.get_classifier() is model.fc
    assert model.fc.weight.shape == (7, 512) and model.num_classes == 7
    assert model(x).shape == (2, 7)
    model.reset_classifier(0)
    assert isinstance(model.fc, nn.Identity)
    assert model(x).shape == (2, 512)
    assert not any(key.startswith("fc.") for key in model.state_dict())
    with pytest.raises(ValueError, match="num_classes -1"):
        model.reset_classifier(-1)


@pytest.mark.parametrize(("name", "last_bn"), [("resnet18", "bn2"), ("resnet50", "bn3")])
def test_zero_init_residual_zeroes_the_last_bn_of_each_branch(name, last_bn):
    model = create_model(name, zero_init_residual=True)
    blocks = [block for stage in (model.layer1, model.layer2, model.layer3, model.layer4) for block in stage]
    for block in blocks:
        assert torch.count_nonzero(getattr(block, last_bn).weight) == 0
        assert torch.all(block.bn1.weight == 1)
        if block.downsample is not None:
            assert torch.all(block.downsample[1].weight == 1)
    assert torch.all(model.bn1.weight == 1)
    default = create_model(name)
    assert torch.all(getattr(default.layer1[0], last_bn).weight == 1)


def test_zero_init_residual_blocks_start_as_identity_plus_relu():
    model = create_model("resnet18", zero_init_residual=True).eval()
    x = torch.randn(2, 64, 8, 8)
    with torch.no_grad():
        assert torch.allclose(model.layer1[0](x), x.relu())


def test_convs_use_kaiming_fan_out_init():
    torch.manual_seed(0)
    conv = create_model("resnet50").layer3[2].conv2  # 256 -> 256, 3x3: fan_out = 2304
    assert conv.weight.std().item() == pytest.approx((2 / (256 * 9)) ** 0.5, rel=0.05)


def test_drop_rate_acts_in_training_only():
    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=4, drop_rate=0.5, stem="cifar")
    x = torch.randn(2, 3, 16, 16)
    model.eval()
    with torch.no_grad():
        features = model.forward_features(x)
        plain = model.fc(model.forward_head(features, pre_logits=True))
        assert torch.allclose(model.forward_head(features), plain)
        model.train()
        assert not torch.allclose(model.forward_head(features), plain)


def test_block_attention_adds_se_modules_and_only_new_keys():
    plain = create_model("resnet50")
    se = create_model("resnet50", block_attention=True)
    plain_keys, se_keys = list(plain.state_dict()), list(se.state_dict())
    assert [k for k in se_keys if ".se." not in k] == plain_keys
    assert len(se_keys) - len(plain_keys) == 16 * 4  # fc1/fc2 weight and bias in each of 16 blocks
    widths = [256] * 3 + [512] * 4 + [1024] * 6 + [2048] * 3
    extra = sum(2 * c * (c // 16) + c // 16 + c for c in widths)
    count = sum(p.numel() for p in se.parameters())
    assert count == TORCHVISION_PARAMS["resnet50"] + extra == 28_088_024  # SE-ResNet-50
    with torch.no_grad():
        assert se.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 1000)


@pytest.mark.parametrize(("option", "value", "message"), [
    ("stem", "deep", "stem 'deep' is not known; use one of imagenet, cifar"),
    ("num_classes", -3, "num_classes -3 is not valid"),
    ("in_channels", 0, "in_channels 0 is not valid"),
    ("drop_rate", 1.5, r"drop_rate 1.5 is outside \[0, 1\)"),
    ("width", 0, "width 0 is not valid"),
    ("width", -1.0, "width -1.0 is not valid"),
])
def test_bad_options_are_user_errors(option, value, message):
    with pytest.raises(ValueError, match=message):
        create_model("resnet18", **{option: value})


def test_resnet10_is_one_basic_block_per_stage_in_the_torchvision_layout():
    model = create_model("resnet10")
    assert layout_of(model) == torchvision_layout("basic", [1, 1, 1, 1])
    assert sum(p.numel() for p in model.parameters()) == 5_418_792


@pytest.mark.parametrize(("name", "width", "channels"), [
    ("resnet18", 0.5, [32, 64, 128, 256]),
    ("resnet10", 2, [128, 256, 512, 1024]),
    ("resnet50", 0.25, [64, 128, 256, 512]),  # bottleneck planes 16..128, times the expansion of 4
    ("resnet20", 2, [32, 64, 128]),
    ("resnet20", 0.01, [1, 1, 1]),
])
def test_width_multiplies_every_stage(name, width, channels):
    model = create_model(name, width=width, num_classes=3, in_channels=1, stem="cifar")
    assert model.stage_channels == channels
    assert model.conv1.out_channels == model.layer1[0].conv1.in_channels
    assert model(torch.randn(2, 1, 16, 16)).shape == (2, 3)


def test_width_one_is_the_standard_model():
    torch.manual_seed(0)
    plain = create_model("resnet18").state_dict()
    torch.manual_seed(0)
    scaled = create_model("resnet18", width=1.0).state_dict()
    assert plain.keys() == scaled.keys()
    assert all(torch.equal(plain[k], scaled[k]) for k in plain)
