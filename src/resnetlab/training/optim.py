"""Optimizer construction: parameter groups for weight decay and backbone learning rate."""

from __future__ import annotations

import torch
from torch import nn

from resnetlab.config.schema import OptimConfig


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


def build_optimizer(model: nn.Module, cfg: OptimConfig, *,
                    head: list[nn.Parameter] | None = None) -> torch.optim.Optimizer:
    groups = parameter_groups(model, weight_decay=cfg.weight_decay, decay_norm_and_bias=cfg.decay_norm_and_bias,
                              backbone_lr_scale=cfg.backbone_lr_scale, head=head)
    for group in groups:
        group["lr"] = cfg.lr * group["lr_scale"]
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)
    betas = tuple(cfg.betas)
    if cfg.name == "adam":
        # Adam's weight_decay is L2 added to the gradient (what an "adam" optimizer comparison means).
        return torch.optim.Adam(groups, lr=cfg.lr, betas=betas)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=betas)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
