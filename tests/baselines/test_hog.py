"""HOG features: their length, their agreement with scikit-image, the process pool, the cache."""

import numpy as np
import pytest
from skimage.feature import hog

from resnetlab.baselines import hog as hog_module
from resnetlab.baselines.hog import HogParams, cached_hog_features, hog_features, zero_share
from resnetlab.errors import UserError

PLAIN = HogParams(orientations=9, pixels_per_cell=4, cells_per_block=2, smoothing=0.0, offset_grid=False)


@pytest.fixture(scope="module")
def digits16() -> np.ndarray:
    """60 digits upscaled to 16x16 as uint8 (N, 1, H, W), without the data pipeline."""
    from skimage.transform import resize
    from sklearn.datasets import load_digits

    raw = load_digits().images[:60] / 16.0
    upscaled = np.stack([resize(im, (16, 16), order=1) for im in raw])
    return np.round(upscaled * 255).astype(np.uint8)[:, None]


def test_plain_features_are_scikit_image_hog(digits16):
    features = hog_features(digits16, PLAIN, workers=1)
    # 16 px / 4 px cells = 4 cells, 3 x 3 blocks of 2 x 2 cells, 9 orientations each
    assert features.shape == (60, 3 * 3 * 2 * 2 * 9) == (60, PLAIN.feature_length(16, 16))
    assert features.dtype == np.float32
    expected = hog(digits16[7, 0].astype(np.float64), orientations=9, pixels_per_cell=(4, 4),
                   cells_per_block=(2, 2), block_norm="L2-Hys")
    np.testing.assert_allclose(features[7], expected, rtol=1e-5, atol=1e-6)


def test_offset_grid_appends_a_second_descriptor(digits16):
    with_offset = HogParams(orientations=9, pixels_per_cell=4, cells_per_block=2, smoothing=0.0, offset_grid=True)
    features = hog_features(digits16, with_offset, workers=1)
    # the padded 20 px image has 5 cells: 4 x 4 blocks
    assert features.shape == (60, 324 + 4 * 4 * 36) == (60, with_offset.feature_length(16, 16))
    np.testing.assert_array_equal(features[:, :324], hog_features(digits16, PLAIN, workers=1))
    assert not np.array_equal(features[:, 324:648], features[:, :324])


def test_smoothing_changes_the_features(digits16):
    blurred = HogParams(orientations=9, pixels_per_cell=4, cells_per_block=2, smoothing=1.0, offset_grid=False)
    a, b = hog_features(digits16, PLAIN, workers=1), hog_features(digits16, blurred, workers=1)
    assert a.shape == b.shape and not np.allclose(a, b)


def test_colour_images_give_one_descriptor_per_image():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 3, 16, 16), dtype=np.uint8)
    features = hog_features(images, PLAIN, workers=1)
    assert features.shape == (5, 324)
    # the per-pixel strongest channel: a grey image in three channels equals the one-channel one
    grey = images[:, :1]
    np.testing.assert_allclose(hog_features(np.repeat(grey, 3, axis=1), PLAIN, workers=1),
                               hog_features(grey, PLAIN, workers=1), rtol=1e-5, atol=1e-6)


def test_process_pool_gives_the_serial_result(digits16, monkeypatch):
    monkeypatch.setattr(hog_module, "PARALLEL_MIN_IMAGES", 0)
    serial = hog_features(digits16, HogParams(), workers=1)
    parallel = hog_features(digits16, HogParams(), workers=2)
    np.testing.assert_array_equal(serial, parallel)


def test_second_call_reads_the_cache(digits16, tmp_path, monkeypatch):
    calls = []
    real = hog_module.hog_features

    def counting(images, params, **kwargs):
        calls.append(params)
        return real(images, params, **kwargs)

    monkeypatch.setattr(hog_module, "hog_features", counting)
    first = cached_hog_features(digits16, HogParams(), data_hash="abc", split="val", cache_dir=tmp_path,
                                workers=1, log=lambda line: None)
    again = cached_hog_features(digits16, HogParams(), data_hash="abc", split="val", cache_dir=tmp_path,
                                workers=1, log=lambda line: None)
    assert len(calls) == 1
    np.testing.assert_array_equal(first, again)
    assert len(list(tmp_path.glob("*.npy"))) == 1
    # another split, data hash or parameter is another entry
    cached_hog_features(digits16, HogParams(), data_hash="abc", split="test", cache_dir=tmp_path, workers=1)
    cached_hog_features(digits16, HogParams(), data_hash="xyz", split="val", cache_dir=tmp_path, workers=1)
    cached_hog_features(digits16, HogParams(orientations=8), data_hash="abc", split="val", cache_dir=tmp_path,
                        workers=1)
    assert len(calls) == 4


def test_a_damaged_cache_file_is_recomputed(digits16, tmp_path):
    lines = []
    first = cached_hog_features(digits16, PLAIN, data_hash="h", split="train", cache_dir=tmp_path, workers=1)
    (path,) = tmp_path.glob("*.npy")
    path.write_bytes(path.read_bytes()[:100])  # truncated by a crash or a full disk
    again = cached_hog_features(digits16, PLAIN, data_hash="h", split="train", cache_dir=tmp_path, workers=1,
                                log=lines.append)
    np.testing.assert_array_equal(first, again)
    assert lines and "recomputing" in lines[0]


def test_no_cache_dir_writes_nothing(digits16, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    cached_hog_features(digits16[:3], PLAIN, data_hash="h", split="val", cache_dir=None, workers=1)
    assert not any(tmp_path.rglob("*.npy"))


def test_zero_share_counts_exact_zeros():
    features = np.array([[0.0, 0.5, 0.0], [1e-9, 0.0, 2.0]], dtype=np.float32)
    assert zero_share(features) == pytest.approx(3 / 6)
    assert zero_share(np.zeros((2, 4))) == 1.0
    assert zero_share(np.ones((2, 4))) == 0.0


def test_a_flat_image_has_only_zero_features():
    flat = np.full((2, 1, 16, 16), 128, dtype=np.uint8)
    assert zero_share(hog_features(flat, HogParams(), workers=1)) == 1.0


@pytest.mark.parametrize("params, size, words", [
    (HogParams(pixels_per_cell=32), 16, "pixels_per_cell=32 is larger than the 16px images"),
    (HogParams(pixels_per_cell=8, cells_per_block=3), 16, "cells_per_block=3 exceeds the 2 cells"),
    (HogParams(orientations=0), 16, "orientations=0"),
    (HogParams(smoothing=-1.0), 16, "smoothing=-1.0"),
    (HogParams(smoothing=float("nan")), 16, "smoothing=nan"),
    (HogParams(block_norm="L3"), 16, "block_norm='L3'"),
])
def test_unusable_parameters_are_one_line_user_errors(params, size, words):
    with pytest.raises(UserError) as info:
        params.validate(image_size=size)
    assert words in str(info.value) and "\n" not in str(info.value)
