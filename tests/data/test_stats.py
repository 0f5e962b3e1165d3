"""stats.py: exact per-channel mean/std in [0, 1], chunk-independent, cached, overridable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from resnetlab.data import stats
from resnetlab.data.sources import load_data
from resnetlab.errors import UserError


def test_known_array() -> None:
    images = np.zeros((4, 2, 2, 2), np.uint8)
    images[:2, 0] = 255   # channel 0: half 0, half 255 -> mean 0.5, std 0.5
    images[:, 1] = 51     # channel 1: constant 0.2 -> std 0
    mean, std = stats.channel_mean_std(images)
    assert mean == pytest.approx((0.5, 0.2)) and std == pytest.approx((0.5, 0.0))


def test_chunks_and_memmaps_agree_with_numpy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (37, 3, 5, 5), dtype=np.uint8)
    stored = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.uint8, shape=images.shape)
    stored[:] = images
    monkeypatch.setattr(stats, "_CHUNK_VALUES", 200)  # 2 images per chunk
    mean, std = stats.channel_mean_std(stored)
    as_float = images.astype(np.float64) / 255
    np.testing.assert_allclose(mean, as_float.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(std, as_float.std(axis=(0, 2, 3)), rtol=1e-12)


def test_cached_by_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, log) -> None:
    images = np.full((2, 1, 2, 2), 51, np.uint8)
    file = tmp_path / "stats" / "abc.json"
    first = stats.resolve_mean_std(images, channels=1, cache_file=file, log=log)
    assert first == ((pytest.approx(0.2),), (1.0,))  # a zero std is replaced by 1
    monkeypatch.setattr(stats, "channel_mean_std", lambda images: pytest.fail("not cached"))
    assert stats.resolve_mean_std(images, channels=1, cache_file=file, log=log) == first


def test_overrides_and_their_checks(log) -> None:
    images = np.zeros((1, 3, 2, 2), np.uint8)
    assert stats.resolve_mean_std(images, channels=3, mean=[0.1, 0.2, 0.3], std=[0.5, 0.5, 0.5], log=log) \
        == ((0.1, 0.2, 0.3), (0.5, 0.5, 0.5))
    with pytest.raises(UserError, match=r"data.mean has 1 value\(s\) but the data has 3 channel\(s\)"):
        stats.resolve_mean_std(images, channels=3, mean=[0.5], log=log)
    with pytest.raises(UserError, match=r"data.std value 0 is out of range"):
        stats.resolve_mean_std(images, channels=3, std=[0.2, 0.0, 0.2], log=log)
    with pytest.raises(UserError, match=r"divide 0..255 values by 255"):
        stats.resolve_mean_std(images, channels=3, mean=[125.3, 120.0, 110.0], log=log)


def test_load_data_computes_from_train_and_accepts_overrides(cfg, log) -> None:
    bundle = load_data(**cfg("digits", cache="memory"), log=log)
    train = bundle.train.images.astype(np.float64) / 255
    assert bundle.mean[0] == pytest.approx(train.mean()) and bundle.std[0] == pytest.approx(train.std())
    fixed = load_data(**cfg("digits", cache="memory", mean=[0.5], std=[0.25]), log=log)
    assert (fixed.mean, fixed.std) == ((0.5,), (0.25,))
    with pytest.raises(UserError, match=r"data.mean has 3 value"):
        load_data(**cfg("digits", cache="memory", mean=[0.5, 0.5, 0.5]), log=log)
