"""Progressive resizing: early epochs see smaller images, so they cost less.

A convolutional network takes any image size, and the early epochs learn coarse shapes that
small images hold as well; the side then grows linearly to the full size, and the last epochs
train at the size the model is validated and tested at (so BatchNorm's statistics and the
receptive fields match it). fast.ai's DAWNBench ImageNet runs and FFCV's ResNet-50 recipes
(arXiv:2306.12517) train this way.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def progressive_size(epoch: int, *, start: int, full: int, epochs: int, until: float) -> int:
    """The image side for ``epoch`` (0-based) of ``epochs``: ``start`` at the first epoch, growing
    linearly to ``full``, reached at ``until`` of the epochs and kept to the end."""
    ramp = round(until * epochs)
    if epoch >= ramp:
        return full
    return round(start + (full - start) * epoch / ramp)


def resize_batch(images: torch.Tensor, size: int) -> torch.Tensor:
    """``images`` (N, C, H, W) scaled to ``size`` x ``size``; antialiased, so a smaller image is an
    average of the pixels it replaces, not a subsample of them."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
