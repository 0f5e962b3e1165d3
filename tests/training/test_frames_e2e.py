"""Frame manifests: clips thinned by frame_interval, metrics per frame and per clip.

Each clip is 8 frames: different images of one digit (classes 0-4), listed out of order.
"""

import json
import subprocess
import sys

import numpy as np
import pytest

import resnetlab
from beyond_labels_data import digit_images, write_manifest
from resnetlab.api.assemble import data_kwargs
from resnetlab.config import build_config
from resnetlab.data.sources import load_data

FRAMES = 8


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    root = tmp_path_factory.mktemp("frames")
    names, labels = digit_images(root)
    rng = np.random.default_rng(0)
    rows = []
    for digit in range(5):
        images = rng.permutation(np.flatnonzero(labels == digit))
        for clip in range(len(images) // FRAMES):
            for order, i in enumerate(images[clip * FRAMES:(clip + 1) * FRAMES]):
                rows.append([names[i], digit, f"clip{digit}_{clip}", order])
    rows = [rows[i] for i in rng.permutation(len(rows))]  # frames out of order in the file
    manifest = write_manifest(root / "frames.csv", ["image", "label", "clip", "frame"], rows)
    return root, manifest, rows


def _data_overrides(root, manifest):
    return [f"data.source={manifest}", "data.group_column=clip", "data.order_column=frame",
            "data.frame_interval=2", "data.image_size=16", "data.channels=1", f"data.cache_dir={root / 'cache'}",
            "data.val_ratio=0.2", "data.test_ratio=0.2"]


def test_frame_interval_2_keeps_every_second_frame_of_every_clip(frames):
    root, manifest, rows = frames
    bundle = load_data(**data_kwargs(build_config(_data_overrides(root, manifest)).data), log=lambda line: None)
    order = {name: int(frame) for name, _, _, frame in rows}
    parts = [bundle.train, bundle.val, bundle.test]
    kept = [name for part in parts for name in part.ids]
    assert len(kept) == len(rows) // 2
    assert all(order[name] % 2 == 0 for name in kept)
    clips = [set(part.groups.tolist()) for part in parts]
    assert all(len(c) > 0 for c in clips)
    assert not (clips[0] & clips[1] or clips[0] & clips[2] or clips[1] & clips[2])  # clips stay whole


def test_clip_accuracy_is_reported_beside_frame_accuracy_and_can_be_monitored(frames):
    root, manifest, rows = frames
    runs = root / "runs"
    command = [sys.executable, "-m", "resnetlab", "train", *_data_overrides(root, manifest),
               "model.name=resnet20", "optim.name=adam", "optim.lr=2e-3", "optim.weight_decay=0",
               "train.batch_size=32", "train.epochs=6", "train.threads=1", "train.precision=fp32",
               "train.monitor=val/clip_accuracy", f"output.dir={runs}", "output.name=clips",
               "output.progress=false", "output.plots=false", "output.tensorboard=false"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    run = runs / "clips"
    metrics = json.loads((run / "metrics.json").read_text())
    summary = json.loads((run / "data_summary.json").read_text())
    assert sum(split["count"] for split in summary["splits"].values()) == len(rows) // 2
    assert metrics["monitor"] == "val/clip_accuracy"
    for split in ("val", "test"):
        scalars = metrics[split]["scalars"]
        assert {"accuracy", "mpca", "clip_accuracy", "clip_mpca"} <= set(scalars)
        assert 0.0 <= scalars["clip_accuracy"] <= 1.0, scalars
    history = json.loads((run / "history.json").read_text())
    assert all("val/clip_accuracy" in row for row in history)
    assert history[-1]["train/loss"] < history[0]["train/loss"], history  # it learns (no accuracy bar)
    report = (run / "report.md").read_text()
    assert "| clip_accuracy |" in report and "| clip_mpca |" in report

    evaluated = resnetlab.evaluate(run, split="test")  # the Python face of resnetlab eval
    assert evaluated.scalars["clip_accuracy"] == pytest.approx(metrics["test"]["scalars"]["clip_accuracy"])
    assert "clip_accuracy" in json.loads((run / "eval-test" / "metrics.json").read_text())["scalars"]
