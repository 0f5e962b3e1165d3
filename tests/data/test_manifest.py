"""CSV manifests: paths, labels, split column, side features, clips, regression, every error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from beyond_labels_data import write_manifest
from resnetlab.data.sources import load_data
from resnetlab.errors import UserError


@pytest.fixture
def pics(tmp_path: Path, image) -> Path:
    """tmp/data/img/p00.png .. p11.png, colours cycling red, green, blue."""
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]
    for i in range(12):
        image(tmp_path / "data" / "img" / f"p{i:02d}.png", colours[i % 3], seed=i)
    return tmp_path / "data"


def test_relative_paths_names_and_split_column(pics: Path, cfg, log) -> None:
    names = ["red", "green", "blue"]
    splits = ["train"] * 6 + ["val"] * 3 + ["TEST "] * 3
    rows = [[f"img/p{i:02d}.png", names[i % 3], splits[i]] for i in range(12)]
    rows[0][0] = str(pics / "img" / "p00.png")  # an absolute path
    path = write_manifest(pics / "m.csv", ["image", "label", "split"], rows)
    bundle = load_data(**cfg(path, split_column="split"), log=log)
    assert bundle.class_names == ["blue", "green", "red"]
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (6, 3, 3)
    assert bundle.val.ids == ["img/p06.png", "img/p07.png", "img/p08.png"]
    assert (pics / "img" / "p00.png").as_posix() in bundle.train.ids
    for split in (bundle.train, bundle.val, bundle.test):
        for img, target in zip(split.images, split.targets):
            assert bundle.class_names[target] == names[int(np.argmax(img.reshape(3, -1).mean(axis=1)))]


def test_features_are_standardized_with_train_statistics(pics: Path, cfg, log) -> None:
    rows = [[f"img/p{i:02d}.png", i % 2, "train" if i < 8 else "val", i, 5.0] for i in range(12)]
    path = write_manifest(pics / "m.csv", ["image", "label", "split", "age", "const"], rows)
    bundle = load_data(**cfg(path, split_column="split", feature_columns=["age", "const"]), log=log)
    train_age = np.arange(8.0)
    mean, std = train_age.mean(), train_age.std()
    assert bundle.train.features.dtype == np.float32 and bundle.train.features.shape == (8, 2)
    np.testing.assert_allclose(bundle.train.features[:, 0], (train_age - mean) / std, rtol=1e-6)
    np.testing.assert_allclose(bundle.val.features[:, 0], (np.arange(8.0, 12.0) - mean) / std, rtol=1e-6)
    assert (bundle.train.features[:, 1] == 0).all()  # constant: centred, not divided by zero
    np.testing.assert_allclose(bundle.feature_stats[0], [mean, 5.0], rtol=1e-6)
    np.testing.assert_allclose(bundle.feature_stats[1], [std, 1.0], rtol=1e-6)


def test_clips_are_ordered_thinned_and_kept_in_one_split(tmp_path: Path, image, cfg, log) -> None:
    rows = []
    for clip in range(10):
        for frame in range(4):
            name = f"frames/c{clip}_f{frame}.png"
            image(tmp_path / name, seed=clip * 10 + frame)
            rows.append([name, f"clip{clip}", frame, "run" if clip % 2 else "walk"])
    rng = np.random.default_rng(0)
    rows = [rows[i] for i in rng.permutation(len(rows))]
    path = write_manifest(tmp_path / "frames.csv", ["image", "clip", "t", "label"], rows)
    bundle = load_data(**cfg(path, group_column="clip", order_column="t", frame_interval=2,
                           val_ratio=0.2, test_ratio=0.2), log=log)
    splits = (bundle.train, bundle.val, bundle.test)
    assert sum(len(s) for s in splits) == 20  # every second frame of 10 clips of 4
    assert all(i.endswith(("_f0.png", "_f2.png")) for s in splits for i in s.ids)
    clip_sets = [set(s.groups.tolist()) for s in splits]
    assert not (clip_sets[0] & clip_sets[1] or clip_sets[0] & clip_sets[2] or clip_sets[1] & clip_sets[2])
    assert [len(c) for c in clip_sets] == [6, 2, 2]
    for s in splits:
        for i in range(0, len(s), 2):  # frames of a clip stay together, in order
            assert s.groups[i] == s.groups[i + 1] and s.ids[i].endswith("_f0.png")


def test_clip_split_across_a_split_column_is_warned(pics: Path, cfg, log) -> None:
    rows = [[f"img/p{i:02d}.png", "a", f"clip{i // 4}", "val" if i in (3, 8) else "train"] for i in range(12)]
    path = write_manifest(pics / "m.csv", ["image", "label", "clip", "split"], rows)
    load_data(**cfg(path, split_column="split", group_column="clip"), log=log)
    assert "warning: 2 clip(s) have frames both in train and in val/test (e.g. clip0)" in log.text()


def test_clips_whose_frames_disagree_on_the_label_are_noted(pics: Path, cfg, log) -> None:
    rows = [[f"img/p{i:02d}.png", "b" if i == 5 else "a", f"clip{i // 4}"] for i in range(12)]
    path = write_manifest(pics / "m.csv", ["image", "label", "clip"], rows)
    load_data(**cfg(path, group_column="clip", val_ratio=0.0, test_ratio=0.0), log=log)
    assert "note: 1 clip(s) have frames of several labels (e.g. clip1: a, b)" in log.text()
    same = [[f"img/p{i:02d}.png", "a" if i < 8 else "b", f"clip{i // 4}"] for i in range(12)]
    load_data(**cfg(write_manifest(pics / "same.csv", ["image", "label", "clip"], same), group_column="clip",
                  val_ratio=0.0, test_ratio=0.0), log=log)
    assert log.text().count("several labels") == 1


def test_regression_targets_and_stats(pics: Path, cfg, log) -> None:
    rows = [[f"img/p{i:02d}.png", 1.5 * i, "train" if i < 9 else "test"] for i in range(12)]
    path = write_manifest(pics / "r.csv", ["image", "label", "split"], rows)
    bundle = load_data(**cfg(path, task="regression", split_column="split", val_ratio=0.0), log=log)
    assert bundle.class_names == [] and bundle.task == "regression"
    assert bundle.train.targets.dtype == np.float32
    t = 1.5 * np.arange(9.0)
    assert bundle.target_stats == pytest.approx((t.mean(), t.std()))
    assert bundle.summary()["splits"]["train"] == {"count": 9, "per_class": {}}
    off = load_data(**cfg(path, task="regression", split_column="split", normalize_target=False), log=log)
    assert off.target_stats is None


@pytest.fixture
def koniq(tmp_path: Path, image) -> Path:
    """KonIQ-10k's layout: a CSV naming bare files (image_name, MOS) beside a 1024x768/ folder."""
    root = tmp_path / "koniq"
    for i in range(10):
        image(root / "1024x768" / f"{1000 + i}.jpg", (20 * i, 100, 200 - 15 * i), seed=i)
    return write_manifest(root / "koniq10k_scores_and_distributions.csv", ["image_name", "c1", "MOS"],
                          [[f"{1000 + i}.jpg", 3, 1.0 + 0.4 * i] for i in range(10)])


def test_image_root_resolves_bare_names_in_a_sibling_folder(koniq: Path, cfg, log) -> None:
    settings = {"task": "regression", "image_column": "image_name", "label_column": "MOS", "val_ratio": 0.2, "test_ratio": 0.2}
    with pytest.raises(UserError, match=r"none of the 10 listed images exist; paths are relative to "
                                        rf"{koniq.parent} \(e.g. first: 1000.jpg\) — set data.image_root=FOLDER"):
        load_data(**cfg(koniq, **settings), log=log)
    bundle = load_data(**cfg(koniq, image_root=str(koniq.parent / "1024x768"), **settings), log=log)
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (6, 2, 2)
    ids = bundle.train.ids + bundle.val.ids + bundle.test.ids
    assert sorted(ids) == [f"{1000 + i}.jpg" for i in range(10)] and not bundle.skipped
    targets = np.concatenate([bundle.train.targets, bundle.val.targets, bundle.test.targets])
    assert sorted(targets.tolist()) == pytest.approx([1.0 + 0.4 * i for i in range(10)])


def test_image_root_must_be_a_folder_of_a_manifest(koniq: Path, pics: Path, cfg, log) -> None:
    with pytest.raises(UserError, match=r"data.image_root=.*nowhere is not a folder"):
        load_data(**cfg(koniq, image_column="image_name", label_column="MOS", task="regression",
                      image_root=str(koniq.parent / "nowhere")), log=log)
    with pytest.raises(UserError, match=r"data.image_root only applies to a CSV manifest"):
        load_data(**cfg(pics / "img", image_root=str(pics)), log=log)


def test_numeric_labels_sort_as_numbers(pics: Path, cfg, log) -> None:
    rows = [[f"img/p{i:02d}.png", [2, 10, 9][i % 3]] for i in range(12)]
    path = write_manifest(pics / "n.csv", ["image", "label"], rows)
    assert load_data(**cfg(path), log=log).class_names == ["2", "9", "10"]


def test_missing_images_are_skipped_files(pics: Path, cfg, log) -> None:
    rows = [[f"img/p{i:02d}.png", "x"] for i in range(4)] + [["img/nope.png", "x"]]
    bundle = load_data(**cfg(write_manifest(pics / "m.csv", ["image", "label"], rows), val_ratio=0, test_ratio=0), log=log)
    assert len(bundle.train) == 4
    assert [(Path(b.path).name, b.reason) for b in bundle.skipped] == [("nope.png", "missing file")]


@pytest.mark.parametrize("header, row, settings, message", [
    (["img", "label"], ["img/p00.png", "a"], {},
     r"column 'image' \(data.image_column\) not found \(did you mean 'img'\?\); columns: img, label"),
    (["image", "label", "part"], ["img/p00.png", "a", "holdout"], {"split_column": "part"},
     r"line 2: column 'part' has 'holdout'; use train, val or test"),
    (["image", "label"], ["img/p00.png", "tall"], {"task": "regression"},
     r"line 2: column 'label' value 'tall' is not a number"),
    (["image", "label", "w"], ["img/p00.png", "a", "heavy"], {"feature_columns": ["w"]},
     r"line 2: feature column 'w' value 'heavy' is not a finite number"),
    (["image", "label"], ["img/p00.png", "a"], {"feature_columns": ["w"]},
     r"column 'w' \(data.feature_columns\) not found; columns: image, label"),
    (["image", "label"], ["", "a"], {}, r"line 2: column 'image' is empty"),
    (["image", "label", "t"], ["img/p00.png", "a", 1], {"order_column": "t"},
     r"data.order_column=t needs data.group_column"),
    (["image;label"], ["img/p00.png;a"], {}, r"seems to use ';' between columns"),
])
def test_manifest_errors_name_the_row_and_column(pics: Path, cfg, log, header, row, settings, message) -> None:
    path = write_manifest(pics / "bad.csv", header, [row])
    with pytest.raises(UserError, match=message) as info:
        load_data(**cfg(path, **settings), log=log)
    text = str(info.value)
    assert "\n" not in text and ("bad.csv" in text or text.startswith("data."))


def test_a_path_listed_twice_with_one_label_counts_once_and_is_reported(pics: Path, cfg, log) -> None:
    rows = [[f"img/p{i:02d}.png", "x"] for i in range(4)] + [["img/p01.png", "x"]]
    bundle = load_data(**cfg(write_manifest(pics / "m.csv", ["image", "label"], rows), val_ratio=0, test_ratio=0), log=log)
    assert len(bundle.train) == 4
    assert [(Path(b.path).name, b.reason) for b in bundle.skipped] == [
        ("p01.png", "listed again on line 6 (first on line 3): counted once")]


def test_a_path_listed_twice_with_two_labels_names_both_lines(pics: Path, cfg, log) -> None:
    rows = [[f"img/p{i:02d}.png", "x"] for i in range(4)] + [["img/p01.png", "y"]]
    with pytest.raises(UserError, match=r"lines 3 and 6 list the same image 'img/p01.png' with different labels "
                                        r"\('x' and 'y'\)"):
        load_data(**cfg(write_manifest(pics / "m.csv", ["image", "label"], rows)), log=log)
