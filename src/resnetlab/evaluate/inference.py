"""Run a model over a loader and collect its outputs: the one inference path.

Training-time validation, ``resnetlab eval`` and ``resnetlab predict`` all come through
here, so what is measured during training is what the commands measure later.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable

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


@torch.no_grad()
def run_model(model: nn.Module, loader: BatchLoader, *, prepare: Callable[[torch.Tensor], torch.Tensor],
              amp_dtype: torch.dtype | None = None, channels_last: bool = False, tta: bool = False,
              uses_features: bool = False, keep_features: bool = False) -> Outputs:
    """Outputs for every sample of ``loader`` (in order), with optional flip test-time augmentation.

    ``prepare`` turns the uint8 batch into the normalized float input. With ``tta``, logits
    (or scores) are averaged over the image and its horizontal flip.
    """
    was_training = model.training
    model.eval()
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
                if keep_features:
                    # Pooled features (what the HOG comparison of seed 001 looks at) and logits in one pass.
                    pooled = model.forward_head(model.forward_features(images, *extra), pre_logits=True)
                    out = model.get_classifier()(pooled)
                    feats.append(pooled.float().cpu())
                else:
                    out = model(images, *extra)
                if tta:
                    out = (out + model(images.flip(-1), *extra)) / 2
            outs.append(out.float().cpu())
            targets.append(batch.targets.cpu())
            index.append(batch.index)
    finally:
        model.train(was_training)
    return Outputs(outputs=torch.cat(outs).numpy(), targets=torch.cat(targets).numpy(),
                   index=torch.cat(index).numpy(), features=torch.cat(feats).numpy() if feats else None)
