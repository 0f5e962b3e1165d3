"""Imbalanced classes: MPCA as the selection metric, class weights and the class-balanced sampler.

Training keeps every image of digits 0-4 but only 6 of each of digits 5-9; validation has 40
of every digit, so plain cross-entropy's bias towards the frequent classes shows in MPCA.
"""

import json

import numpy as np
import pytest

import resnetlab
from beyond_labels_data import digit_images, write_manifest

RARE = 6


@pytest.fixture(scope="module")
def imbalanced(tmp_path_factory):
    root = tmp_path_factory.mktemp("imbalanced")
    names, labels = digit_images(root)
    rng = np.random.default_rng(0)
    rows = []
    for digit in range(10):
        images = rng.permutation(np.flatnonzero(labels == digit))
        val, rest = images[:40], images[40:]
        train = rest if digit < 5 else rest[:RARE]
        rows += [[names[i], digit, "val"] for i in val] + [[names[i], digit, "train"] for i in train]
    manifest = write_manifest(root / "imbalanced.csv", ["image", "label", "split"], rows)
    return root, manifest


def _train(imbalanced, name, *extra):
    root, manifest = imbalanced
    return resnetlab.train(overrides=[
        f"data.source={manifest}", "data.split_column=split", "data.image_size=16", "data.channels=1",
        f"data.cache_dir={root / 'cache'}", "model.name=resnet20", "optim.name=adam", "optim.lr=2e-3",
        "optim.weight_decay=0", "train.batch_size=32", "train.epochs=5", "train.monitor=val/mpca",
        "train.threads=1", "train.precision=fp32", f"output.dir={root / 'runs'}", f"output.name={name}",
        "output.progress=false", "output.plots=false", "output.tensorboard=false", *extra])


@pytest.fixture(scope="module")
def plain(imbalanced):
    return _train(imbalanced, "plain")


def test_class_weights_raise_mpca_over_plain_cross_entropy(imbalanced, plain):
    weighted = _train(imbalanced, "weighted", "train.class_weights=balanced")
    # A margin measured over train.seed=0..4 (this file's _train with train.seed=N): plain 0.595-0.698,
    # weighted 0.855-0.91, the gain +0.21 to +0.26; the test keeps 0.1 of it. Threads pinned to 1.
    assert weighted.val["mpca"] >= plain.val["mpca"] + 0.1, (plain.val["mpca"], weighted.val["mpca"])
    metrics = json.loads((weighted.run_dir / "metrics.json").read_text())
    assert metrics["monitor"] == "val/mpca"
    history = json.loads((weighted.run_dir / "history.json").read_text())
    assert metrics["best_epoch"] == max(history, key=lambda row: row["val/mpca"])["epoch"]
    report = (weighted.run_dir / "report.md").read_text()
    assert "by `val/mpca`" in report and "| mpca |" in report


def test_balanced_sampler_raises_mpca_over_plain_cross_entropy(imbalanced, plain):
    sampled = _train(imbalanced, "sampled", "train.balanced_sampler=true")
    # A margin measured over train.seed=0..4: sampled 0.795-0.878, the gain over plain +0.14 to +0.20;
    # the test keeps 0.05 of it.
    assert sampled.val["mpca"] >= plain.val["mpca"] + 0.05, (plain.val["mpca"], sampled.val["mpca"])


def test_seed_001_loss_trains_and_reports_mpca(imbalanced):
    # The soft MPCA and accuracy terms: in 5 epochs they do not beat plain cross-entropy here
    # (0.57/0.62 against 0.61/0.66); at 10 epochs 0.86 against 0.82. Checked here: it trains.
    result = _train(imbalanced, "soft_terms", "train.mpca_loss=1.0", "train.accuracy_loss=0.5", "train.epochs=2")
    assert 0.1 < result.val["mpca"] <= 1.0 and np.isfinite(result.history[-1]["train/loss"])
