"""Image-quality regression with HyperIQA-style patch sampling, from the command line.

The data are real photo crops (scikit-learn's sample images) blurred or noised at a random
strength, with a KonIQ-shaped CSV whose MOS falls with the strength.
"""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from beyond_labels_data import quality_manifest
from resnetlab.cli.main import main


@pytest.fixture(scope="module")
def iqa(tmp_path_factory):
    root = tmp_path_factory.mktemp("iqa")
    manifest = quality_manifest(root)
    code = main(["train", f"data.source={manifest}", "data.task=regression", "data.image_column=image_name",
                 "data.label_column=MOS", "data.split_column=set", "data.image_size=32",
                 f"data.cache_dir={root / 'cache'}", "model.name=resnet20", "optim.name=adamw", "optim.lr=2e-3",
                 "optim.weight_decay=1e-4", "schedule.name=cosine", "augment.hflip=0.5", "train.batch_size=32",
                 "train.epochs=5", "train.threads=1", "train.precision=fp32",
                 "patches.size=24", "patches.train_num=4", "patches.test_num=4",
                 f"output.dir={root / 'runs'}", "output.name=iqa", "output.progress=false",
                 "output.tensorboard=false"])
    assert code == 0
    return root, root / "runs" / "iqa", manifest


def test_patch_sampling_learns_and_selects_on_validation_only(iqa):
    _, run, _ = iqa
    metrics = json.loads((run / "metrics.json").read_text())
    history = json.loads((run / "history.json").read_text())
    assert metrics["monitor"] == "val/srcc"  # the default monitor, mapped for regression
    # It learns (the loss falls) and ranks the images the way their scores do (a positive SRCC); not a
    # bar on a 5-epoch run's SRCC, which depends on the machine's kernels.
    assert history[-1]["train/loss"] < history[0]["train/loss"], history
    assert metrics["val"]["scalars"]["srcc"] > 0, history
    assert {"plcc", "krcc", "rmse", "plcc_logistic"} <= set(metrics["test"]["scalars"])
    # validation picks the epoch; the test split is scored once, after training
    assert not [key for row in history for key in row if key.startswith("test")]
    best = max(history, key=lambda row: row["val/srcc"])["epoch"]
    assert metrics["best_epoch"] == best
    assert metrics["val"]["scalars"]["srcc"] == pytest.approx(history[best - 1]["val/srcc"])
    for name in ("curves.png", "regression_scatter.png", "residuals.png"):
        assert (run / "plots" / name).is_file(), name
    report = (run / "report.md").read_text()
    assert "test SRCC" in report and "plcc_logistic" in report
    log = (run / "train.log").read_text()
    assert "24px patches x4 train / x4 test" in log


def test_eval_and_predict_score_images_like_training_did(iqa, capsys):
    root, run, manifest = iqa
    assert main(["eval", str(run), "--split", "val"]) == 0
    evaluated = json.loads((run / "eval-val" / "metrics.json").read_text())["scalars"]
    trained = json.loads((run / "metrics.json").read_text())["val"]["scalars"]
    assert evaluated["srcc"] == pytest.approx(trained["srcc"], abs=1e-6)
    assert evaluated["rmse"] == pytest.approx(trained["rmse"], rel=1e-4)

    out = root / "scores.csv"
    assert main(["predict", str(run), str(root / "images"), "--out", str(out)]) == 0
    with open(out, newline="") as handle:
        predicted = {row["id"]: float(row["score"]) for row in csv.DictReader(handle)}
    with open(manifest, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(predicted) == len(rows)
    val = [r for r in rows if r["set"] == "validation"]
    srcc = stats.spearmanr([predicted[Path(r["image_name"]).stem] for r in val], [float(r["MOS"]) for r in val])
    # the same decoding, the same patches, the same mean: predict agrees with the validation SRCC
    assert srcc.statistic == pytest.approx(trained["srcc"], abs=1e-3)
    scores = np.array(list(predicted.values()))
    assert 0 < np.median(scores) < 100  # mapped back from normalized targets to the MOS scale


def test_patch_runs_resume_bit_for_bit(tmp_path, train_until):
    """Patch positions are part of the resumable state: 1 + resume + 1 epochs equal 2 straight."""
    import torch

    import resnetlab
    from resnetlab.training.checkpoint import load_checkpoint

    common = ["preset=test", f"output.dir={tmp_path}", "train.epochs=2", "train.threads=1", "data.image_size=12",
              "patches.size=8", "patches.train_num=2", "patches.test_num=4", "patches.test_random=true"]
    straight = resnetlab.train(overrides=[*common, "output.name=straight"])
    train_until(None, 1, overrides=[*common, "output.name=resumed", "train.checkpoint_steps=1"])
    resumed = resnetlab.train(overrides=[*common, "output.name=resumed", "train.checkpoint_steps=1",
                                         "train.resume=auto"])
    a, b = load_checkpoint(straight.run_dir / "last.pt"), load_checkpoint(resumed.run_dir / "last.pt")
    assert all(torch.equal(value, b["model"][key]) for key, value in a["model"].items())
    assert [r["val/accuracy"] for r in straight.history] == [r["val/accuracy"] for r in resumed.history]
