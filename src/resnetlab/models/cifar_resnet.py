"""The CIFAR ResNets of He et al. 2015 (arXiv:1512.03385, section 4.2): resnet20..resnet110.

6n+2 weighted layers: a 3x3 stem convolution with 16 channels, three stages of n
BasicBlocks with 16/32/64 channels (stride 2 entering stages 2 and 3), global average
pool, fc. Shortcuts are the paper's option A: where the shape changes the input is
subsampled by the stride and zero-padded with channels, so shortcuts hold no
parameters. Paper sizes at 10 classes: 0.27M, 0.46M, 0.66M, 0.85M, 1.7M.

Built on ``ResNet`` with the same names (conv1, bn1, layer1..layer3, avgpool, fc) and face.
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from resnetlab.models.registry import register_model
from resnetlab.models.resnet import BasicBlock, ResNet, _resnet


class PadShortcut(nn.Module):
    """Option-A shortcut: take every ``stride``-th pixel and append zero channels."""

    def __init__(self, extra_channels: int, stride: int) -> None:
        super().__init__()
        self.extra_channels = extra_channels
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))

    def extra_repr(self) -> str:
        return f"extra_channels={self.extra_channels}, stride={self.stride}"


class CifarResNet(ResNet):
    """``ResNet`` with parameter-free (option A) shortcuts."""

    def _shortcut(self, inplanes: int, outplanes: int, stride: int) -> nn.Module | None:
        if stride == 1 and inplanes == outplanes:
            return None
        return PadShortcut(outplanes - inplanes, stride)


def _cifar_resnet(depth: int, /, **kwargs: Any) -> CifarResNet:
    blocks_per_stage = (depth - 2) // 6
    kwargs.setdefault("num_classes", 10)
    kwargs.setdefault("stem", "cifar")
    kwargs.setdefault("widths", (16, 32, 64))
    return _resnet(BasicBlock, [blocks_per_stage] * 3, CifarResNet, **kwargs)


@register_model
def resnet20(**kwargs: Any) -> CifarResNet:
    """CIFAR ResNet-20 (n=3): 0.27M parameters at 10 classes."""
    return _cifar_resnet(20, **kwargs)


@register_model
def resnet32(**kwargs: Any) -> CifarResNet:
    """CIFAR ResNet-32 (n=5): 0.46M parameters at 10 classes."""
    return _cifar_resnet(32, **kwargs)


@register_model
def resnet44(**kwargs: Any) -> CifarResNet:
    """CIFAR ResNet-44 (n=7): 0.66M parameters at 10 classes."""
    return _cifar_resnet(44, **kwargs)


@register_model
def resnet56(**kwargs: Any) -> CifarResNet:
    """CIFAR ResNet-56 (n=9): 0.85M parameters at 10 classes."""
    return _cifar_resnet(56, **kwargs)


@register_model
def resnet110(**kwargs: Any) -> CifarResNet:
    """CIFAR ResNet-110 (n=18): 1.7M parameters at 10 classes."""
    return _cifar_resnet(110, **kwargs)
