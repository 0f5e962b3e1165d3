"""Batches straight from the decoded uint8 array: no workers, no per-image Python.

Each epoch's order is a pure function of ``(seed, epoch)``, so a resumed run (or every
process of a distributed run) recomputes the same permutation instead of storing it. The
only state is where in the epoch we are.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Batch:
    images: torch.Tensor  # uint8 (B, C, H, W) on the device
    targets: torch.Tensor  # int64 labels or float32 scores
    index: torch.Tensor  # positions in the split, for predictions and reports
    features: torch.Tensor | None = None


class BatchLoader:
    """Iterate a split in batches on ``device``.

    ``rank``/``world_size`` shard every epoch the way ``DistributedSampler`` does: training
    pads the permutation to a multiple of the world size so every process takes the same
    number of steps; evaluation (``shuffle=False``) never pads, so each sample counts once.
    ``sample_weights`` draws with replacement (the class-balanced sampler). ``repeat`` visits
    every sample that many times an epoch (patch sampling cuts a new random patch each visit).

    ``resident`` keeps the whole split on the device, uploaded once (default: on a GPU, when the
    in-memory uint8 array takes at most a quarter of its free memory, see :func:`fits_on_device`).
    Batches are then gathered on the device from an epoch order sent there once an epoch, so a
    step copies nothing from the host and waits for nothing.
    """

    def __init__(self, images: np.ndarray, targets: np.ndarray, *, batch_size: int, device: torch.device,
                 shuffle: bool = False, drop_last: bool = False, seed: int = 0,
                 features: np.ndarray | None = None, sample_weights: np.ndarray | None = None,
                 rank: int = 0, world_size: int = 1, repeat: int = 1, resident: bool | None = None) -> None:
        self.images = images
        self.targets = torch.from_numpy(np.ascontiguousarray(targets))
        self.features = None if features is None else torch.from_numpy(np.ascontiguousarray(features))
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.sample_weights = None if sample_weights is None else torch.as_tensor(sample_weights, dtype=torch.float64)
        self.rank, self.world_size = rank, world_size
        self.repeat = repeat
        self.epoch = 0
        self.position = 0  # batches already served in the current epoch
        # In-memory arrays become one tensor so a batch is a single index_select; memory-mapped
        # caches stay numpy so only the rows of a batch are read from disk.
        self._tensor = None if isinstance(images, np.memmap) else torch.from_numpy(np.ascontiguousarray(images))
        self._pin = self.device.type == "cuda"
        if resident is None:
            resident = self._tensor is not None and fits_on_device(self._tensor.nbytes, self.device)
        self.resident = resident and self._tensor is not None
        self._device_order: torch.Tensor | None = None
        if self.resident:
            self._tensor = self._tensor.to(self.device)
            self._device_targets = self.targets.to(self.device)
            self._device_features = None if self.features is None else self.features.to(self.device)

    # ------------------------------------------------------------------ order

    def _order(self, epoch: int) -> torch.Tensor:
        n = len(self.targets) * self.repeat
        if not self.shuffle:
            return torch.arange(self.rank, n, self.world_size)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        if self.sample_weights is not None:
            order = torch.multinomial(self.sample_weights, n, replacement=True, generator=g)
        else:
            order = torch.randperm(n, generator=g)
        total = math.ceil(n / self.world_size) * self.world_size
        if total > n:  # pad by wrapping so every rank takes the same number of steps
            order = torch.cat([order, order[: total - n]])
        return order[self.rank::self.world_size]

    def __len__(self) -> int:
        count = len(self.targets) * self.repeat
        n = len(self._order(self.epoch)) if not self.shuffle else math.ceil(count / self.world_size)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.epoch, self.position = epoch, 0

    # ------------------------------------------------------------------ iteration

    def __iter__(self) -> Iterator[Batch]:
        order = self._order(self.epoch)
        if self.resident:
            self._device_order = (order % len(self.targets)).to(self.device, non_blocking=True)
        steps = len(self)
        while self.position < steps:
            window = slice(self.position * self.batch_size, (self.position + 1) * self.batch_size)
            self.position += 1
            yield self._gather_resident(order[window], window) if self.resident else self._gather(order[window])
        # A finished epoch moves on by itself, so `for batch in loader` twice gives two epochs.
        self.epoch, self.position = self.epoch + 1, 0

    def _gather(self, idx: torch.Tensor) -> Batch:
        idx = idx % len(self.targets)  # positions past the end are repeated visits
        if self._tensor is not None:
            images = self._tensor.index_select(0, idx)
        else:
            images = torch.from_numpy(self.images[idx.numpy()])
        targets = self.targets.index_select(0, idx)
        features = None if self.features is None else self.features.index_select(0, idx)
        return Batch(images=self._to_device(images), targets=self._to_device(targets), index=idx,
                     features=None if features is None else self._to_device(features))

    def _gather_resident(self, idx: torch.Tensor, window: slice) -> Batch:
        assert self._tensor is not None and self._device_order is not None
        on_device = self._device_order[window]
        features = None if self._device_features is None else self._device_features.index_select(0, on_device)
        return Batch(images=self._tensor.index_select(0, on_device),
                     targets=self._device_targets.index_select(0, on_device),
                     index=idx % len(self.targets), features=features)

    def _to_device(self, t: torch.Tensor) -> torch.Tensor:
        if self.device.type == "cpu":
            return t
        if self._pin:
            t = t.pin_memory()
        return t.to(self.device, non_blocking=True)

    # ------------------------------------------------------------------ resume

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])


def fits_on_device(nbytes: int, device: torch.device) -> bool:
    """Whether a split of ``nbytes`` should live on ``device`` for the whole run.

    A quarter of a GPU's free memory (the model, activations and the allocator's slack need the
    rest); on Apple's MPS, up to 1 GiB; the CPU's memory is where the array already is.
    """
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return nbytes <= free // 4
    if device.type == "mps":
        return nbytes <= 1 << 30
    return False
