"""Freezing parts of a model for transfer learning, and backbone/head parameter groups.

Specs: "none" (train everything), "backbone" (train only the head), "stages:N" (freeze
the stem and the first N stages). The head is the classifier from ``get_classifier()``;
for a wrapper with a ``backbone`` attribute (multi-scale fusion) it is everything outside
the backbone, since the fusion layers are new and must train.

Frozen BatchNorm statistics: with ``freeze_bn_stats=True`` each BatchNorm in the frozen
part is switched to a subclass (``FrozenStatsBatchNorm2d``) whose ``train()`` always
means eval. ``model.train()`` anywhere, e.g. in a trainer that knows nothing of
freezing, then cannot resume updating running statistics. Keys, parameters and
``isinstance(m, nn.BatchNorm2d)`` are unchanged, and the state survives deepcopy and
pickling; ``unfreeze`` switches the layers back.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from torch import nn


class _FrozenStats:
    """Mixin for a normalisation layer that stays in eval mode."""

    def train(self, mode: bool = True) -> Any:
        return super().train(False)  # type: ignore[misc]


class FrozenStatsBatchNorm1d(_FrozenStats, nn.BatchNorm1d):
    pass


class FrozenStatsBatchNorm2d(_FrozenStats, nn.BatchNorm2d):
    pass


class FrozenStatsBatchNorm3d(_FrozenStats, nn.BatchNorm3d):
    pass


_FROZEN_CLASS: dict[type[nn.Module], type[nn.Module]] = {
    nn.BatchNorm1d: FrozenStatsBatchNorm1d,
    nn.BatchNorm2d: FrozenStatsBatchNorm2d,
    nn.BatchNorm3d: FrozenStatsBatchNorm3d,
}
_PLAIN_CLASS = {frozen: plain for plain, frozen in _FROZEN_CLASS.items()}


def freeze(model: nn.Module, spec: str, *, freeze_bn_stats: bool = False) -> list[nn.Module]:
    """Freeze the part of ``model`` named by ``spec``; anything frozen before is released first.

    Returns the BatchNorm layers whose statistics are now fixed (empty unless ``freeze_bn_stats``).
    """
    unfreeze(model)
    frozen = _frozen_modules(model, spec)
    for module in frozen:
        for param in module.parameters():
            param.requires_grad_(False)
    held: list[nn.Module] = []
    if freeze_bn_stats:
        for module in frozen:
            for layer in module.modules():
                if type(layer) in _FROZEN_CLASS:
                    layer.__class__ = _FROZEN_CLASS[type(layer)]
                    layer.train(False)
                    held.append(layer)
    return held


def unfreeze(model: nn.Module) -> None:
    """Make every parameter trainable and let every BatchNorm follow ``model.train()`` again."""
    for param in model.parameters():
        param.requires_grad_(True)
    for layer in model.modules():
        if type(layer) in _PLAIN_CLASS:
            layer.__class__ = _PLAIN_CLASS[type(layer)]
            layer.train(model.training)


def param_groups(model: nn.Module, *, backbone_lr: float, head_lr: float) -> list[dict[str, Any]]:
    """Optimizer groups {"name", "params", "lr"} for the trainable backbone and head parameters.

    Frozen parameters are left out; a group with no trainable parameter is omitted.
    """
    backbone_ids = {id(p) for module in _backbone_modules(model) for p in module.parameters()}
    backbone = [p for p in model.parameters() if p.requires_grad and id(p) in backbone_ids]
    head = [p for p in model.parameters() if p.requires_grad and id(p) not in backbone_ids]
    groups = [{"name": "backbone", "params": backbone, "lr": backbone_lr},
              {"name": "head", "params": head, "lr": head_lr}]
    return [group for group in groups if group["params"]]


def _frozen_modules(model: nn.Module, spec: str) -> list[nn.Module]:
    if spec == "none":
        return []
    if spec == "backbone":
        return list(_backbone_modules(model))
    if spec.startswith("stages:"):
        if not (hasattr(model, "get_stem") and hasattr(model, "get_stages")):
            raise ValueError(f"freeze '{spec}' needs a model with stages, {type(model).__name__} has none; "
                            "use 'backbone' or 'none'")
        stages = model.get_stages()
        count = spec[len("stages:"):]
        if not count.isdigit() or int(count) > len(stages):
            raise ValueError(f"freeze '{spec}' is not valid; use stages:N with N from 0 to {len(stages)}")
        return [*model.get_stem(), *stages[: int(count)]]
    raise ValueError(f"freeze '{spec}' is not known; use 'none', 'backbone' or 'stages:N'")


def _backbone_modules(model: nn.Module) -> Iterator[nn.Module]:
    """The modules whose parameters count as backbone: all but the head (see module doc)."""
    backbone = getattr(model, "backbone", None)
    if isinstance(backbone, nn.Module):
        yield backbone
        return
    if not hasattr(model, "get_classifier"):
        raise ValueError(f"{type(model).__name__} has no get_classifier(), so its head is unknown; "
                        "freeze 'none' or build the model with create_model")
    head = model.get_classifier()
    head_ids = {id(m) for m in head.modules()}
    # direct children that are not the head; the head may itself be a direct child or nested
    for child in model.children():
        if child is head:
            continue
        if any(id(m) in head_ids for m in child.modules()):
            raise ValueError(f"classifier of {type(model).__name__} is nested; _backbone_modules needs it top-level")
        yield child
