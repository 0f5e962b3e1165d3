"""Image features fused with a side-feature vector (e.g. a frame's visual features + its 8-D spatial features).

The backbone's pooled features are projected to ``visual_dim`` (Linear + ReLU), combined
with the side features by one of three rules, and a one-hidden-layer head maps the result
to logits or a score:

- ``concat``: [visual, side], size visual_dim + feature_dim;
- ``bilinear``: ``nn.Bilinear(visual, side) -> visual_dim``, every product of the two;
- ``add``: visual + side, which needs visual_dim == feature_dim.

The hidden layer is there because concat and add feed the head a sum of an image term and
a side term; a label that depends on how the two interact needs a nonlinearity after them.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from resnetlab.models.wrapped import WrappedBackbone, check_num_classes

FUSIONS = ("concat", "bilinear", "add")


class FusionModel(WrappedBackbone):
    """``backbone`` (any model with the resnetlab face) plus side features, fused before the head.

    ``forward(images, features)`` takes images (N, C, H, W) and features (N, feature_dim).
    The backbone's own classifier is dropped; ``forward_features`` returns the fused vector.
    """

    def __init__(self, backbone: nn.Module, *, num_classes: int, feature_dim: int, visual_dim: int = 256,
                 fusion: str = "concat", drop_rate: float = 0.0) -> None:
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"model.fusion={fusion} is not known; use one of {', '.join(FUSIONS)}")
        if feature_dim < 1:
            raise ValueError(f"model.fusion={fusion} needs side features; set data.feature_columns to the CSV "
                            "columns that hold them")
        if fusion == "add" and visual_dim != feature_dim:
            raise ValueError(f"model.fusion=add needs equal sizes but model.visual_dim={visual_dim} and there are "
                            f"{feature_dim} feature columns; set model.visual_dim={feature_dim} or use concat")
        if not 0.0 <= drop_rate < 1.0:
            raise ValueError(f"drop_rate {drop_rate} is outside [0, 1); use e.g. 0.0 or 0.2")
        check_num_classes(num_classes)
        backbone.reset_classifier(0)
        self.backbone = backbone
        self.fusion = fusion
        self.feature_dim, self.visual_dim = feature_dim, visual_dim
        self.visual = nn.Sequential(nn.Linear(backbone.num_features, visual_dim), nn.ReLU(inplace=True))
        self.bilinear = nn.Bilinear(visual_dim, feature_dim, visual_dim) if fusion == "bilinear" else None
        self.num_features = visual_dim + feature_dim if fusion == "concat" else visual_dim
        self.drop_rate = drop_rate
        self.num_classes = num_classes
        self.fc = self._make_classifier(num_classes)

    def _make_classifier(self, num_classes: int) -> nn.Module:
        if num_classes == 0:
            return nn.Identity()
        hidden = self.visual_dim
        return nn.Sequential(nn.Linear(self.num_features, hidden), nn.ReLU(inplace=True),
                             nn.Dropout(self.drop_rate), nn.Linear(hidden, num_classes))

    def forward_features(self, images: Tensor, features: Tensor) -> Tensor:
        visual = self.visual(self.backbone.forward_head(self.backbone.forward_features(images), pre_logits=True))
        side = features.to(visual.dtype)
        if self.fusion == "concat":
            return torch.cat([visual, side], dim=1)
        if self.fusion == "bilinear":
            # nn.Bilinear is not on autocast's lists, so under bf16/fp16 its inputs and fp32 weight
            # would disagree; it is small, so it runs in fp32.
            with torch.autocast(visual.device.type, enabled=False):
                return self.bilinear(visual.float(), side.float())
        return visual + side

    def forward_head(self, x: Tensor, *, pre_logits: bool = False) -> Tensor:
        return x if pre_logits else self.fc(x)

    def forward(self, images: Tensor, features: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(images, features))


def with_fusion(backbone: nn.Module, *, num_classes: int, feature_dim: int, visual_dim: int = 256,
                fusion: str = "concat", drop_rate: float = 0.0) -> FusionModel:
    """Wrap ``backbone`` (e.g. ``create_model("resnet18")``) to also take a side-feature vector."""
    return FusionModel(backbone, num_classes=num_classes, feature_dim=feature_dim, visual_dim=visual_dim,
                       fusion=fusion, drop_rate=drop_rate)
