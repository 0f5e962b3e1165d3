"""ImageFolder sources through load_data: layouts, seeded stratified splits, bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from resnetlab.data.sources import load_data
from resnetlab.errors import UserError


def _class_of(split) -> list[str]:
    return [i.split("/")[-2] for i in split.ids]


def test_flat_tree_split_is_seeded_stratified_and_disjoint(flat_tree: Path, cfg, log) -> None:
    bundle = load_data(**cfg(flat_tree, val_ratio=0.2, test_ratio=0.2, split_seed=3), log=log)
    assert bundle.class_names == ["blue", "green", "red"]
    assert bundle.channels == 3 and bundle.train.images.shape[1:] == (3, 8, 8)
    ids = [set(s.ids) for s in (bundle.train, bundle.val, bundle.test)]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert len(ids[0] | ids[1] | ids[2]) == 30
    # 20% of 10 images per class: exactly 2 val and 2 test images per class.
    for split, per_class in ((bundle.val, 2), (bundle.test, 2), (bundle.train, 6)):
        assert np.bincount(split.targets, minlength=3).tolist() == [per_class] * 3
        assert [bundle.class_names[t] for t in split.targets] == _class_of(split)
    again = load_data(**cfg(flat_tree, val_ratio=0.2, test_ratio=0.2, split_seed=3), log=log)
    assert again.val.ids == bundle.val.ids and again.data_hash == bundle.data_hash
    assert np.array_equal(again.train.images, bundle.train.images)
    other = load_data(**cfg(flat_tree, val_ratio=0.2, test_ratio=0.2, split_seed=4), log=log)
    assert set(other.val.ids) != set(bundle.val.ids) and other.data_hash != bundle.data_hash
    assert "train: 18 images, 6-6 per class" in log.text()


def test_pixels_belong_to_their_ids(flat_tree: Path, cfg, log) -> None:
    bundle = load_data(**cfg(flat_tree, split_seed=1), log=log)
    for split in (bundle.train, bundle.val, bundle.test):
        for img, name in zip(split.images, _class_of(split)):
            channel = int(np.argmax(img.reshape(3, -1).mean(axis=1)))
            assert ["red", "green", "blue"][channel] == name


def test_train_val_test_subtrees(tmp_path: Path, tree, cfg, log) -> None:
    root = tree(tmp_path / "d", {"train/cat": 4, "train/dog": 4, "val/cat": 2, "val/dog": 1,
                                 "test/cat": 1, "test/dog": 2, "test/eel": 1})
    bundle = load_data(**cfg(root), log=log)
    assert bundle.class_names == ["cat", "dog", "eel"]
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (8, 3, 4)
    assert all(i.startswith("val/") for i in bundle.val.ids)
    assert bundle.summary()["splits"]["test"]["per_class"] == {"cat": 1, "dog": 2, "eel": 1}
    assert "no training images for: eel" in log.text()


def test_missing_val_tree_is_taken_from_train(tmp_path: Path, tree, cfg, log) -> None:
    root = tree(tmp_path / "d", {"train/a": 10, "train/b": 10, "test/a": 2, "test/b": 2})
    bundle = load_data(**cfg(root, val_ratio=0.3), log=log)
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (14, 6, 4)
    assert all(i.startswith("train/") for i in bundle.val.ids)
    no_test = tree(tmp_path / "e", {"train/a": 4, "val/a": 2})
    assert load_data(**cfg(no_test), log=log).test is None


def test_mixed_bag_folder(tmp_path: Path, image, cfg, log) -> None:
    root = tmp_path / "bag"
    cls = root / "things"
    good = image(cls / "ok.jpg", size=(32, 32))
    image(root / "other" / "grey.png", mode="L")
    image(cls / "rgba.png", mode="RGBA")
    image(cls / "palette.png", mode="P")
    Image.fromarray(np.full((9, 9), 50000, np.uint16)).save(cls / "deep.png")
    data = good.read_bytes()
    (cls / "cut.jpg").write_bytes(data[: len(data) // 2])
    (cls / "empty.png").write_bytes(b"")
    (cls / "notes.txt").write_text("labelled by Ann\n")
    (cls / ".DS_Store").write_bytes(b"\0\1")
    bundle = load_data(**cfg(root, channels=1, val_ratio=0.0, test_ratio=0.0), log=log)
    assert sorted(bundle.train.ids) == ["other/grey.png", "things/deep.png", "things/ok.jpg",
                                        "things/palette.png", "things/rgba.png"]
    assert bundle.train.images.shape == (5, 1, 8, 8) and bundle.train.images.dtype == np.uint8
    reasons = {Path(b.path).name: b.reason for b in bundle.skipped}
    assert reasons == {"notes.txt": "not an image", "cut.jpg": "truncated image", "empty.png": "zero-byte file"}
    assert "skipped 3 files (see skipped_files.txt in the run folder)" in log.text()
    assert len(bundle.val) == 0 and bundle.test is None
    with pytest.raises(UserError, match=r"cut\.jpg: truncated image.*data\.on_bad_file=skip"):
        (cls / "notes.txt").unlink()
        load_data(**cfg(root, channels=1, on_bad_file="error", cache="memory"), log=log)


def test_channels_default_to_what_the_files_hold(tmp_path: Path, tree, cfg, log) -> None:
    grey = tree(tmp_path / "g", {"a": 2, "b": 2}, mode="L")
    assert load_data(**cfg(grey, val_ratio=0, test_ratio=0), log=log).channels == 1
    assert load_data(**cfg(grey, val_ratio=0, test_ratio=0, channels=3), log=log).channels == 3
    colour = tree(tmp_path / "c", {"a": 2, "b": 2})
    assert load_data(**cfg(colour, val_ratio=0, test_ratio=0), log=log).train.images.shape[1] == 3


def test_layout_errors_name_the_folder(tmp_path: Path, tree, image, cfg, log) -> None:
    root = tree(tmp_path / "d", {"a": 2})
    (root / "empty").mkdir()
    with pytest.raises(UserError, match=r"class folder .*empty holds no images"):
        load_data(**cfg(root), log=log)
    loose = tmp_path / "loose"
    image(loose / "1.png")
    with pytest.raises(UserError, match=r"loose holds images but no class sub-folders"):
        load_data(**cfg(loose), log=log)
    only_val = tree(tmp_path / "v", {"val/a": 2})
    with pytest.raises(UserError, match=r"has val/ but no train/"):
        load_data(**cfg(only_val), log=log)
    broken = tmp_path / "broken"
    for name in ("a/1.png", "b/2.png"):
        (broken / name).parent.mkdir(parents=True)
        (broken / name).write_bytes(b"")
    with pytest.raises(UserError, match=r"broken has no usable training images \(2 files skipped, first "
                                        r".*1.png: zero-byte file\); check the files"):
        load_data(**cfg(broken, val_ratio=0, test_ratio=0), log=log)
    with pytest.raises(UserError, match=r"data.task=regression needs a CSV manifest"):
        load_data(**cfg(tree(tmp_path / "r", {"a": 2}), task="regression"), log=log)
