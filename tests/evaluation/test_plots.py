from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest

from resnetlab.evaluation import plots
from resnetlab.evaluation.metrics import classification_metrics

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog"]


def assert_png(path: Path) -> None:
    data = Path(path).read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 2000  # more than an empty canvas header


def make_history(epochs: int = 6) -> list[dict]:
    return [
        {
            "epoch": e,
            "stage": "probe" if e <= 2 else "finetune",
            "train/loss": 2.0 / e,
            "val/loss": 2.2 / e,
            "train/accuracy": 1 - 0.5 / e,
            "val/accuracy": 1 - 0.6 / e,
            "val/mpca": 1 - 0.65 / e,
            "lr": 0.1 * 0.5**e,
        }
        for e in range(1, epochs + 1)
    ]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 5, size=60)  # "dog" never appears
    logits = rng.normal(size=(60, 6))
    logits[np.arange(60), targets] += 1.5
    report = classification_metrics(logits, targets, class_names=NAMES)
    return report, logits, targets


def test_training_curves(tmp_path):
    assert_png(plots.plot_training_curves(make_history(), monitor="val/mpca",
                                          path=tmp_path / "c.png"))


def test_training_curves_with_loss_monitor_and_missing_keys(tmp_path):
    history = [{"epoch": 1, "train/loss": 1.0}, {"epoch": 2, "train/loss": 0.5, "val/loss": 0.7}]
    assert_png(plots.plot_training_curves(history, monitor="val/loss", path=tmp_path / "c.png",
                                          best_epoch=2))


def test_training_curves_empty_history(tmp_path):
    assert_png(plots.plot_training_curves([], monitor="val/accuracy", path=tmp_path / "c.png"))


@pytest.mark.parametrize("normalize", [False, True])
def test_confusion_matrix(tmp_path, data, normalize):
    report, _, _ = data
    assert_png(plots.plot_confusion_matrix(report.confusion, NAMES, path=tmp_path / "m.png",
                                           normalize=normalize))


def test_confusion_figure_has_class_names_as_ticks(data):
    report, _, _ = data
    fig = plots.confusion_matrix_figure(report.confusion, NAMES, normalize=True)
    try:
        ax = fig.axes[0]
        assert [t.get_text() for t in ax.get_xticklabels()] == NAMES
        y_labels = [t.get_text() for t in ax.get_yticklabels()]
        assert y_labels[:5] == NAMES[:5]
        assert y_labels[5] == "dog (no samples)"
        # row-normalised: the diagonal cell texts are per-class recalls
        texts = {t.get_text() for t in ax.texts}
        cat = report.per_class[3]["accuracy"]
        assert f"{cat:.2f}" in texts
    finally:
        plt.close(fig)


def test_confusion_figure_many_classes_is_not_annotated():
    k = 40
    fig = plots.confusion_matrix_figure(np.eye(k, dtype=int) * 3, [f"c{i}" for i in range(k)],
                                        normalize=False)
    try:
        assert len(fig.axes[0].texts) == 0
        assert len(fig.axes[0].get_xticklabels()) == k
    finally:
        plt.close(fig)


@pytest.mark.parametrize("top_bottom", [None, 2])
def test_per_class_accuracy(tmp_path, data, top_bottom):
    report, _, _ = data
    assert_png(plots.plot_per_class_accuracy(report.per_class, path=tmp_path / "p.png",
                                             top_bottom=top_bottom))


def test_confused_pairs(tmp_path, data):
    report, _, _ = data
    assert_png(plots.plot_confused_pairs(report.confusion, NAMES, path=tmp_path / "cp.png", k=5))


def test_confused_pairs_without_mistakes(tmp_path):
    assert_png(plots.plot_confused_pairs(np.diag([3, 4]), ["a", "b"], path=tmp_path / "cp.png"))


@pytest.mark.parametrize("channels", [1, 3])
def test_misclassified_grid(tmp_path, channels):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(10, channels, 16, 16), dtype=np.uint8)
    true = np.arange(10) % 3
    pred = np.array([0, 2, 2, 0, 1, 1, 0, 0, 2, 0])
    confidence = rng.uniform(0.3, 1.0, size=10)
    assert_png(plots.plot_misclassified_grid(images, true, pred, confidence, ["x", "y", "z"],
                                             path=tmp_path / "mis.png", max_images=4))


def test_misclassified_grid_with_no_mistakes(tmp_path):
    images = np.zeros((3, 3, 8, 8), dtype=np.uint8)
    labels = np.array([0, 1, 0])
    assert_png(plots.plot_misclassified_grid(images, labels, labels, np.ones(3), ["a", "b"],
                                             path=tmp_path / "mis.png"))


def test_misclassified_grid_rejects_float_images(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        plots.plot_misclassified_grid(np.zeros((2, 3, 4, 4)), np.zeros(2), np.ones(2),
                                      np.ones(2), ["a", "b"], path=tmp_path / "m.png")


def test_regression_plots(tmp_path):
    rng = np.random.default_rng(2)
    target = rng.uniform(1, 5, size=80)
    pred = np.tanh(target - 3) + rng.normal(scale=0.1, size=80)
    assert_png(plots.plot_regression_scatter(pred, target, path=tmp_path / "s.png"))
    assert_png(plots.plot_residuals(pred, target, path=tmp_path / "r.png"))


def test_run_comparison_plot(tmp_path):
    runs = {"a": make_history(5), "b": make_history(3)}
    assert_png(plots.plot_run_comparison(runs, monitors={"a": "val/accuracy", "b": "val/mpca"},
                                         path=tmp_path / "cmp.png"))


def test_write_classification_plots(tmp_path, data):
    report, logits, targets = data
    images = np.random.default_rng(3).integers(0, 256, size=(60, 3, 8, 8), dtype=np.uint8)
    paths = plots.write_classification_plots(
        report, make_history(), monitor="val/accuracy", plots_dir=tmp_path / "plots",
        images=images, probs=logits, targets=targets,
    )
    assert [p.name for p in paths] == list(plots.STANDARD_CLASSIFICATION_PLOTS) + [
        "misclassified.png"]
    for path in paths:
        assert_png(path)


def test_a_model_fitted_once_gets_no_curves(tmp_path, data):
    report, _, _ = data
    paths = plots.write_classification_plots(report, [], monitor="val/accuracy", plots_dir=tmp_path)
    assert [p.name for p in paths] == list(plots.STANDARD_CLASSIFICATION_PLOTS[1:])
    assert not (tmp_path / "curves.png").exists()


def test_write_classification_plots_needs_probs_with_images(tmp_path, data):
    report, _, _ = data
    with pytest.raises(ValueError, match="probs and targets"):
        plots.write_classification_plots(report, [], monitor="val/accuracy",
                                         plots_dir=tmp_path, images=np.zeros((1, 3, 2, 2),
                                                                             dtype=np.uint8))
