"""Run a model over a loader and collect its outputs: the one inference path.

Training-time validation, ``resnetlab eval`` and ``resnetlab predict`` all come through
here, so what is measured during training is what the commands measure later.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from resnetlab.data.loader import BatchLoader


@dataclass
class Outputs:
    outputs: np.ndarray  # logits (N, K) or scores (N,)
    targets: np.ndarray
    index: np.ndarray  # positions in the split
    features: np.ndarray | None = None  # pooled features, when asked for


class OutputsAndFeatures(nn.Module):
    """Outputs and pooled features (whose sparsity is compared with HOG features') from one forward, so one
    compiled graph serves both."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor, *extra: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = self.model.forward_head(self.model.forward_features(images, *extra), pre_logits=True)
        return self.model.get_classifier()(pooled), pooled


@torch.no_grad()
def run_model(model: nn.Module, loader: BatchLoader, *, prepare: Callable[[torch.Tensor], torch.Tensor],
              amp_dtype: torch.dtype | None = None, channels_last: bool = False, tta: bool = False,
              uses_features: bool = False, keep_features: bool = False, compile: bool = False) -> Outputs:
    """Outputs for every sample of ``loader`` (in order), with optional flip test-time augmentation.

    ``prepare`` turns the uint8 batch into the normalized float input. With ``tta``, logits
    (or scores) are averaged over the image and its horizontal flip. ``channels_last`` puts
    the model and the images in that layout; ``compile`` runs the model through
    ``torch.compile`` (seconds to a minute to start, then faster: worth it for many images).
    """
    was_training = model.training
    model.eval()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    runner = OutputsAndFeatures(model) if keep_features else model
    if compile:
        runner = torch.compile(runner)
    outs, targets, index, feats = [], [], [], []
    device = loader.device
    cast = (torch.autocast(device_type=device.type, dtype=amp_dtype) if amp_dtype is not None
            else contextlib.nullcontext())
    try:
        for batch in loader:
            images = prepare(batch.images)
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            extra = (batch.features,) if uses_features else ()
            with cast:
                out = runner(images, *extra)
                if keep_features:
                    out, pooled = out
                    feats.append(pooled.float().cpu())
                if tta:
                    flipped = runner(images.flip(-1), *extra)
                    out = (out + (flipped[0] if keep_features else flipped)) / 2
            outs.append(out.float().cpu())
            targets.append(batch.targets.cpu())
            index.append(batch.index)
    finally:
        model.train(was_training)
    return Outputs(outputs=torch.cat(outs).numpy(), targets=torch.cat(targets).numpy(),
                   index=torch.cat(index).numpy(), features=torch.cat(feats).numpy() if feats else None)
