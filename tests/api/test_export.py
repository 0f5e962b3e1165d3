"""export: every format written with its model card, checked against PyTorch; the run's files stay untouched."""

import sys

import numpy as np
import pytest

from resnetlab.api.export import export
from resnetlab.api.training import train
from resnetlab.config import build_config
from resnetlab.deploy.formats import read_card
from resnetlab.deploy.onnx_model import OnnxModel
from resnetlab.errors import UserError


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    train(build_config(["preset=test", f"output.dir={out}", "output.name=r", "data.subset=64",
                        "train.threads=1"]))
    return out / "r"


@pytest.fixture(scope="module")
def onnx_export(run_dir):
    return export(run_dir)


def test_onnx_agrees_with_pytorch_on_the_runs_validation_images(onnx_export, run_dir):
    assert onnx_export.path == run_dir.resolve() / "export" / "r.onnx"
    assert onnx_export.checked >= 8 and "validation images of digits" in onnx_export.images_from
    assert onnx_export.max_abs_diff < 1e-4  # fp32 both sides
    assert onnx_export.labels_agree == onnx_export.checked


def test_onnx_carries_its_card_and_takes_any_batch(onnx_export):
    model = OnnxModel(onnx_export.path)
    card = model.card
    assert card == onnx_export.card == read_card(onnx_export.path, fmt="onnx")
    assert card.task == "classification" and card.class_names == [str(d) for d in range(10)]
    assert (card.channels, card.input_size, card.model) == (1, 8, "resnet20") and len(card.mean) == len(card.std) == 1
    images = np.random.default_rng(0).integers(0, 256, (7, 1, 8, 8), dtype=np.uint8)
    for batch in (1, 7):
        assert model.run(model.prepare(images[:batch])).shape == (batch, 10)


@pytest.mark.parametrize("fmt", ["torchscript", "pt2", "safetensors"])
def test_other_formats_match_exactly_and_keep_the_card(run_dir, onnx_export, fmt):
    result = export(run_dir, format=fmt)
    assert result.max_abs_diff == 0.0 and result.labels_agree == result.checked
    assert read_card(result.path, fmt=fmt) == onnx_export.card
    if fmt == "safetensors":
        assert result.files == [result.path, result.path.with_suffix(".json")]
        assert '"class_names"' in result.path.with_suffix(".json").read_text()


def test_export_never_writes_over_the_runs_own_files(run_dir, onnx_export, tmp_path):
    own = sorted(p for p in run_dir.iterdir() if p.is_file())
    before = {p: p.read_bytes() for p in own}
    for name in ("best.pt", "last.pt", "metrics.json", "config.yaml"):
        with pytest.raises(UserError, match="is a file of the run itself"):
            export(run_dir, out=run_dir / name)
    assert {p: p.read_bytes() for p in own} == before
    into_folder = export(run_dir, out=tmp_path)
    assert into_folder.path == tmp_path / "r.onnx" and into_folder.path.is_file()


def test_a_missing_export_package_names_the_extra(run_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # what an environment without the extra sees
    with pytest.raises(UserError, match=r"ONNX export needs the export extra: pip install 'resnetlab\[export\]'"):
        export(run_dir, out=run_dir / "export" / "again.onnx")


def test_unknown_format_is_refused(run_dir):
    with pytest.raises(UserError, match="--format tflite: choose one of onnx, torchscript, pt2, safetensors"):
        export(run_dir, format="tflite")


def test_fusion_models_are_refused_in_one_line(run_dir):
    from resnetlab.api.export import _exportable
    from resnetlab.api.trained import load_trained

    trained = load_trained(run_dir)
    trained.config.model.fusion = "concat"  # what a run with side features records
    with pytest.raises(UserError, match="fusion model .* takes side features"):
        _exportable(trained)


def test_a_patch_trained_regression_run_exports_with_its_patch_average(tmp_path):
    """The file scores whole images as predict does (the mean over the grid patches), in target units."""
    import csv

    from beyond_labels_data import quality_manifest
    from resnetlab.api.prediction import predict

    manifest = quality_manifest(tmp_path, count=48, size=16)
    train(build_config([f"data.source={manifest}", "data.task=regression", "data.image_column=image_name",
                        "data.label_column=MOS", "data.split_column=set", "data.image_size=16", "optim.name=adamw", "optim.lr=2e-3",
                        f"data.cache_dir={tmp_path / 'cache'}", "model.name=resnet20", "train.epochs=1",
                        "train.batch_size=16", "train.threads=1", "train.precision=fp32", "patches.size=12",
                        "patches.train_num=2", "patches.test_num=4", f"output.dir={tmp_path / 'runs'}",
                        "output.name=iqa", "output.progress=false", "output.tensorboard=false",
                        "output.plots=false"]))
    run = tmp_path / "runs" / "iqa"
    result = export(run)
    assert result.card.task == "regression" and result.card.target_stats and result.card.input_size == 16
    assert result.max_abs_diff < 1e-4 and result.labels_agree is None
    images = tmp_path / "images"
    predict(result.path, [images], out=tmp_path / "onnx.csv")
    predict(run, [images], out=tmp_path / "run.csv")

    def scores(path):
        with open(path, newline="") as handle:
            return {row["id"]: float(row["score"]) for row in csv.DictReader(handle)}

    onnx, torch_scores = scores(tmp_path / "onnx.csv"), scores(tmp_path / "run.csv")
    assert onnx.keys() == torch_scores.keys() and len(onnx) == 48
    assert max(abs(onnx[k] - torch_scores[k]) for k in onnx) < 1e-3  # target units (MOS 0-100)
