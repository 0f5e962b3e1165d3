"""ResNet (He et al., "Deep Residual Learning for Image Recognition", arXiv:1512.03385).

Module names double as state-dict keys and equal torchvision's (conv1, bn1, relu, maxpool,
layer1..layer4, avgpool, fc; blocks with conv1/bn1, conv2/bn2, conv3/bn3 and
``downsample`` = Sequential(conv1x1, bn)), so torchvision checkpoints load as they are.
Options that torchvision lacks (CIFAR stem, dropout, SE in blocks) add no keys or only
new ones.

Every model here has the same face: ``forward_stages``, ``forward_features``,
``forward_head(x, pre_logits=False)``, ``forward``, ``get_classifier``,
``reset_classifier``, ``get_stem``, ``get_stages`` and the attributes ``num_features``,
``num_classes`` and ``stage_channels``.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from resnetlab.errors import did_you_mean
from resnetlab.models.attention import SqueezeExcite
from resnetlab.models.registry import register_model

STEMS = ("imagenet", "cifar")


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution, padding 1; no bias because a BatchNorm always follows."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution without bias (a BatchNorm always follows)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions plus the shortcut (ResNet-18/34 and the CIFAR ResNets)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, *, stride: int = 1, downsample: nn.Module | None = None,
                 attention: bool = False) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.se = SqueezeExcite(planes) if attention else None
        self.downsample = downsample
        self.stride = stride

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.bn2.weight)

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.se is not None:
            out = self.se(out)
        return self.relu(out + shortcut)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand by 4 (ResNet-50/101/152).

    The stride sits on the 3x3 convolution ("ResNet v1.5", as in torchvision) rather than
    on the first 1x1 as in the paper: a strided 1x1 never looks at three quarters of its
    input. NVIDIA's v1.5 notes report about +0.5% top-1 for ~5% lower throughput.
    """

    expansion = 4

    def __init__(self, inplanes: int, planes: int, *, stride: int = 1, downsample: nn.Module | None = None,
                 attention: bool = False) -> None:
        super().__init__()
        width = planes
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.se = SqueezeExcite(planes * self.expansion) if attention else None
        self.downsample = downsample
        self.stride = stride

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.bn3.weight)

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.se is not None:
            out = self.se(out)
        return self.relu(out + shortcut)


Block = type[BasicBlock] | type[Bottleneck]


class ResNet(nn.Module):
    """A stem, one stage (``layer<i>``) per entry of ``layers``, global average pool, fc.

    ``stem="imagenet"`` is the 7x7 stride-2 convolution and 3x3 stride-2 max-pool
    (input/4); ``stem="cifar"`` is a 3x3 stride-1 convolution and no pooling, for inputs
    of 32-64 pixels that the ImageNet stem would shrink to almost nothing. Both keep
    the same keys (``maxpool`` becomes ``nn.Identity``).

    ``drop_rate`` is dropout on the pooled features before ``fc``; ``block_attention``
    puts squeeze-and-excitation on each residual branch before the addition (SE-ResNet,
    arXiv:1709.01507), adding ``.se.`` keys only; ``num_classes=0`` leaves no classifier.
    """

    def __init__(
        self,
        block: Block,
        layers: Sequence[int],
        *,
        num_classes: int = 1000,
        in_channels: int = 3,
        stem: str = "imagenet",
        widths: Sequence[int] = (64, 128, 256, 512),
        zero_init_residual: bool = False,
        drop_rate: float = 0.0,
        block_attention: bool = False,
    ) -> None:
        super().__init__()
        _check_value("num_classes", num_classes, int, 0, "use 0 for no classifier or a positive class count")
        _check_value("in_channels", in_channels, int, 1, "use 1 (grayscale), 3 (RGB) or another positive count")
        if stem not in STEMS:
            raise ValueError(f"stem '{stem}' is not known; use one of {', '.join(STEMS)}")
        if isinstance(drop_rate, bool) or not isinstance(drop_rate, (int, float)) or not 0.0 <= drop_rate < 1.0:
            raise ValueError(f"drop_rate {drop_rate!r} is outside [0, 1); use e.g. 0.0 or 0.2")
        if len(widths) != len(layers):
            raise ValueError(f"widths {tuple(widths)} and layers {tuple(layers)} differ in length")

        self.num_classes = num_classes
        self.drop_rate = drop_rate
        stem_width = widths[0]
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_channels, stem_width, kernel_size=7, stride=2, padding=3, bias=False)
        else:
            self.conv1 = conv3x3(in_channels, stem_width)
        self.bn1 = nn.BatchNorm2d(stem_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1) if stem == "imagenet" else nn.Identity()

        self.stage_names: list[str] = []
        inplanes = stem_width
        for index, (width, depth) in enumerate(zip(widths, layers), start=1):
            stride = 1 if index == 1 else 2
            stage = self._make_layer(block, inplanes, width, depth, stride=stride, attention=block_attention)
            setattr(self, f"layer{index}", stage)
            self.stage_names.append(f"layer{index}")
            inplanes = width * block.expansion
        self.stage_channels = [width * block.expansion for width in widths]
        self.num_features = self.stage_channels[-1]

        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = self._make_classifier(num_classes)

        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        if zero_init_residual:
            # Every residual branch then starts at zero, so each block starts as the identity
            # (plus ReLU); this improves ResNet-50 by 0.2-0.3% top-1 (Goyal et al., arXiv:1706.02677).
            for module in self.modules():
                if isinstance(module, (BasicBlock, Bottleneck)):
                    module.zero_init_last()

    def _make_layer(self, block: Block, inplanes: int, planes: int, depth: int, *, stride: int,
                    attention: bool) -> nn.Sequential:
        outplanes = planes * block.expansion
        blocks = [block(inplanes, planes, stride=stride, downsample=self._shortcut(inplanes, outplanes, stride),
                        attention=attention)]
        blocks += [block(outplanes, planes, attention=attention) for _ in range(1, depth)]
        return nn.Sequential(*blocks)

    def _shortcut(self, inplanes: int, outplanes: int, stride: int) -> nn.Module | None:
        """Projection shortcut (the paper's option B) where the shape changes, else identity."""
        if stride == 1 and inplanes == outplanes:
            return None
        return nn.Sequential(conv1x1(inplanes, outplanes, stride), nn.BatchNorm2d(outplanes))

    def _make_classifier(self, num_classes: int) -> nn.Module:
        return nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def get_stem(self) -> list[nn.Module]:
        return [self.conv1, self.bn1]

    def get_stages(self) -> list[nn.Module]:
        return [getattr(self, name) for name in self.stage_names]

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        """Replace fc by a freshly initialised one; 0 makes the model a feature extractor."""
        _check_value("num_classes", num_classes, int, 0, "use 0 for no classifier or a positive class count")
        self.num_classes = num_classes
        self.fc = self._make_classifier(num_classes)

    def _forward_stem(self, x: Tensor) -> Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def forward_stages(self, x: Tensor) -> list[Tensor]:
        """The output map of every stage, shallow to deep (inputs to multi-scale fusion)."""
        x = self._forward_stem(x)
        outputs = []
        for stage in self.get_stages():
            x = stage(x)
            outputs.append(x)
        return outputs

    def forward_features(self, x: Tensor) -> Tensor:
        """The last stage's map, shape (N, num_features, h, w)."""
        x = self._forward_stem(x)
        for stage in self.get_stages():
            x = stage(x)
        return x

    def forward_head(self, x: Tensor, *, pre_logits: bool = False) -> Tensor:
        """Pool a feature map; return the (N, num_features) vector if ``pre_logits``, else logits."""
        x = self.avgpool(x).flatten(1)
        if pre_logits:
            return x
        if self.drop_rate > 0:
            x = F.dropout(x, p=self.drop_rate, training=self.training)
        return self.fc(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def _check_value(name: str, value: Any, kind: type, minimum: int, advice: str) -> None:
    if isinstance(value, bool) or not isinstance(value, kind) or value < minimum:
        raise ValueError(f"{name} {value!r} is not valid; {advice}")


def scaled_widths(widths: Sequence[int], width: float) -> tuple[int, ...]:
    """Every stage's channels times ``width`` (Wide ResNets' k, arXiv:1605.07146), at least 1."""
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not width > 0:
        raise ValueError(f"width {width!r} is not valid; use a positive multiplier such as 0.5, 1 or 2")
    return tuple(max(1, round(w * width)) for w in widths)


def _resnet(block: Block, layers: Sequence[int], cls: type[ResNet] = ResNet, /, *, width: float = 1.0,
            **kwargs: Any) -> ResNet:
    """Build ``cls``; an unknown option is the user's typo, so it is reported as one.

    ``width`` multiplies the stage widths (given, or the class default).
    """
    signature = inspect.signature(cls.__init__).parameters
    known = [name for name, p in signature.items() if p.kind is p.KEYWORD_ONLY]
    for name in kwargs:
        if name not in known:
            hint = did_you_mean(name, [*known, "width"], prefix="") or f"options are {', '.join(known)}, width"
            raise TypeError(f"model option '{name}' is not known; {hint}")
    if width != 1.0:
        kwargs["widths"] = scaled_widths(kwargs.get("widths", signature["widths"].default), width)
    return cls(block, layers, **kwargs)


@register_model
def resnet10(**kwargs: Any) -> ResNet:
    """ResNet-10: one BasicBlock per stage; 5.4M parameters at 1000 classes (no ImageNet weights here)."""
    return _resnet(BasicBlock, [1, 1, 1, 1], **kwargs)


@register_model
def resnet18(**kwargs: Any) -> ResNet:
    """ResNet-18: 11.7M parameters at 1000 classes."""
    return _resnet(BasicBlock, [2, 2, 2, 2], **kwargs)


@register_model
def resnet34(**kwargs: Any) -> ResNet:
    """ResNet-34: 21.8M parameters at 1000 classes."""
    return _resnet(BasicBlock, [3, 4, 6, 3], **kwargs)


@register_model
def resnet50(**kwargs: Any) -> ResNet:
    """ResNet-50 (v1.5): 25.6M parameters at 1000 classes."""
    return _resnet(Bottleneck, [3, 4, 6, 3], **kwargs)


@register_model
def resnet101(**kwargs: Any) -> ResNet:
    """ResNet-101 (v1.5): 44.5M parameters at 1000 classes."""
    return _resnet(Bottleneck, [3, 4, 23, 3], **kwargs)


@register_model
def resnet152(**kwargs: Any) -> ResNet:
    """ResNet-152 (v1.5): 60.2M parameters at 1000 classes."""
    return _resnet(Bottleneck, [3, 8, 36, 3], **kwargs)
