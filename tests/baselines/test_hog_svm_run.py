"""The HOG+SVM run from Python: the run-folder contract, reports and comparisons, errors."""

import json
import time
from pathlib import Path

import pytest
import yaml

from resnetlab.api.assemble import baseline_data_config, data_kwargs
from resnetlab.baselines.hog import hog_features, zero_share
from resnetlab.baselines.hog_svm import train_hog_svm
from resnetlab.baselines.params import HogParams
from resnetlab.config import build_config
from resnetlab.errors import UserError
from resnetlab.evaluation.plots import STANDARD_CLASSIFICATION_PLOTS

FASHION = Path("/usr/share/datasets/fashion-mnist")


def _digits(tmp: Path, size: int = 16):
    return data_kwargs(build_config(["data.source=digits", f"data.image_size={size}",
                                     f"data.cache_dir={tmp / 'cache'}"]).data)


@pytest.fixture(scope="module")
def rbf_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hog_svm")
    data = _digits(tmp)
    result = train_hog_svm(data, kernel="rbf", out_dir=tmp / "runs", name="rbf", workers=1, log=lambda line: None)
    return result, data


def test_the_run_folder_follows_the_training_run_contract(rbf_run):
    result, _ = rbf_run
    run = result.run_dir
    for name in ("config.yaml", "history.json", "metrics.json", "final_results.json", "data_summary.json",
                 "provenance.json", "report.md"):
        assert (run / name).is_file(), name
    for name in (*STANDARD_CLASSIFICATION_PLOTS[1:], "misclassified.png"):
        assert (run / "plots" / name).stat().st_size > 1000, name
    assert not (run / "plots" / "curves.png").exists()  # fitted once: no curve to draw

    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["monitor"] == "val/accuracy" and metrics["best_epoch"] is None
    assert metrics["resources"]["wall_seconds"] > 0
    for split in ("val", "test"):
        assert len(metrics[split]["confusion_matrix"]) == 10
        assert metrics[split]["scalars"]["accuracy"] == pytest.approx(getattr(result, split)["accuracy"])
    assert result.test["accuracy"] > 0.9 and result.val["accuracy"] > 0.9  # chance: 0.1

    final = json.loads((run / "final_results.json").read_text())
    assert set(final) == {"test_accuracy", "test_mpca", "best_val_accuracy", "best_val_mpca", "best_epoch",
                          "monitor", "monitor_best", "config"}
    assert final["test_accuracy"] == pytest.approx(result.test["accuracy"])

    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["model"]["name"] == "hog-svm"
    assert config["data"]["source"] == "digits" and config["data"]["image_size"] == 16
    assert config["baseline"]["kernel"] == "rbf" and config["baseline"]["C"] == 10.0
    assert config["baseline"]["pca_components"] == 100 and config["baseline"]["gamma"] > 0
    assert config["baseline"]["feature_length"] == HogParams().feature_length(16, 16)

    history = json.loads((run / "history.json").read_text())
    assert len(history) == 1 and history[0]["val/accuracy"] == pytest.approx(result.val["accuracy"])


def test_feature_zero_share_matches_the_features(rbf_run):
    from resnetlab.data.sources import load_data

    result, data = rbf_run
    bundle = load_data(**data, log=lambda line: None)
    for split in ("val", "test"):
        features = hog_features(getattr(bundle, split).images, HogParams(), workers=1)
        by_hand = sum(int(v == 0) for v in features.ravel().tolist()) / features.size
        share = getattr(result, split)["feature_zero_share"]
        assert 0.0 <= share <= 1.0 and share == pytest.approx(by_hand)
        assert share == pytest.approx(zero_share(features))
    assert "feature_zero_share" in (result.run_dir / "report.md").read_text()


def test_the_report_and_the_comparison_take_the_run(rbf_run, tmp_path):
    from resnetlab.evaluation.compare import write_comparison
    from resnetlab.evaluation.report import write_report

    result, data = rbf_run
    text = write_report(result.run_dir).read_text()
    assert "hog-svm" in text and f"{result.test['accuracy']:.4f}" in text
    # The baseline's own settings and where its time went, not an empty per-epoch row.
    for row in ("| kernel | `rbf` |", "| C | `10` |", "| orientations | `12` |", "| pca components | `100` |",
                "| feature extraction |", "| fit |"):
        assert row in text, row
    assert "time per epoch" not in text and "curves.png" not in text
    linear = train_hog_svm(data, kernel="linear", out_dir=tmp_path, name="linear", workers=1, log=lambda line: None)
    assert linear.test["accuracy"] > 0.9
    table = write_comparison([result.run_dir, linear.run_dir], tmp_path).read_text()
    assert table.count("hog-svm") == 2 and f"{linear.test['accuracy']:.4f}" in table


def test_a_rerun_reads_the_features_from_the_cache(rbf_run, tmp_path, monkeypatch):
    from resnetlab.baselines import hog

    _, data = rbf_run
    monkeypatch.setattr(hog, "hog_features", lambda *a, **k: pytest.fail("features were recomputed"))
    again = train_hog_svm(data, kernel="rbf", out_dir=tmp_path, name="again", workers=1, log=lambda line: None)
    assert again.test == pytest.approx(rbf_run[0].test)


@pytest.mark.parametrize("kwargs, words", [
    ({"pixels_per_cell": 32}, "pixels_per_cell=32 is larger than the 16px images"),
    ({"C": 0.0}, "C=0.0 must be a number > 0"),
    ({"C": -2.0}, "C=-2.0 must be a number > 0"),
    ({"kernel": "sigmoid"}, "kernel='sigmoid' is not known"),
    ({"workers": 0}, "workers=0"),
])
def test_bad_parameters_fail_before_any_work(tmp_path, kwargs, words):
    start = time.perf_counter()
    with pytest.raises(UserError) as info:
        train_hog_svm(_digits(tmp_path), out_dir=tmp_path / "runs", **kwargs)
    assert words in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "runs").exists() and not (tmp_path / "cache").exists()
    assert time.perf_counter() - start < 5


def test_regression_data_is_refused(tmp_path):
    data = _digits(tmp_path)
    data["task"] = "regression"
    with pytest.raises(UserError, match="classifies"):
        train_hog_svm(data, out_dir=tmp_path)


def test_builtins_keep_their_native_size_unless_told():
    assert baseline_data_config(["data.source=fashion-mnist"]).image_size == 28
    assert baseline_data_config(["data.source=fashion-mnist", "data.image_size=56"]).image_size == 56
    assert baseline_data_config(["data.source=digits"]).image_size == 32  # 8 px is too small for HOG cells
    with pytest.raises(UserError, match="data.\\* overrides only; got 'train.epochs=3' \\(HOG and SVM settings"):
        baseline_data_config(["train.epochs=3"])
    with pytest.raises(UserError, match="the run folder is --out DIR and --name NAME"):
        baseline_data_config(["output.dir=x"])


@pytest.mark.slow
@pytest.mark.skipif(not FASHION.is_dir(), reason=f"Fashion-MNIST not installed at {FASHION}")
def test_fashion_mnist_reaches_the_published_accuracy(tmp_path):
    """The defaults on 54,000 training images: about 2 minutes on two cores, 3.4 GB peak memory."""
    # data.cache=memory: the cold path, and no 1 GB feature cache left in the home folder.
    result = train_hog_svm(data_kwargs(baseline_data_config(["data.source=fashion-mnist", "data.cache=memory"])), out_dir=tmp_path,
                           log=lambda line: None)
    assert result.test["accuracy"] >= 0.921  # published HOG+SVM: 0.926


def test_settings_a_kernel_ignores_are_named_not_recorded(tmp_path):
    lines = []
    result = train_hog_svm(_digits(tmp_path), kernel="linear", pca_components=50, gamma=0.1, out_dir=tmp_path,
                           name="linear", workers=1, log=lines.append)
    assert any("the linear SVM ignores them" in line for line in lines)
    baseline = yaml.safe_load((result.run_dir / "config.yaml").read_text())["baseline"]
    assert baseline["kernel"] == "linear" and "pca_components" not in baseline and "gamma" not in baseline

