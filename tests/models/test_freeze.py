import copy
import pickle

import pytest
import torch
from torch import nn

from resnetlab.models import create_model, freeze, param_groups, unfreeze, with_multiscale
from resnetlab.models.freeze import FrozenStatsBatchNorm2d


def trainable_prefixes(model: nn.Module) -> set[str]:
    return {name.split(".")[0] for name, p in model.named_parameters() if p.requires_grad}


def frozen_prefixes(model: nn.Module) -> set[str]:
    return {name.split(".")[0] for name, p in model.named_parameters() if not p.requires_grad}


@pytest.mark.parametrize(("spec", "frozen"), [
    ("none", set()),
    ("backbone", {"conv1", "bn1", "layer1", "layer2", "layer3", "layer4"}),
    ("stages:0", {"conv1", "bn1"}),
    ("stages:2", {"conv1", "bn1", "layer1", "layer2"}),
    ("stages:4", {"conv1", "bn1", "layer1", "layer2", "layer3", "layer4"}),
])
def test_specs_freeze_the_named_parts(spec, frozen):
    model = create_model("resnet18", num_classes=3)
    freeze(model, spec)
    assert frozen_prefixes(model) == frozen
    assert "fc" in trainable_prefixes(model)
    assert frozen.isdisjoint(trainable_prefixes(model))


def test_freeze_replaces_an_earlier_freeze_and_unfreeze_releases_all():
    model = create_model("resnet18")
    freeze(model, "backbone")
    freeze(model, "stages:1")
    assert frozen_prefixes(model) == {"conv1", "bn1", "layer1"}
    unfreeze(model)
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("spec", ["head", "stages:5", "stages:-1", "stages:", "stages:two"])
def test_bad_specs_are_user_errors(spec):
    with pytest.raises(ValueError, match=f"freeze '{spec}'"):
        freeze(create_model("resnet18"), spec)


def test_cifar_resnet_has_three_stages():
    model = create_model("resnet20")
    freeze(model, "stages:3")
    assert frozen_prefixes(model) == {"conv1", "bn1", "layer1", "layer2", "layer3"}
    with pytest.raises(ValueError, match="N from 0 to 3"):
        freeze(model, "stages:4")


def test_frozen_bn_statistics_survive_train_mode_forwards():
    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=3, stem="cifar")
    held = freeze(model, "stages:2", freeze_bn_stats=True)
    assert len(held) == 1 + 2 * 2 * 2 + 1  # stem bn1; two blocks of two BNs per stage; layer2's downsample BN
    assert freeze(create_model("resnet18"), "stages:2") == []
    before = {k: v.clone() for k, v in model.state_dict().items() if "running_mean" in k}
    model.train()
    model(torch.randn(2, 3, 16, 16) * 3 + 1)
    after = model.state_dict()
    for key, value in before.items():
        changed = not torch.equal(after[key], value)
        frozen = key.startswith(("bn1.", "layer1.", "layer2."))
        assert changed != frozen, key
    assert not model.layer1[0].bn1.training and model.layer3[0].bn1.training
    assert isinstance(model.bn1, FrozenStatsBatchNorm2d) and isinstance(model.bn1, nn.BatchNorm2d)
    assert type(model.layer4[0].bn1) is nn.BatchNorm2d


def test_frozen_bn_keeps_keys_and_survives_copies():
    model = create_model("resnet18")
    keys = list(model.state_dict())
    freeze(model, "backbone", freeze_bn_stats=True)
    assert list(model.state_dict()) == keys
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        clone.train()
        assert not clone.bn1.training
        assert clone.fc.training


def test_unfreeze_restores_plain_batchnorm_following_the_model_mode():
    model = create_model("resnet18")
    freeze(model, "backbone", freeze_bn_stats=True)
    model.train()
    unfreeze(model)
    assert type(model.bn1) is nn.BatchNorm2d and model.bn1.training
    model.eval()
    assert not model.bn1.training


def test_without_freeze_bn_stats_frozen_bn_still_follows_train_mode():
    model = create_model("resnet18")
    freeze(model, "backbone")
    model.train()
    assert model.bn1.training and type(model.bn1) is nn.BatchNorm2d


def test_param_groups_split_backbone_and_head():
    model = create_model("resnet18", num_classes=5)
    groups = param_groups(model, backbone_lr=1e-4, head_lr=1e-2)
    assert [(g["name"], g["lr"]) for g in groups] == [("backbone", 1e-4), ("head", 1e-2)]
    assert groups[1]["params"] == [model.fc.weight, model.fc.bias]
    assert sum(p.numel() for g in groups for p in g["params"]) == sum(p.numel() for p in model.parameters())
    torch.optim.SGD(groups, lr=0.1)  # accepted as is
    freeze(model, "backbone")
    assert [g["name"] for g in param_groups(model, backbone_lr=1e-4, head_lr=1e-2)] == ["head"]


def test_multiscale_fusion_layers_count_as_head():
    model = with_multiscale(create_model("resnet18"), project_dim=8, attention=True)
    freeze(model, "backbone")
    assert frozen_prefixes(model) == {"backbone"}
    assert trainable_prefixes(model) == {"proj", "se", "fc"}
    head = param_groups(model, backbone_lr=0.0, head_lr=1.0)[0]["params"]
    assert len(head) == 4 * 2 + 4 + 2
    freeze(model, "stages:1")
    assert {n.split(".")[1] for n, p in model.named_parameters() if not p.requires_grad} == \
        {"conv1", "bn1", "layer1"}
