"""Mixup and CutMix on whole batches: each image is mixed with its neighbour in the batch.

The partner of image ``i`` is image ``i - 1`` (``roll(1)``): batches are already shuffled, so
a fixed pairing costs no random draw and no gather, and no image is paired with itself when
the batch holds more than one. Targets are soft (one-hot rows, or regression values) and are
mixed with the same weight as the pixels, so ``weight * own + (1 - weight) * partner``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def soft_targets(targets: Tensor, *, num_classes: int) -> Tensor:
    """Class labels (N,) as float32 one-hot rows (N, num_classes); regression targets
    (``num_classes == 0``) as float32 values of their own shape."""
    if num_classes == 0:
        return targets.to(torch.float32)
    if targets.dtype != torch.int64:
        raise TypeError(f"class targets must be int64 labels, got {targets.dtype}")
    return F.one_hot(targets, num_classes).to(torch.float32)


def mix_targets(targets: Tensor, weight: Tensor | float) -> Tensor:
    """``weight * targets + (1 - weight) * partner targets``; ``weight`` is a float or one per image."""
    if isinstance(weight, Tensor):
        weight = weight.view(-1, *([1] * (targets.dim() - 1)))
    return targets * weight + targets.roll(1, 0) * (1 - weight)


def mixup(images: Tensor, targets: Tensor, *, lam: float) -> tuple[Tensor, Tensor]:
    """Blend every image with its partner: ``lam`` of its own pixels and targets (arXiv:1710.09412)."""
    mixed = images.mul(lam).add_(images.roll(1, 0), alpha=1.0 - lam)
    return mixed, mix_targets(targets, lam)


def cutmix(images: Tensor, targets: Tensor, *, lam: float,
           generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Paste a box of the partner into every image (arXiv:1905.04899).

    The box covers ``1 - lam`` of the area before clipping; its centre is drawn per image, so
    boxes near a border are clipped and that image keeps more of itself. Each image's targets
    use the share of its own pixels that really remains, not ``lam``.
    """
    n, _, h, w = images.shape
    side = math.sqrt(1.0 - lam)
    box_h, box_w = int(h * side), int(w * side)
    cy = torch.randint(0, h, (n,), generator=generator, device=images.device)
    cx = torch.randint(0, w, (n,), generator=generator, device=images.device)
    top, left = cy - box_h // 2, cx - box_w // 2
    bottom, right = (top + box_h).clamp(0, h), (left + box_w).clamp(0, w)
    top, left = top.clamp(0, h), left.clamp(0, w)

    # lerp with a 0/1 weight returns either end exactly, and is faster than torch.where on CPU.
    mixed = torch.lerp(images, images.roll(1, 0), box_mask(top, bottom, left, right, h, w))
    kept = 1.0 - ((bottom - top) * (right - left)).to(torch.float32) / (h * w)
    return mixed, mix_targets(targets, kept)


def box_mask(top: Tensor, bottom: Tensor, left: Tensor, right: Tensor, h: int, w: int, *,
             where: Tensor | None = None) -> Tensor:
    """Float mask (N, 1, H, W), 1 inside each image's box [top, bottom) x [left, right).

    Built as an outer product of a row and a column indicator; multiplying by it is much
    faster than ``masked_fill_`` or ``torch.where`` on CPU. ``where`` (N,) bool keeps only
    the boxes of chosen images.
    """
    rows = torch.arange(h, device=top.device).view(1, h)
    cols = torch.arange(w, device=top.device).view(1, w)
    in_rows = (rows >= top.view(-1, 1)) & (rows < bottom.view(-1, 1))
    if where is not None:
        in_rows &= where.view(-1, 1)
    in_cols = (cols >= left.view(-1, 1)) & (cols < right.view(-1, 1))
    return (in_rows.to(torch.float32).unsqueeze(2) * in_cols.to(torch.float32).unsqueeze(1)).unsqueeze(1)
