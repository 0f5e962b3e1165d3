"""The face shared by models that put a new head on a backbone (multi-scale fusion, side features)."""

from __future__ import annotations

from torch import nn


class WrappedBackbone(nn.Module):
    """Stem and stages are the backbone's; the classifier ``fc`` is the wrapper's own.

    So freezing, parameter groups and the classifier reset treat a wrapper like a plain
    ResNet. A subclass sets ``backbone`` and builds ``fc`` with its ``_make_classifier``.
    """

    backbone: nn.Module
    fc: nn.Module
    num_classes: int

    def _make_classifier(self, num_classes: int) -> nn.Module:
        raise NotImplementedError

    def get_stem(self) -> list[nn.Module]:
        return self.backbone.get_stem()

    def get_stages(self) -> list[nn.Module]:
        return self.backbone.get_stages()

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        """A freshly initialised classifier; 0 makes the model a feature extractor."""
        check_num_classes(num_classes)
        self.num_classes = num_classes
        self.fc = self._make_classifier(num_classes)


def check_num_classes(num_classes: object) -> None:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
        raise ValueError(f"num_classes {num_classes!r} is not valid; use 0 for no classifier or a positive count")
