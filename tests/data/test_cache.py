"""The uint8 cache: hits skip decoding (and PIL), keys follow the files, disk mode memory-maps."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from resnetlab.data import cache, decode
from resnetlab.data.sources import load_data
from resnetlab.errors import UserError


class Counter:
    """Wraps decode_image and counts calls."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        real = decode.decode_image

        def counted(*args, **kwargs):
            self.calls += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(decode, "decode_image", counted)


def _forbid_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded although the cache should have been used")

    monkeypatch.setattr(decode, "decode_image", fail)
    monkeypatch.setattr(decode.Image, "open", fail)  # a hit needs no PIL at all


def _arrays(bundle) -> list[np.ndarray]:
    return [np.asarray(s.images) for s in (bundle.train, bundle.val, bundle.test)]


def test_second_load_reads_the_cache(flat_tree: Path, cfg, log, monkeypatch: pytest.MonkeyPatch) -> None:
    counter = Counter(monkeypatch)
    first = load_data(**cfg(flat_tree), log=log)
    assert counter.calls == 30
    _forbid_decoding(monkeypatch)
    second = load_data(**cfg(flat_tree), log=log)
    for a, b in zip(_arrays(first), _arrays(second)):
        assert np.array_equal(a, b)
    assert second.train.ids == first.train.ids and second.mean == first.mean
    assert log.text().count("decoding 30 images") == 1
    assert "read 30 decoded images from the cache" in log.text()


def test_touching_a_file_changes_the_key(flat_tree: Path, cfg, log, monkeypatch: pytest.MonkeyPatch) -> None:
    files = sorted(str(p) for p in flat_tree.rglob("*.png"))
    ids = [Path(f).relative_to(flat_tree).as_posix() for f in files]
    before = cache.files_identity("folder", files, ids)
    load_data(**cfg(flat_tree), log=log)
    st = os.stat(files[3])
    os.utime(files[3], ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert cache.files_identity("folder", files, ids) != before
    counter = Counter(monkeypatch)
    load_data(**cfg(flat_tree), log=log)
    assert counter.calls == 30
    assert cache.image_key(before, image_size=8, channels=3) != cache.image_key(before, image_size=16, channels=3)


def test_disk_cache_is_a_read_only_memmap(flat_tree: Path, cfg, log, monkeypatch: pytest.MonkeyPatch) -> None:
    fresh = load_data(**cfg(flat_tree, cache="memory"), log=log)
    first = load_data(**cfg(flat_tree, cache="disk"), log=log)
    _forbid_decoding(monkeypatch)
    second = load_data(**cfg(flat_tree, cache="disk"), log=log)
    for bundle in (first, second):
        assert isinstance(bundle.train.images, np.memmap) and not bundle.train.images.flags.writeable
        for a, b in zip(_arrays(fresh), _arrays(bundle)):
            assert np.array_equal(a, b)
    stored = list((Path(cfg(flat_tree)["cache_dir"]) / "images").glob("*.npy"))
    assert len(stored) == 1
    umask = os.umask(0)
    os.umask(umask)
    assert stored[0].stat().st_mode & 0o777 == 0o666 & ~umask  # a shared cache stays readable


def test_memory_mode_writes_nothing(flat_tree: Path, cfg, log) -> None:
    load_data(**cfg(flat_tree, cache="memory"), log=log)
    assert not Path(cfg(flat_tree)["cache_dir"]).exists()


@pytest.mark.parametrize("mode", ["auto", "disk"])
def test_new_split_reuses_decoded_images(flat_tree: Path, cfg, log, monkeypatch: pytest.MonkeyPatch,
                                         mode: str) -> None:
    load_data(**cfg(flat_tree, cache=mode, split_seed=0), log=log)
    expected = load_data(**cfg(flat_tree, cache="memory", split_seed=5), log=log)
    _forbid_decoding(monkeypatch)
    for _ in range(2):  # the second time the stored order already matches
        got = load_data(**cfg(flat_tree, cache=mode, split_seed=5), log=log)
        assert got.val.ids == expected.val.ids
        for a, b in zip(_arrays(expected), _arrays(got)):
            assert np.array_equal(a, b)
    if mode == "disk":
        assert isinstance(got.val.images, np.memmap)
        assert len(list((Path(cfg(flat_tree)["cache_dir"]) / "images").glob("*.npy"))) == 1


@pytest.mark.parametrize("mode", ["auto", "disk"])
def test_bad_files_are_remembered(flat_tree: Path, cfg, log, monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    (flat_tree / "red" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    expected = load_data(**cfg(flat_tree, cache="memory"), log=log)
    first = load_data(**cfg(flat_tree, cache=mode), log=log)
    assert [Path(b.path).name for b in first.skipped] == ["broken.png"]
    _forbid_decoding(monkeypatch)
    second = load_data(**cfg(flat_tree, cache=mode), log=log)
    assert second.skipped == first.skipped
    for bundle in (first, second):
        assert len(bundle.train) + len(bundle.val) + len(bundle.test) == 30
        for a, b in zip(_arrays(expected), _arrays(bundle)):
            assert np.array_equal(a, b)
    with pytest.raises(UserError, match=r"broken\.png"):
        load_data(**cfg(flat_tree, cache=mode, on_bad_file="error"), log=log)


def test_auto_memory_maps_large_arrays(flat_tree: Path, cfg, log, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache, "AUTO_DISK_BYTES", 100)
    bundle = load_data(**cfg(flat_tree, cache="auto"), log=log)
    assert isinstance(bundle.train.images, np.memmap)
    monkeypatch.setattr(cache, "AUTO_DISK_BYTES", 2 << 30)
    small = load_data(**cfg(flat_tree, cache="auto"), log=log)
    assert not isinstance(small.train.images, np.memmap)
    assert np.array_equal(small.train.images, bundle.train.images)


def test_unwritable_cache_dir(flat_tree: Path, cfg, log, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    bundle = load_data(**cfg(flat_tree, cache="auto", cache_dir=str(blocker)), log=log)
    assert len(bundle.train) > 0 and "warning: image cache not written" in log.text()
    with pytest.raises(UserError, match=r"data.cache_dir: cannot write the image cache .*data.cache=memory"):
        load_data(**cfg(flat_tree, cache="disk", cache_dir=str(blocker)), log=log)


def test_damaged_sidecar_is_a_miss(flat_tree: Path, cfg, log, monkeypatch: pytest.MonkeyPatch) -> None:
    first = load_data(**cfg(flat_tree), log=log)
    for side in (Path(cfg(flat_tree)["cache_dir"]) / "images").glob("*.json"):
        if not side.name.endswith(".probe.json"):
            side.write_text("{not json")
    counter = Counter(monkeypatch)
    again = load_data(**cfg(flat_tree), log=log)
    assert counter.calls == 30 and np.array_equal(again.train.images, first.train.images)
