"""HOG features of uint8 (N, C, H, W) images, computed by scikit-image and cached on disk.

scikit-image's HOG assigns each gradient to exactly one cell (Dalal and Triggs spread votes
over neighbouring cells), so a one-pixel shift of the object can move mass between cells. Two
cheap remedies recover much of that robustness on small images: a light Gaussian blur before
the gradients (`smoothing`), and a second descriptor on a grid offset by half a cell
(`offset_grid`, whose cells straddle those of the first grid). On Fashion-MNIST (54,000 training
images, PCA-100 + RBF SVC, 9 orientations) validation / test accuracy went from 0.9025 / 0.9085
(plain HOG) to 0.9152 / 0.9170 (offset grid) and 0.9183 / 0.9206 (offset grid and 0.7 px blur);
12 orientations with both gave 0.9203 / 0.9220, hence the defaults.

skimage's `hog` spends most of its time in Python (block normalisation) holding the GIL, so
threads do not help; extraction runs in a pool of worker *processes* over chunks of images.
Features are stored as float32 .npy files under ``<cache root>/features/``, keyed by the data
hash, the split, the HOG parameters and `FEATURE_VERSION`, so a rerun on the same data reads
them back instead of recomputing.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np

from resnetlab.atomic_write import atomic_write
from resnetlab.baselines.params import HogParams

FEATURE_VERSION = 1  # bump when the extraction changes, so old cache entries are not reused
PARALLEL_MIN_IMAGES = 2048  # below this, starting worker processes costs more than it saves
_CHUNKS_PER_WORKER = 8  # several chunks per worker keep both busy when chunks run unevenly


def _hog_chunk(images: np.ndarray, params: HogParams) -> np.ndarray:
    """Features of a few images; a module-level function so worker processes can import it."""
    # Imported here: scikit-image (the baseline extra) loads only when features are computed.
    from scipy.ndimage import gaussian_filter
    from skimage.feature import hog

    pictures = images.astype(np.float64)
    if params.smoothing > 0:
        pictures = gaussian_filter(pictures, sigma=(0, 0, params.smoothing, params.smoothing))
    grids = []
    for pad in params._paddings():
        before = pad // 2
        grids.append(np.pad(pictures, ((0, 0), (0, 0), (before, pad - before), (before, pad - before)), mode="edge")
                     if pad else pictures)
    out = np.empty((len(images), params.feature_length(*images.shape[2:])), dtype=np.float32)
    # HOG of colour images takes, per pixel, the channel with the strongest gradient.
    channel_axis = None if images.shape[1] == 1 else -1
    cell, block = (params.pixels_per_cell,) * 2, (params.cells_per_block,) * 2
    for i in range(len(images)):
        parts = [hog(grid[i, 0] if channel_axis is None else grid[i].transpose(1, 2, 0),
                     orientations=params.orientations, pixels_per_cell=cell, cells_per_block=block,
                     block_norm=params.block_norm, channel_axis=channel_axis, feature_vector=True)
                 for grid in grids]
        out[i] = np.concatenate(parts)
    return out


def default_workers() -> int:
    """At most 2 processes: the machines this runs on are shared."""
    return max(1, min(2, os.cpu_count() or 1))


def hog_features(images: np.ndarray, params: HogParams, *, workers: int | None = None) -> np.ndarray:
    """float32 (N, D) HOG features of uint8 (N, C, H, W) images, D = `params.feature_length(H, W)`."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must be (N, 1 or 3, H, W), got shape {images.shape}")
    if images.shape[2] != images.shape[3]:
        raise ValueError(f"images must be square, got {images.shape[2]}x{images.shape[3]}")
    params.validate(image_size=images.shape[2])
    workers = default_workers() if workers is None else workers
    if workers <= 1 or len(images) < PARALLEL_MIN_IMAGES:
        return _hog_chunk(images, params)
    chunks = np.array_split(images, workers * _CHUNKS_PER_WORKER)
    # spawn, not fork: the parent may hold torch/OpenMP threads, which a forked child inherits broken.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        parts = list(pool.map(_hog_chunk, chunks, [params] * len(chunks)))
    return np.concatenate(parts)


def feature_key(*, data_hash: str, split: str, params: HogParams, count: int) -> str:
    text = f"hog|v{FEATURE_VERSION}|{data_hash}|{split}|{count}|{sorted(asdict(params).items())}"
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def cached_hog_features(images: np.ndarray, params: HogParams, *, data_hash: str, split: str,
                        cache_dir: Path | None, workers: int | None = None,
                        log: Callable[[str], None] = print) -> np.ndarray:
    """`hog_features`, read from ``cache_dir/<key>.npy`` when present (None: no cache).

    A missing, truncated or mis-shaped file is recomputed; a failed write only logs, since
    the features are already in memory.
    """
    count, height, width = len(images), images.shape[2], images.shape[3]
    expected = (count, params.feature_length(height, width))
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"{feature_key(data_hash=data_hash, split=split, params=params, count=count)}.npy"
        if path.is_file():
            try:
                features = np.load(path, allow_pickle=False)
            except (OSError, ValueError) as exc:
                log(f"feature cache {path} unreadable ({exc}); recomputing")
            else:
                if features.shape == expected and features.dtype == np.float32:
                    return features
                log(f"feature cache {path} holds {features.shape}, expected {expected}; recomputing")
    features = hog_features(images, params, workers=workers)
    if path is not None:
        _save_atomic(path, features, log)
    return features


def _save_atomic(path: Path, array: np.ndarray, log: Callable[[str], None]) -> None:
    # Atomic, so a concurrent run never reads half a file; a cache that cannot be written is no error.
    try:
        atomic_write(path, lambda handle: np.save(handle, array, allow_pickle=False))
    except OSError as exc:
        log(f"could not write the feature cache {path} ({exc}); features are recomputed next time")


def zero_share(features: np.ndarray) -> float:
    """Share of exactly-zero entries, to compare HOG's sparsity with a network's pooled features."""
    features = np.asarray(features)
    return float(np.count_nonzero(features == 0) / features.size) if features.size else 0.0
