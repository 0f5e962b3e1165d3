"""The data containers: what a source lists (`Catalog`) and what training receives (`DataBundle`).

A source (folder, manifest, built-in) only *lists* its samples in a `Catalog`: ids, targets,
an optional fixed split and the file paths or a way to read the pixels. `sources.load_data`
then splits, decodes through the cache and hands the trainer a `DataBundle` whose splits hold
uint8 images of shape (N, C, H, W), possibly memory-mapped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class BadFile:
    """A file that could not be used, with a reason a person can act on."""

    path: str
    reason: str


@dataclass
class Split:
    """One split. `images` is uint8 (N, C, H, W) and may be a read-only `np.memmap`.

    `targets` holds int64 class ids (positions in `DataBundle.class_names`) or float32 values
    for regression, unnormalized. `ids` name each sample: the path relative to the source, or
    ``"digits/123"``-style ids for built-ins. `features` are side features already standardized
    with the training statistics; `groups` the clip id of each frame of a frame manifest.
    """

    images: np.ndarray
    targets: np.ndarray
    ids: list[str]
    features: np.ndarray | None = None
    groups: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class DataBundle:
    """Everything the trainer needs about the data; `summary()` is what a run folder records."""

    train: Split
    val: Split
    test: Split | None
    class_names: list[str]
    channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    skipped: list[BadFile]
    data_hash: str
    source: str
    task: str
    target_stats: tuple[float, float] | None = None
    feature_stats: tuple[np.ndarray, np.ndarray] | None = None

    def summary(self) -> dict[str, Any]:
        """Plain lists, ints, floats and strings only, so `json.dump` takes it as it is."""
        splits: dict[str, Any] = {}
        for name in ("train", "val", "test"):
            part = getattr(self, name)
            if part is None:
                continue
            per_class: dict[str, int] = {}
            if self.class_names:
                counts = np.bincount(np.asarray(part.targets, dtype=np.int64), minlength=len(self.class_names))
                per_class = {c: int(n) for c, n in zip(self.class_names, counts)}
            splits[name] = {"count": len(part), "per_class": per_class}
        return {
            "source": self.source,
            "task": self.task,
            "class_names": list(self.class_names),
            "channels": self.channels,
            "image_size": self.image_size,
            "mean": [float(m) for m in self.mean],
            "std": [float(s) for s in self.std],
            "splits": splits,
            "skipped": [{"path": b.path, "reason": b.reason} for b in self.skipped],
            "data_hash": self.data_hash,
        }


# Split codes used in `Catalog.assigned`; UNASSIGNED rows are split by ratio.
UNASSIGNED, TRAIN, VAL, TEST = -1, 0, 1, 2
SPLIT_NAMES = ("train", "val", "test")


@dataclass
class Catalog:
    """What a source lists before anything is decoded.

    Exactly one of `paths` (files to decode) and `read_pixels` (a built-in's native uint8
    (N, C, H, W) array, read only on a cache miss; `rows` locate each entry in it) is set.
    `identity` names a built-in's data (its files); for file sources the image cache key comes
    from the files' sizes and mtimes instead.
    """

    kind: str
    name: str
    ids: list[str]
    targets: np.ndarray
    assigned: np.ndarray
    class_names: list[str]
    paths: list[str] | None = None
    read_pixels: Callable[[], np.ndarray] | None = None
    rows: np.ndarray | None = None
    native_channels: int | None = None
    features: np.ndarray | None = None
    feature_names: list[str] = field(default_factory=list)
    groups: np.ndarray | None = None
    skipped: list[BadFile] = field(default_factory=list)
    identity: str = ""

    def select(self, index: np.ndarray) -> Catalog:
        """The catalog restricted to `index` (row positions, in that order)."""
        index = np.asarray(index, dtype=np.int64)
        return Catalog(
            kind=self.kind,
            name=self.name,
            ids=[self.ids[i] for i in index],
            targets=self.targets[index],
            assigned=self.assigned[index],
            class_names=self.class_names,
            paths=None if self.paths is None else [self.paths[i] for i in index],
            read_pixels=self.read_pixels,
            rows=None if self.rows is None else self.rows[index],
            native_channels=self.native_channels,
            features=None if self.features is None else self.features[index],
            feature_names=self.feature_names,
            groups=None if self.groups is None else self.groups[index],
            skipped=self.skipped,
            identity=self.identity,
        )
