"""resnetlab export and predict on the exported file, as a user types them."""

import csv

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from resnetlab.cli.main import main


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    assert main(["train", "preset=test", f"output.dir={out}", "output.name=r", "data.subset=64",
                 "train.threads=1"]) == 0
    return out / "r"


def _labels(path):
    with open(path, newline="") as handle:
        return [(row["id"], row["label"]) for row in csv.DictReader(handle)]


def test_export_prints_the_check_and_predict_on_the_onnx_file_agrees_with_the_run(run_dir, tmp_path, capsys):
    assert main(["export", str(run_dir)]) == 0
    out = capsys.readouterr().out
    onnx_file = run_dir.resolve() / "export" / "r.onnx"
    assert f"wrote {onnx_file}" in out and "max |onnx - pytorch| = " in out and "labels agree on" in out
    digits = load_digits()
    for i in range(20):
        Image.fromarray((digits.images[i] * 16).astype(np.uint8)).save(tmp_path / f"{i}.png")
    assert main(["predict", str(onnx_file), str(tmp_path), "--out", str(tmp_path / "onnx.csv"), "--tta"]) == 0
    assert main(["predict", str(run_dir), str(tmp_path), "--out", str(tmp_path / "run.csv"), "--tta"]) == 0
    assert _labels(tmp_path / "onnx.csv") == _labels(tmp_path / "run.csv") and len(_labels(tmp_path / "run.csv")) == 20


def test_export_refuses_the_runs_own_files_in_one_line(run_dir, capsys):
    before = (run_dir / "metrics.json").read_bytes()
    assert main(["export", str(run_dir), "--out", str(run_dir / "metrics.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a file of the run itself" in err
    assert (run_dir / "metrics.json").read_bytes() == before


def test_predict_refuses_compile_with_an_onnx_file(run_dir, tmp_path, capsys):
    fake = tmp_path / "m.onnx"
    fake.write_bytes(b"not onnx")
    assert main(["predict", str(fake), str(tmp_path), "--compile"]) == 2
    assert "--compile applies to PyTorch runs" in capsys.readouterr().err
    assert main(["predict", str(fake), str(tmp_path)]) == 2
    assert "is not a readable ONNX model" in capsys.readouterr().err


def test_explain_without_images_uses_the_runs_validation_images_with_their_true_class(run_dir, capsys):
    assert main(["explain", str(run_dir), "--count", "3"]) == 0
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert len(lines) == 4 and all(", true " in line for line in lines[:3])
    assert lines[-1] == f"Grad-CAM of layer3: 3 images and gradcam_grid.png in {run_dir / 'explain'}"
    assert len(list((run_dir / "explain").glob("*_gradcam.png"))) == 3
    assert (run_dir / "explain" / "gradcam_grid.png").stat().st_size > 5000
    assert main(["explain", str(run_dir), "--count", "0"]) == 2
    assert "--count 0: give how many validation images" in capsys.readouterr().err


def test_explain_images_takes_the_true_class_from_a_folder_named_like_one(run_dir, tmp_path, capsys):
    digits = load_digits()
    (tmp_path / "7").mkdir()
    Image.fromarray((digits.images[7] * 16).astype(np.uint8)).save(tmp_path / "7" / "seven.png")
    Image.fromarray((digits.images[3] * 16).astype(np.uint8)).save(tmp_path / "loose.png")
    out_dir = tmp_path / "why"
    assert main(["explain", str(run_dir), str(tmp_path / "7" / "seven.png"), str(tmp_path / "loose.png"),
                 "--layer", "layer2", "--out", str(out_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("seven: predicted ") and lines[0].endswith(", true 7")
    assert lines[1].startswith("loose: predicted ") and "true" not in lines[1]
    assert {p.name for p in out_dir.iterdir()} == {"seven_gradcam.png", "loose_gradcam.png", "gradcam_grid.png"}
    assert main(["explain", str(run_dir), str(tmp_path / "loose.png"), "--layer", "layer4"]) == 2
    assert "--layer layer4: the model has no such layer; use one of its stages: layer1, layer2, layer3" in \
        capsys.readouterr().err
