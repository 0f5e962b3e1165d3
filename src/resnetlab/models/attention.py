"""Squeeze-and-excitation channel attention (Hu et al., arXiv:1709.01507).

One module serves both places it is used: inside residual blocks on feature maps
(N, C, H, W), and on a fused feature vector (N, C) in the multi-scale head.
"""

from __future__ import annotations

from torch import Tensor, nn


class SqueezeExcite(nn.Module):
    """Rescale each channel by a gate in (0, 1) computed from all channels.

    Squeeze: global average over space (skipped for an (N, C) vector). Excite: C -> C/r
    -> C through ReLU and a sigmoid. The output has the input's shape.
    """

    def __init__(self, channels: int, *, reduction: int = 16, min_hidden: int = 8) -> None:
        super().__init__()
        if channels < 1 or reduction < 1:
            raise ValueError(f"SqueezeExcite needs channels >= 1 and reduction >= 1, got {channels}, {reduction}")
        # A floor on the bottleneck keeps narrow layers (16 channels in CIFAR ResNets) from
        # squeezing through a single unit; wide layers get the paper's C/r exactly.
        self.hidden = min(channels, max(channels // reduction, min_hidden))
        self.fc1 = nn.Linear(channels, self.hidden)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(self.hidden, channels)
        self.gate = nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 4:
            squeezed = x.mean(dim=(2, 3))
        elif x.dim() == 2:
            squeezed = x
        else:
            raise ValueError(f"SqueezeExcite expects (N, C, H, W) or (N, C), got shape {tuple(x.shape)}")
        weights = self.gate(self.fc2(self.relu(self.fc1(squeezed))))
        if x.dim() == 4:
            weights = weights[:, :, None, None]
        return x * weights
