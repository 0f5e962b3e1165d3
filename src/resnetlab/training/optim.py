"""Optimizer construction: parameter groups for weight decay and backbone learning rate."""

from __future__ import annotations

import torch
from torch import nn


def parameter_groups(model: nn.Module, *, weight_decay: float, decay_norm_and_bias: bool,
                     backbone_lr_scale: float, head: list[nn.Parameter] | None) -> list[dict]:
    """Split parameters by (backbone|head) x (decay|no decay).

    Weight decay on BatchNorm scales and biases only shrinks them towards a worse optimum;
    excluding them is the usual recipe (arXiv:1812.01187, "no bias decay"). Frozen parameters
    stay in the groups: their grad is None so no optimizer touches them, and a later stage
    can unfreeze them without rebuilding the optimizer (and losing its state).
    """
    head_ids = {id(p) for p in head} if head is not None else set()
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for param in model.parameters():
        no_decay = param.ndim <= 1 and not decay_norm_and_bias
        groups.setdefault((id(param) in head_ids, no_decay), []).append(param)
    out = []
    for (is_head, no_decay), params in sorted(groups.items()):
        out.append({"params": params, "weight_decay": 0.0 if no_decay else weight_decay,
                    "lr_scale": 1.0 if is_head or head is None else backbone_lr_scale,
                    "name": f"{'head' if is_head else 'backbone'}{'/no_decay' if no_decay else ''}"})
    return out


OPTIMIZERS = ("sgd", "adam", "adamw")


def build_optimizer(model: nn.Module, *, name: str = "sgd", lr: float, momentum: float = 0.9,
                    nesterov: bool = False, betas: tuple[float, float] = (0.9, 0.999), weight_decay: float = 0.0,
                    decay_norm_and_bias: bool = False, backbone_lr_scale: float = 1.0,
                    head: list[nn.Parameter] | None = None) -> torch.optim.Optimizer:
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
    groups = parameter_groups(model, weight_decay=weight_decay, decay_norm_and_bias=decay_norm_and_bias,
                              backbone_lr_scale=backbone_lr_scale, head=head)
    for group in groups:
        group["lr"] = lr * group["lr_scale"]
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0)
    betas = (float(betas[0]), float(betas[1]))
    if name == "adam":
        # Adam's weight_decay is L2 added to the gradient (unlike AdamW's decoupled decay).
        return torch.optim.Adam(groups, lr=lr, betas=betas)
    return torch.optim.AdamW(groups, lr=lr, betas=betas)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
