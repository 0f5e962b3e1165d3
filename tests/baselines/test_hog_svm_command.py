"""The HOG+SVM baseline from the command line: a normal run folder, accuracy far above chance."""

import json

import numpy as np
import pytest

from resnetlab.cli.main import main


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
def test_baseline_on_digits_writes_a_run_folder(tmp_path, kernel):
    assert main(["baseline", "hog-svm", "data.source=digits", "data.image_size=16", "--kernel", kernel,
                 "--out", str(tmp_path), "--name", kernel, "--workers", "1"]) == 0
    run = tmp_path / kernel
    for name in ("config.yaml", "metrics.json", "final_results.json", "report.md", "data_summary.json"):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"]["scalars"]["accuracy"] > 0.9  # 10 classes: chance is 0.1
    share = metrics["test"]["scalars"]["feature_zero_share"]
    assert 0.0 <= share <= 1.0
    assert list((run / "plots").glob("confusion_matrix*.png"))
    assert "hog-svm" in (run / "config.yaml").read_text()


def test_zero_share_is_the_fraction_of_zero_features():
    from resnetlab.baselines.hog import zero_share

    features = np.array([[0.0, 1.0, 0.0, 2.0], [0.0, 0.0, 3.0, 4.0]])
    assert zero_share(features) == pytest.approx(4 / 8)


@pytest.mark.parametrize("args, message", [
    (["--C", "0"], "C=0.0 must be a number > 0"),
    (["--pixels-per-cell", "64"], "pixels"),
])
def test_bad_parameters_are_one_line_errors(tmp_path, capsys, args, message):
    code = main(["baseline", "hog-svm", "data.source=digits", "data.image_size=16", "--out", str(tmp_path), *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_train_with_model_name_hog_svm_fits_the_baseline(tmp_path):
    """The baseline through `train`, so a study or a search can hold it beside networks."""
    import resnetlab

    args = ["data.source=digits", "data.image_size=16", f"output.dir={tmp_path}", "output.name=hog",
            "train.threads=1", "model.name=hog-svm"]
    assert main(["train", *args]) == 0
    metrics = json.loads((tmp_path / "hog" / "metrics.json").read_text())
    assert metrics["test"]["scalars"]["accuracy"] > 0.9 and metrics["best_epoch"] is None
    # From Python, and again into the same folder when resuming is asked for (a study's retry).
    result = resnetlab.train(overrides=[*args, "train.resume=auto"])
    assert result.run_dir == tmp_path / "hog" and result.best == pytest.approx(result.val["accuracy"])
    assert result.test["accuracy"] == pytest.approx(metrics["test"]["scalars"]["accuracy"])


def test_train_names_the_settings_the_baseline_does_not_use(tmp_path, capsys):
    assert main(["train", "data.source=digits", "data.image_size=16", "model.name=hog-svm", "optim.lr=0.5",
                 "train.epochs=9", "train.threads=1", f"output.dir={tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert "not used: optim.lr, train.epochs (its own settings" in out


def test_eval_and_predict_say_a_baseline_run_keeps_no_model(tmp_path, capsys):
    assert main(["baseline", "hog-svm", "data.source=digits", "data.image_size=16", "--out", str(tmp_path),
                 "--name", "hog", "--workers", "1"]) == 0
    capsys.readouterr()
    for argv in (["eval", str(tmp_path / "hog")], ["predict", str(tmp_path / "hog"), str(tmp_path)]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert "is a HOG+SVM baseline run: it keeps no model to load" in err and len(err.splitlines()) == 1


def test_train_refuses_to_resume_a_baseline_from_a_path(tmp_path, capsys):
    code = main(["train", "data.source=digits", "data.image_size=16", "model.name=hog-svm",
                 f"train.resume={tmp_path}"])
    err = capsys.readouterr().err
    assert code == 2 and "no checkpoint to resume" in err and len(err.strip().splitlines()) == 1
