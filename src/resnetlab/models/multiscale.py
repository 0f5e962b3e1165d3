"""Multi-scale feature fusion around any backbone with the resnetlab face.

Each stage's output map is average-pooled to a vector, optionally projected to
``project_dim`` (Linear + ReLU), and the vectors are concatenated; optional
squeeze-and-excitation then re-weights the fused channels before the classifier.
Shallow stages carry texture and local detail that global pooling of the last stage
throws away, which is why image-quality models fuse them.

Sizes for a ResNet-50 backbone at 1000 classes: plain 25,557,032; fused without
projection (3840 features) 27,349,032; plus SE on the fused vector 29,196,312. With
``project_dim=512`` the fused vector is 2048 wide like the plain model's:
27,525,160 and, with SE, 28,051,624.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from resnetlab.models.attention import SqueezeExcite
from resnetlab.models.wrapped import WrappedBackbone, check_num_classes


class MultiScaleResNet(WrappedBackbone):
    """Backbone + pooled features of every stage fused into one vector + classifier.

    The backbone's own classifier is removed (set to ``nn.Identity``): logits come from
    the fused vector. ``forward_features`` returns that vector, shape (N, num_features).
    """

    def __init__(self, backbone: nn.Module, *, num_classes: int | None = None, project_dim: int | None = None,
                 attention: bool = False, drop_rate: float = 0.0) -> None:
        super().__init__()
        for needed in ("forward_stages", "stage_channels", "reset_classifier", "num_classes"):
            if not hasattr(backbone, needed):
                raise TypeError(f"{type(backbone).__name__} lacks '{needed}', so it cannot be fused across scales")
        if num_classes is None:
            num_classes = backbone.num_classes
        check_num_classes(num_classes)
        if project_dim is not None and (isinstance(project_dim, bool) or not isinstance(project_dim, int)
                                        or project_dim < 1):
            raise ValueError(f"project_dim {project_dim!r} is not valid; use a positive size such as 512, or None")
        if not 0.0 <= drop_rate < 1.0:
            raise ValueError(f"drop_rate {drop_rate} is outside [0, 1); use e.g. 0.0 or 0.2")

        backbone.reset_classifier(0)
        self.backbone = backbone
        self.stage_channels = list(backbone.stage_channels)
        if project_dim is None:
            self.proj = None
            fused = sum(self.stage_channels)
        else:
            self.proj = nn.ModuleList(
                nn.Sequential(nn.Linear(channels, project_dim), nn.ReLU(inplace=True))
                for channels in self.stage_channels
            )
            fused = project_dim * len(self.stage_channels)
        self.num_features = fused
        self.se = SqueezeExcite(fused) if attention else None
        self.drop_rate = drop_rate
        self.num_classes = num_classes
        self.fc = self._make_classifier(num_classes)

    def _make_classifier(self, num_classes: int) -> nn.Module:
        return nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward_stages(self, x: Tensor) -> list[Tensor]:
        return self.backbone.forward_stages(x)

    def forward_features(self, x: Tensor) -> Tensor:
        pooled = [F.adaptive_avg_pool2d(stage, 1).flatten(1) for stage in self.forward_stages(x)]
        if self.proj is not None:
            pooled = [proj(vector) for proj, vector in zip(self.proj, pooled)]
        fused = torch.cat(pooled, dim=1)
        if self.se is not None:
            fused = self.se(fused)
        return fused

    def forward_head(self, x: Tensor, *, pre_logits: bool = False) -> Tensor:
        """Map the fused vector to logits (or return it unchanged if ``pre_logits``)."""
        if pre_logits:
            return x
        if self.drop_rate > 0:
            x = F.dropout(x, p=self.drop_rate, training=self.training)
        return self.fc(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def with_multiscale(backbone: nn.Module, *, num_classes: int | None = None, project_dim: int | None = None,
                    attention: bool = False, drop_rate: float = 0.0) -> MultiScaleResNet:
    """Wrap ``backbone`` (e.g. ``create_model("resnet50")``) with multi-scale fusion.

    ``num_classes`` defaults to the backbone's; ``attention`` adds SE on the fused vector.
    The backbone's classifier is dropped in place.
    """
    return MultiScaleResNet(backbone, num_classes=num_classes, project_dim=project_dim, attention=attention,
                            drop_rate=drop_rate)
