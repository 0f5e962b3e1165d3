"""ResNet models behind one registry; importing this package registers every model.

    from resnetlab.models import create_model, summarize
    model = create_model("resnet50", num_classes=10, in_channels=1)
"""

from resnetlab.models import cifar_resnet, resnet  # noqa: F401  (imported to register their models)
from resnetlab.models.attention import SqueezeExcite
from resnetlab.models.cifar_resnet import CifarResNet
from resnetlab.models.freeze import freeze, param_groups, unfreeze
from resnetlab.models.fusion import FusionModel, with_fusion
from resnetlab.models.multiscale import MultiScaleResNet, with_multiscale
from resnetlab.models.registry import create_model, is_model, list_models, register_model
from resnetlab.models.resnet import BasicBlock, Bottleneck, ResNet
from resnetlab.models.summary import LayerRow, ModelSummary, summarize
from resnetlab.models.weights import PRETRAINED, PretrainedWeights, get_pretrained, load_pretrained, load_weights_file

__all__ = [
    "PRETRAINED",
    "BasicBlock",
    "Bottleneck",
    "CifarResNet",
    "FusionModel",
    "LayerRow",
    "ModelSummary",
    "MultiScaleResNet",
    "PretrainedWeights",
    "ResNet",
    "SqueezeExcite",
    "create_model",
    "freeze",
    "get_pretrained",
    "is_model",
    "list_models",
    "load_pretrained",
    "load_weights_file",
    "param_groups",
    "register_model",
    "summarize",
    "unfreeze",
    "with_fusion",
    "with_multiscale",
]
