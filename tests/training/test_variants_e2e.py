"""Multi-scale fusion and SE attention on any ResNet: train, eval, predict, summary, and the
built-in IQA ablation study over the three variants."""

import csv
import json
import math

import pytest

from beyond_labels_data import digit_images, quality_manifest, write_manifest
from resnetlab.cli.main import main

QUIET = ["train.threads=1", "train.precision=fp32", "output.progress=false", "output.plots=false",
         "output.tensorboard=false"]


@pytest.mark.parametrize("variant", [["model.multiscale=true", "model.attention=fused"],
                                     ["model.attention=blocks"]], ids=["multiscale_fused", "blocks"])
def test_variant_trains_evaluates_predicts_and_summarizes(tmp_path, variant, capsys):
    names, labels = digit_images(tmp_path)
    rows = [[name, int(label)] for name, label in list(zip(names, labels))[:300]]
    manifest = write_manifest(tmp_path / "digits.csv", ["image", "label"], rows)
    assert main(["train", f"data.source={manifest}", "data.image_size=16", "data.channels=1",
                 f"data.cache_dir={tmp_path / 'cache'}", "model.name=resnet20", *variant, "optim.name=adam",
                 "optim.lr=2e-3", "train.epochs=2", "train.batch_size=32", *QUIET, f"output.dir={tmp_path}",
                 "output.name=run"]) == 0
    run = tmp_path / "run"
    history = json.loads((run / "history.json").read_text())
    assert len(history) == 2 and all(math.isfinite(row["train/loss"]) for row in history)
    assert main(["eval", str(run), "--split", "test"]) == 0
    out = tmp_path / "pred.csv"
    assert main(["predict", str(run), str(tmp_path / "digits"), "--out", str(out)]) == 0
    with open(out, newline="") as handle:
        assert len(list(csv.DictReader(handle))) == len(names)
    totals = []
    for target in ([str(run)], ["resnet20", "--image-size", "16", "--in-channels", "1", "--num-classes", "10"]):
        capsys.readouterr()
        assert main(["summary", *target]) == 0
        totals.append(_total_params(capsys.readouterr().out))
    assert totals[0] > totals[1]  # the variant's extra layers are in the saved model


def _total_params(text: str) -> int:
    line = next(line for line in text.splitlines() if line.startswith("Total params"))
    return int(line.split(":")[1].replace(",", ""))


def test_summary_counts_the_parameters_each_variant_adds(capsys):
    totals = []
    for flags in ([], ["--multiscale"], ["--multiscale", "--attention", "fused"]):
        assert main(["summary", "resnet50", "--image-size", "64", *flags]) == 0
        totals.append(_total_params(capsys.readouterr().out))
    # plain ResNet-50; + a 3840-wide classifier over all four stages; + SE (3840 -> 240 -> 3840)
    assert totals == [25_557_032, 27_349_032, 29_196_312]


def test_builtin_iqa_ablation_study_runs_its_three_variants(tmp_path):
    manifest = quality_manifest(tmp_path, count=96)
    code = main(["study", "iqa_variants", f"data.source={manifest}", "data.image_size=32",
                 f"data.cache_dir={tmp_path / 'cache'}", "model.name=resnet20", "model.pretrained=none",
                 "model.stem=cifar", "data.normalize_target=false", "patches.size=24", "patches.train_num=2", "patches.test_num=4",
                 "train.epochs=1", "train.batch_size=32", *QUIET, f"output.dir={tmp_path / 'runs'}"])
    assert code == 0
    results = json.loads(next((tmp_path / "runs").rglob("all_results.json")).read_text())
    text = json.dumps(results)
    for name in ("baseline", "multiscale", "multiscale_attention"):
        assert name in text
    assert "val/srcc" in text
