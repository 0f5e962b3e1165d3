"""Side features fused with the image, for a label that needs both.

Images are the digits; each row has a side feature ``flag`` (±1 plus noise) and a pure-noise
column. The label is "same" when (digit is odd) equals (flag > 0), else "different": the image
alone or the flag alone says nothing about it (an exclusive or, so the head must combine them).
"""

import csv
import json

import numpy as np
import pytest

import resnetlab
from beyond_labels_data import digit_images, write_manifest
from resnetlab.cli.main import main

COMMON = ["data.split_column=split", "data.image_size=16", "data.channels=1", "model.name=resnet20",
          "optim.name=adam", "optim.lr=2e-3", "optim.weight_decay=0", "train.batch_size=32", "train.epochs=4",
          "train.threads=1", "train.precision=fp32", "output.progress=false", "output.plots=false",
          "output.tensorboard=false"]


@pytest.fixture(scope="module")
def xor_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("fusion")
    names, labels = digit_images(root)
    rng = np.random.default_rng(0)
    flags = rng.choice([-1.0, 1.0], len(labels))
    splits = rng.choice(["train", "val", "test"], len(labels), p=[0.6, 0.2, 0.2])
    rows = []
    for i, (flag, split) in enumerate(zip(flags, splits)):
        label = "same" if (labels[i] % 2 == 1) == (flag > 0) else "different"
        rows.append([names[i], label, round(flag + rng.normal(0, 0.2), 3), round(rng.normal(0, 1), 3), split])
    manifest = write_manifest(root / "xor.csv", ["image", "label", "flag", "noise", "split"], rows)
    return root, manifest


def _train(root, manifest, name, *extra):
    return resnetlab.train(overrides=[f"data.source={manifest}", f"data.cache_dir={root / 'cache'}", *COMMON,
                                      f"output.dir={root / 'runs'}", f"output.name={name}", *extra])


@pytest.fixture(scope="module")
def fused(xor_data):
    root, manifest = xor_data
    return _train(root, manifest, "concat", "data.feature_columns=[flag,noise]", "model.fusion=concat",
                  "model.visual_dim=32")


def test_fusion_beats_the_image_alone_when_the_label_needs_both(xor_data, fused):
    root, manifest = xor_data
    image_only = _train(root, manifest, "image_only")
    # A margin measured over train.seed=0..4: fused 0.955-0.986, image alone 0.497-0.528 (chance: the
    # label is an XOR of the digit's parity and the side flag); the bars keep most of it.
    assert fused.test["accuracy"] >= 0.9, fused.history
    assert fused.test["accuracy"] >= image_only.test["accuracy"] + 0.25, (fused.test, image_only.test)
    # an image-only model predicts a folder (the Python face of resnetlab predict)
    folder = resnetlab.predict(image_only.run_dir, [root / "digits"], out=root / "image_only.csv")
    assert folder.count == 1797 and not folder.skipped

    # predict takes the side features from a CSV and standardizes them with the training statistics
    out = root / "pred.csv"
    assert main(["predict", str(fused.run_dir), str(manifest), "--out", str(out)]) == 0
    with open(manifest, newline="") as handle:
        truth = {row["image"].split("/")[-1][:-4]: row for row in csv.DictReader(handle)}
    with open(out, newline="") as handle:
        predicted = list(csv.DictReader(handle))
    assert len(predicted) == len(truth)
    test_rows = [p for p in predicted if truth[p["id"]]["split"] == "test"]
    accuracy = np.mean([p["label"] == truth[p["id"]]["label"] for p in test_rows])
    assert accuracy == pytest.approx(fused.test["accuracy"], abs=1e-6)

    assert main(["eval", str(fused.run_dir), "--split", "test"]) == 0
    evaluated = json.loads((fused.run_dir / "eval-test" / "metrics.json").read_text())["scalars"]
    assert evaluated["accuracy"] == pytest.approx(fused.test["accuracy"])


def test_a_fusion_model_asks_for_its_feature_columns(xor_data, fused, capsys):
    root, _ = xor_data
    assert main(["predict", str(fused.run_dir), str(root / "digits")]) == 2
    assert "give one CSV with columns image,flag,noise" in capsys.readouterr().err


@pytest.mark.parametrize("fusion, dim", [("bilinear", 16), ("add", 2)])
def test_bilinear_and_add_train_evaluate_and_summarize(xor_data, fusion, dim, capsys):
    root, manifest = xor_data
    result = _train(root, manifest, fusion, "data.feature_columns=[flag,noise]", f"model.fusion={fusion}",
                    f"model.visual_dim={dim}", "train.epochs=1", "data.subset=200")
    assert 0.0 <= result.val["accuracy"] <= 1.0 and np.isfinite(result.val["loss"])
    assert main(["summary", str(result.run_dir)]) == 0
    assert "Total params" in capsys.readouterr().out


def test_add_with_unequal_sizes_is_a_one_line_error(xor_data, capsys):
    root, manifest = xor_data
    code = main(["train", f"data.source={manifest}", "data.feature_columns=[flag,noise]", "model.fusion=add",
                 "model.visual_dim=8", f"output.dir={root / 'runs'}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "model.visual_dim=2" in err and len(err.splitlines()) == 1


def test_eval_on_new_data_standardizes_features_with_the_training_statistics(xor_data, fused):
    root, manifest = xor_data
    with open(manifest, newline="") as handle:
        rows = list(csv.DictReader(handle))
    # The same test images as "val"; a "train" split of positive flags only, whose statistics differ.
    moved = [[r["image"], r["label"], r["flag"], r["noise"], "val"] for r in rows if r["split"] == "test"]
    moved += [[r["image"], r["label"], r["flag"], r["noise"], "train"] for r in rows
              if r["split"] == "train" and float(r["flag"]) > 0]
    new = write_manifest(root / "moved.csv", ["image", "label", "flag", "noise", "split"], moved)
    result = resnetlab.evaluate(fused.run_dir, overrides=[f"data.source={new}"], split="val",
                                out_dir=root / "moved-eval")
    assert result.scalars["accuracy"] == pytest.approx(fused.test["accuracy"])
