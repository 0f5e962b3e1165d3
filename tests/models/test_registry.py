import pytest
from torch import nn

from resnetlab.models import create_model, is_model, list_models, register_model, registry

IMAGENET = ["resnet10", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]
CIFAR = ["resnet20", "resnet32", "resnet44", "resnet56", "resnet110"]


def test_every_family_member_is_registered():
    assert set(list_models()) == set(IMAGENET + CIFAR)
    assert all(is_model(name) for name in IMAGENET + CIFAR)
    assert not is_model("resnet19")


def test_list_models_sorts_depths_numerically_and_filters_with_wildcards():
    names = list_models()
    assert names.index("resnet20") < names.index("resnet110")
    assert names.index("resnet18") < names.index("resnet101")
    assert list_models("resnet1*") == ["resnet10", "resnet18", "resnet101", "resnet110", "resnet152"]
    assert list_models("vit*") == []


def test_unknown_model_suggests_the_closest_name():
    with pytest.raises(ValueError) as err:
        create_model("resnet19")
    assert str(err.value) == "unknown model 'resnet19'; did you mean 'resnet18'? (resnetlab summary --list shows all)"


def test_unknown_model_without_a_close_name():
    with pytest.raises(ValueError, match=r"^unknown model 'alexnet' \(resnetlab summary --list shows all\)$"):
        create_model("alexnet")


def test_unknown_option_is_a_user_error_with_a_suggestion():
    with pytest.raises(TypeError, match="model option 'num_class' is not known; did you mean 'num_classes'"):
        create_model("resnet18", num_class=10)
    with pytest.raises(TypeError, match="model option 'groups' is not known; options are num_classes"):
        create_model("resnet20", groups=3)


def test_register_model_adds_an_entrypoint(monkeypatch):
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))

    @register_model
    def tiny_linear(*, num_classes: int = 3) -> nn.Module:
        return nn.Linear(4, num_classes)

    assert "tiny_linear" in list_models()
    assert create_model("tiny_linear", num_classes=5).out_features == 5

    def tiny_linear() -> nn.Module:  # noqa: F811 - a second function under a taken name
        return nn.Identity()

    with pytest.raises(ValueError, match="registered twice"):
        register_model(tiny_linear)


@pytest.mark.parametrize("option", ["block", "layers", "cls", "depth"])
def test_builder_internals_are_not_options(option):
    with pytest.raises(TypeError, match=f"model option '{option}' is not known"):
        create_model("resnet20", **{option: 1})
