"""Patch sampling as in HyperIQA (Su et al., CVPR 2020): train on random crops, score on many.

Images stay cached at ``data.image_size``; patches of ``size`` pixels are cut from whole
batches on the device with two ``gather`` calls, so no Python runs per image. Training sees
one random patch per image per visit; the loader visits every image ``train_num`` times an
epoch (``BatchLoader(repeat=...)``), which is HyperIQA's "dataset repeated with a new crop".
Evaluation cuts ``test_num`` patches per image, evenly spread (or random, seeded afresh for
every evaluation so epochs stay comparable), and the prediction is the mean over them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from resnetlab.errors import UserError


def check_patch_size(size: int, *, image_size: int) -> None:
    if size > image_size:
        raise UserError(f"patches.size={size} is larger than data.image_size={image_size}; "
                        f"lower patches.size or raise data.image_size")


def grid_positions(count: int, *, image_size: int, size: int) -> tuple[Tensor, Tensor]:
    """Top and left corners (each (count,)) of ``count`` patches on a rows x cols grid.

    rows x cols = count, as square as count allows (25 -> 5x5, 10 -> 2x5, 7 -> 1x7); a
    single row or column runs through the middle, several span the image edge to edge.
    """
    rows = max(d for d in range(1, math.isqrt(count) + 1) if count % d == 0)
    cols = count // rows
    span = image_size - size

    def spread(n: int) -> np.ndarray:
        return np.array([span // 2]) if n == 1 else np.rint(np.linspace(0, span, n)).astype(np.int64)

    tops = np.repeat(spread(rows), cols)
    lefts = np.tile(spread(cols), rows)
    return torch.from_numpy(tops), torch.from_numpy(lefts)


def cut_patches(images: Tensor, tops: Tensor, lefts: Tensor, size: int) -> Tensor:
    """Patches (B, T, C, size, size) of images (B, C, H, W) at corners tops/lefts, each (B, T).

    One gather per axis on an expanded (not copied) view of the batch, any dtype.
    """
    b, c, h, w = images.shape
    t = tops.shape[1]
    steps = torch.arange(size, device=images.device)
    rows = (tops.to(images.device)[..., None] + steps)[:, :, None, :, None].expand(b, t, c, size, w)
    cols = (lefts.to(images.device)[..., None] + steps)[:, :, None, None, :].expand(b, t, c, size, size)
    x = images.unsqueeze(1).expand(b, t, c, h, w)
    return x.gather(3, rows).gather(4, cols)


def _random_corners(n: int, t: int, *, image_size: int, size: int, generator: torch.Generator,
                    device: torch.device) -> tuple[Tensor, Tensor]:
    corners = torch.randint(0, image_size - size + 1, (2, n, t), generator=generator, device=device)
    return corners[0], corners[1]


class PatchAugment:
    """A random patch per image, then the usual batch augmentation of the patches.

    Same face as ``BatchAugment`` (call, ``summary``, ``state_dict``), so the loop and the
    checkpoints need not know patches exist; the crop's random state resumes exactly.
    """

    def __init__(self, augment: Any, *, size: int, device: torch.device | str = "cpu", seed: int = 0) -> None:
        self.augment = augment
        self.size = size
        self.device = torch.device(device)
        self._generator = torch.Generator(device=self.device)
        self._generator.manual_seed(seed)

    def __call__(self, images: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        n, _, h, w = images.shape
        if h != w:
            raise ValueError(f"patch sampling expects square images, got {h}x{w}")
        tops, lefts = _random_corners(n, 1, image_size=h, size=self.size, generator=self._generator,
                                      device=images.device)
        return self.augment(cut_patches(images, tops, lefts, self.size)[:, 0], targets)

    def summary(self) -> str:
        return f"random {self.size}px patch, " + self.augment.summary()

    def state_dict(self) -> dict[str, Any]:
        return {"patches": self._generator.get_state(), **self.augment.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        state = dict(state)
        self._generator.set_state(state.pop("patches").cpu())
        self.augment.load_state_dict(state)


class PatchAverage(nn.Module):
    """Evaluate ``model`` on ``count`` patches per image and average its outputs per image.

    Wraps the model for one evaluation: build a new one per evaluation, so random test
    patches (``random=True``) are the same draws every time. Side-feature arguments are
    repeated for every patch of their image.
    """

    def __init__(self, model: nn.Module, *, size: int, count: int, random: bool = False, seed: int = 0) -> None:
        super().__init__()
        self.model = model
        self.size, self.count, self.random, self.seed = size, count, random, seed
        self._generator: torch.Generator | None = None

    def forward(self, images: Tensor, *extra: Tensor) -> Tensor:
        b, _, h, _ = images.shape
        if self.random:
            if self._generator is None:
                self._generator = torch.Generator(device=images.device)
                self._generator.manual_seed(self.seed)
            tops, lefts = _random_corners(b, self.count, image_size=h, size=self.size,
                                          generator=self._generator, device=images.device)
        else:
            tops, lefts = grid_positions(self.count, image_size=h, size=self.size)
            tops, lefts = tops.expand(b, -1), lefts.expand(b, -1)
        patches = cut_patches(images, tops, lefts, self.size).flatten(0, 1)
        repeated = [e.repeat_interleave(self.count, dim=0) for e in extra]
        out = self.model(patches, *repeated)
        return out.reshape(b, self.count, *out.shape[1:]).mean(dim=1)
