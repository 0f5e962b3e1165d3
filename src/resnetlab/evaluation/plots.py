"""Report figures: training curves, confusion matrices, per-class bars, error galleries.

Each `plot_*` function writes one PNG and returns its path. Figures are sized for a
Markdown report (8-18 inches wide at 130 dpi); tick labels shrink and rotate as the
class count grows, and cells carry numbers only while they are big enough to read.
Figures are closed after saving so a long run does not pile up open figures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: training boxes and CI have no display
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from scipy.special import softmax

from resnetlab.atomic_write import atomic_write
from resnetlab.evaluation.metrics import ClassificationReport, confused_pairs
from resnetlab.evaluation.regression_metrics import (
    fit_logistic,
    regression_metrics,
)
from resnetlab.metric_direction import lower_is_better

DPI = 130
ANNOTATE_MAX_CLASSES = 20  # beyond this, numbers in confusion cells stop being legible
NAME_LIMIT = 28  # characters of a class name kept in tick labels

STANDARD_CLASSIFICATION_PLOTS = (
    "curves.png",
    "confusion_matrix.png",
    "confusion_matrix_normalized.png",
    "per_class_accuracy.png",
    "per_class_top_bottom.png",
    "confused_pairs.png",
)


# --- small helpers -------------------------------------------------------------------


def _save(fig: Figure, path: str | Path) -> Path:
    try:
        return atomic_write(path, lambda handle: fig.savefig(handle, format="png", dpi=DPI, bbox_inches="tight"))
    finally:
        plt.close(fig)


def _short(name: str, limit: int = NAME_LIMIT) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def _label_fontsize(count: int, span_inches: float) -> float:
    """Tick label size for `count` labels spread over `span_inches`: 9 pt when there is
    room, shrinking with the spacing (60% of it) so neighbours never overlap, 4 pt floor."""
    spacing_pt = span_inches * 72.0 / max(count, 1)
    return float(np.clip(0.6 * spacing_pt, 4.0, 9.0))


def _message_figure(text: str, *, title: str) -> Figure:
    """A small figure that says why there is nothing to draw, so the report never has
    a broken image link."""
    fig, ax = plt.subplots(figsize=(6, 2.2))
    ax.axis("off")
    ax.set_title(title)
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=12, transform=ax.transAxes)
    return fig


def _series(history: Sequence[dict[str, Any]], key: str) -> np.ndarray:
    """One history column as floats; epochs that did not log the key become NaN gaps."""
    values = [row.get(key) for row in history]
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def _epochs(history: Sequence[dict[str, Any]]) -> np.ndarray:
    return np.array([row.get("epoch", i + 1) for i, row in enumerate(history)], dtype=np.float64)


def _best_epoch(history: Sequence[dict[str, Any]], monitor: str) -> int | None:
    """Fallback when the caller does not pass the trainer's best epoch."""
    values = _series(history, monitor)
    if np.all(np.isnan(values)):
        return None
    index = np.nanargmin(values) if lower_is_better(monitor) else np.nanargmax(values)
    return int(_epochs(history)[index])


def _as_probabilities(scores: np.ndarray) -> np.ndarray:
    """Rows that already sum to 1 are kept; anything else is treated as logits."""
    scores = np.asarray(scores, dtype=np.float64)
    if np.all(scores >= 0) and np.allclose(scores.sum(axis=1), 1.0, atol=1e-3):
        return scores
    return softmax(scores, axis=1)


# --- training curves -----------------------------------------------------------------


def _mark_stages(axes: Sequence[plt.Axes], history: Sequence[dict[str, Any]]) -> None:
    """Dashed lines where the training stage changes (e.g. linear probe -> fine-tune)."""
    stages = [row.get("stage") for row in history]
    if len({s for s in stages if s is not None}) < 2:  # one stage: nothing to mark
        return
    epochs = _epochs(history)
    starts = [0] + [i for i in range(1, len(stages)) if stages[i] != stages[i - 1]]
    for start in starts:
        x = epochs[start] - 0.5
        for ax in axes:
            if start > 0:
                ax.axvline(x, color="0.5", linestyle="--", linewidth=0.8)
        if stages[start] is not None:
            axes[0].text(
                x, 1.0, f" stage {stages[start]}", transform=axes[0].get_xaxis_transform(),
                va="bottom", ha="left", fontsize=8, color="0.35",
            )


def plot_training_curves(
    history: Sequence[dict[str, Any]],
    *,
    monitor: str,
    path: str | Path,
    best_epoch: int | None = None,
) -> Path:
    """Three panels: losses, the monitored metric with accuracies, learning rate.

    `best_epoch` is the trainer's choice; when omitted it is the epoch with the best
    `monitor` value (lowest for losses and errors, highest otherwise).
    """
    if not history:
        return _save(_message_figure("no epochs recorded", title="Training curves"), path)
    epochs = _epochs(history)
    keys = {k for row in history for k in row}
    if best_epoch is None:
        best_epoch = _best_epoch(history, monitor)

    fig, (ax_loss, ax_metric, ax_lr) = plt.subplots(1, 3, figsize=(15, 4.2))

    loss_keys = sorted(k for k in keys if k.endswith("/loss"))
    # train first, then val, then anything else, so colours match across runs
    loss_keys.sort(key=lambda k: ({"train": 0, "val": 1}.get(k.split("/")[0], 2), k))
    for key in loss_keys:
        ax_loss.plot(epochs, _series(history, key), marker=".", label=key)
    ax_loss.set_title("Loss")

    metric_keys = [] if lower_is_better(monitor) else [monitor]
    metric_keys += [k for k in ("train/accuracy", "val/accuracy") if k in keys and k != monitor]
    for key in metric_keys:
        style = {"linewidth": 2.2} if key == monitor else {"linewidth": 1.2, "alpha": 0.8}
        ax_metric.plot(epochs, _series(history, key), marker=".", label=key, **style)
    ax_metric.set_title(f"Monitored: {monitor}")

    if "lr" in keys:
        lr = _series(history, "lr")
        ax_lr.plot(epochs, lr, marker=".", color="tab:purple")
        positive = lr[np.isfinite(lr) & (lr > 0)]
        # A log axis only helps when the schedule spans orders of magnitude.
        if positive.size and positive.max() / positive.min() > 20:
            ax_lr.set_yscale("log")
    else:
        ax_lr.text(0.5, 0.5, "no learning rate logged", ha="center", transform=ax_lr.transAxes)
    ax_lr.set_title("Learning rate")

    if best_epoch is not None:
        monitor_values = _series(history, monitor)
        match = np.flatnonzero(epochs == best_epoch)
        best_value = monitor_values[match[0]] if match.size else np.nan
        label = f"best epoch {best_epoch}"
        if np.isfinite(best_value):
            label += f" ({monitor} = {best_value:.4g})"
        for ax in (ax_loss, ax_metric, ax_lr):
            ax.axvline(best_epoch, color="tab:red", linestyle=":", linewidth=1.2,
                       label=label if ax is ax_metric else None)
        if np.isfinite(best_value):
            target_ax = ax_loss if lower_is_better(monitor) else ax_metric
            target_ax.plot([best_epoch], [best_value], marker="*", markersize=13,
                           color="tab:red", linestyle="none")

    _mark_stages((ax_loss, ax_metric, ax_lr), history)
    for ax in (ax_loss, ax_metric, ax_lr):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


# --- confusion matrix ----------------------------------------------------------------


def confusion_matrix_figure(
    confusion: np.ndarray, class_names: Sequence[str], *, normalize: bool
) -> Figure:
    """The confusion matrix as an open figure (rows = true class, columns = predicted).

    With `normalize`, each row is divided by its support, so the diagonal is per-class
    accuracy; rows of classes without samples stay at 0. The caller closes the figure.
    """
    matrix = np.asarray(confusion, dtype=np.float64)
    k = matrix.shape[0]
    if matrix.shape != (k, k) or len(class_names) != k:
        raise ValueError(
            f"confusion is {matrix.shape} but there are {len(class_names)} class names"
        )
    if normalize:
        support = matrix.sum(axis=1, keepdims=True)
        values = np.divide(matrix, support, out=np.zeros_like(matrix), where=support > 0)
        vmax = 1.0
    else:
        values = matrix
        vmax = max(float(values.max()), 1.0)

    side = float(np.clip(0.32 * k + 3.0, 5.0, 18.0))
    fig, ax = plt.subplots(figsize=(side + 1.3, side))
    image = ax.imshow(values, cmap="Blues", vmin=0.0, vmax=vmax, interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)

    names = [_short(n) for n in class_names]
    # An all-zero row is ambiguous (no samples, or all of them elsewhere?); say which.
    row_names = [f"{n} (no samples)" if matrix[i].sum() == 0 else n for i, n in enumerate(names)]
    fontsize = _label_fontsize(k, side)
    ax.set_xticks(range(k), labels=names, fontsize=fontsize,
                  rotation=45 if k <= 30 else 90, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(k), labels=row_names, fontsize=fontsize)
    ax.set_xlabel("Predicted class")
    ax.set_ylabel("True class")
    total = int(matrix.sum())
    ax.set_title(
        f"Confusion matrix, normalized by true class (N = {total})" if normalize
        else f"Confusion matrix, counts (N = {total})"
    )

    if k <= ANNOTATE_MAX_CLASSES:
        cell_fontsize = 9 if k <= 10 else 7
        for i in range(k):
            for j in range(k):
                value = values[i, j]
                text = f"{value:.2f}" if normalize else f"{int(value)}"
                if value == 0:
                    text = "0" if not normalize else "·"
                color = "white" if value > 0.55 * vmax else "black"
                ax.text(j, i, text, ha="center", va="center", fontsize=cell_fontsize, color=color)
    fig.tight_layout()
    return fig


def plot_confusion_matrix(
    confusion: np.ndarray, class_names: Sequence[str], *, path: str | Path, normalize: bool
) -> Path:
    """Write the confusion matrix as a PNG (see `confusion_matrix_figure`)."""
    return _save(confusion_matrix_figure(confusion, class_names, normalize=normalize), path)


# --- per-class bars ------------------------------------------------------------------


def plot_per_class_accuracy(
    per_class: Sequence[dict[str, Any]], *, path: str | Path, top_bottom: int | None = None
) -> Path:
    """Horizontal bars of per-class accuracy, best first.

    With `top_bottom=k` only the k best and k worst classes are drawn (all of them when
    there are no more than 2k). Classes with no samples in the split have no accuracy
    and are left out; the title says how many.
    """
    rows = [r for r in per_class if r.get("accuracy") is not None]
    absent = len(per_class) - len(rows)
    if not rows:
        return _save(_message_figure("no class has samples", title="Per-class accuracy"), path)
    rows.sort(key=lambda r: (-r["accuracy"], r["name"]))
    mean_accuracy = float(np.mean([r["accuracy"] for r in rows]))

    shown: list[dict[str, Any] | None]
    if top_bottom is not None and 2 * top_bottom < len(rows):
        shown = rows[:top_bottom] + [None] + rows[-top_bottom:]  # None draws a gap
        title = f"Per-class accuracy: best {top_bottom} and worst {top_bottom} of {len(rows)}"
    else:
        shown = list(rows)
        title = f"Per-class accuracy ({len(rows)} classes, sorted)"
    if absent:
        title += f"; {absent} without samples not shown"

    count = len(shown)
    height = float(np.clip(0.28 * count + 1.6, 3.0, 30.0))
    fig, ax = plt.subplots(figsize=(9, height))
    positions = np.arange(count)[::-1]  # first row at the top
    fontsize = _label_fontsize(count, height - 1.6)
    colours = plt.get_cmap("RdYlGn")
    labels = []
    for y, row in zip(positions, shown):
        if row is None:
            labels.append("⋯")
            continue
        labels.append(_short(row["name"]))
        accuracy = float(row["accuracy"])
        ax.barh(y, accuracy, color=colours(0.15 + 0.7 * accuracy), height=0.75)
        if count <= 60:
            ax.text(accuracy + 0.01, y, f"{accuracy:.2f} (n={row['support']})",
                    va="center", fontsize=fontsize - 1)
    ax.axvline(mean_accuracy, color="0.3", linestyle="--", linewidth=1,
               label=f"mean per-class accuracy = {mean_accuracy:.3f}")
    ax.set_yticks(positions, labels=labels, fontsize=fontsize)
    ax.set_ylim(-0.7, count - 0.3)
    ax.set_xlim(0, 1.18)  # room for the value labels right of a perfect bar
    ax.set_xlabel("accuracy (recall)")
    ax.set_title(title, fontsize=10)
    # Below the axes: inside, it would cover the value labels of the worst classes.
    ax.legend(loc="upper right", bbox_to_anchor=(1.0, -0.12), fontsize=8, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def plot_confused_pairs(
    confusion: np.ndarray, class_names: Sequence[str], *, path: str | Path, k: int = 10
) -> Path:
    """The k most frequent (true → predicted) mistakes, with their share of the true class."""
    matrix = np.asarray(confusion)
    pairs = confused_pairs(matrix, list(class_names), k=k)
    if not pairs:
        return _save(_message_figure("no misclassifications", title="Most confused pairs"), path)
    support = dict(zip(class_names, matrix.sum(axis=1).tolist()))
    count = len(pairs)
    fig, ax = plt.subplots(figsize=(9, 0.42 * count + 1.4))
    positions = np.arange(count)[::-1]
    counts = [c for _, _, c in pairs]
    ax.barh(positions, counts, color="tab:orange", height=0.7)
    for y, (true, _, c) in zip(positions, pairs):
        share = c / support[true] if support[true] else 0.0
        ax.text(c, y, f" {c} ({share:.0%} of class {_short(true, 20)})", va="center", fontsize=8)
    ax.set_yticks(positions,
                  labels=[f"{_short(t, 22)} → {_short(p, 22)}" for t, p, _ in pairs], fontsize=9)
    ax.set_xlim(0, max(counts) * 1.35)  # room for the annotations
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("samples")
    ax.set_title(f"Most confused pairs (true → predicted), top {count}")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


# --- misclassified images ------------------------------------------------------------


def plot_misclassified_grid(
    images: np.ndarray,
    true: np.ndarray,
    pred: np.ndarray,
    confidence: np.ndarray,
    class_names: Sequence[str],
    *,
    path: str | Path,
    max_images: int = 16,
) -> Path:
    """A grid of the most confidently misclassified images, titled "true → pred (p=..)".

    `images` is uint8 (N, C, H, W) with C = 1 or 3, as the data pipeline stores them;
    `confidence` is the probability of the predicted class.
    """
    images = np.asarray(images)
    true = np.asarray(true)
    pred = np.asarray(pred)
    confidence = np.asarray(confidence, dtype=np.float64)
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must be (N, 1 or 3, H, W), got shape {images.shape}")
    if images.dtype != np.uint8:
        raise ValueError(f"images must be uint8, got {images.dtype}")
    n = images.shape[0]
    if not (true.shape == pred.shape == confidence.shape == (n,)):
        raise ValueError(
            f"true, pred and confidence must be ({n},); got {true.shape}, {pred.shape}, "
            f"{confidence.shape}"
        )

    wrong = np.flatnonzero(true != pred)
    if wrong.size == 0:
        fig = _message_figure(f"no misclassified images ({n} of {n} correct)",
                              title="Misclassified images")
        return _save(fig, path)
    chosen = wrong[np.argsort(-confidence[wrong], kind="stable")][:max_images]

    shown = len(chosen)
    cols = min(shown, 4) if shown <= 16 else math.ceil(math.sqrt(shown))
    rows = math.ceil(shown / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.7 * cols, 2.9 * rows), squeeze=False)
    height = images.shape[2]
    for ax in axes.ravel():
        ax.axis("off")
    for ax, index in zip(axes.ravel(), chosen):
        picture = images[index]
        if picture.shape[0] == 1:
            ax.imshow(picture[0], cmap="gray", vmin=0, vmax=255,
                      interpolation="nearest" if height <= 64 else "antialiased")
        else:
            ax.imshow(picture.transpose(1, 2, 0),
                      interpolation="nearest" if height <= 64 else "antialiased")
        title = (f"{_short(class_names[int(true[index])], 16)} → "
                 f"{_short(class_names[int(pred[index])], 16)}")
        # Two lines keep long names from running into the neighbouring image.
        separator = " " if len(title) <= 24 else "\n"
        ax.set_title(f"{title}{separator}(p={confidence[index]:.2f})", fontsize=8)
    fig.suptitle(
        f"Most confident mistakes: {shown} of {wrong.size} misclassified ({n} images)",
        fontsize=10,
    )
    fig.tight_layout(h_pad=1.5)  # room for each row's titles
    return _save(fig, path)


# --- Grad-CAM ------------------------------------------------------------------------


def plot_message(text: str, *, title: str, path: str | Path) -> Path:
    """A figure that only says why there is nothing to draw (the report keeps no broken link)."""
    return _save(_message_figure(text, title=title), path)


def plot_gradcam_grid(images: np.ndarray, maps: np.ndarray, titles: Sequence[str], *, path: str | Path,
                      correct: Sequence[bool | None] | None = None, title: str = "") -> Path:
    """Each uint8 image (N, C, H, W) with its Grad-CAM map (N, H, W) in [0, 1] laid over it, titled;
    ``correct`` colours a title green (right), red (wrong) or black (true class unknown)."""
    images = np.asarray(images)
    n = len(images)
    cols = min(n, 4) if n <= 16 else math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.7 * cols, 3.0 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    smooth = "nearest" if images.shape[2] <= 64 else "antialiased"
    for i, ax in enumerate(axes.ravel()[:n]):
        picture = images[i]
        if picture.shape[0] == 1:
            ax.imshow(picture[0], cmap="gray", vmin=0, vmax=255, interpolation=smooth)
        else:
            ax.imshow(picture.transpose(1, 2, 0), interpolation=smooth)
        ax.imshow(maps[i], cmap="jet", alpha=0.45, vmin=0.0, vmax=1.0, interpolation="bilinear")
        right = None if correct is None else correct[i]
        ax.set_title(titles[i], fontsize=8, color={True: "tab:green", False: "tab:red"}.get(right, "black"))
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(h_pad=1.5)
    return _save(fig, path)


# --- regression ----------------------------------------------------------------------


def plot_regression_scatter(pred: np.ndarray, target: np.ndarray, *, path: str | Path) -> Path:
    """Prediction against target, with the identity line, the fitted logistic mapping
    and the correlation metrics in a corner box."""
    x = np.asarray(target, dtype=np.float64).ravel()
    y = np.asarray(pred, dtype=np.float64).ravel()
    fig, ax = plt.subplots(figsize=(6.5, 6))
    alpha = float(np.clip(300 / max(x.size, 1), 0.15, 0.8))  # dense clouds stay readable
    ax.scatter(x, y, s=12, alpha=alpha, edgecolors="none", label="samples")
    if x.size:
        low, high = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
        ax.plot([low, high], [low, high], color="0.4", linestyle="--", linewidth=1, label="y = x")
    mapping = fit_logistic(y, x)
    if mapping is not None:
        grid = np.linspace(y.min(), y.max(), 200)
        # the fit maps prediction -> target, so draw it with target on the x-axis
        ax.plot(mapping(grid), grid, color="tab:red", linewidth=1.5, label="logistic fit")
    try:
        scores = regression_metrics(y, x)
        text = "\n".join([
            f"N = {x.size}",
            f"SRCC = {scores['srcc']:.3f}",
            f"PLCC = {scores['plcc']:.3f}",
            f"PLCC (logistic) = {scores['plcc_logistic']:.3f}",
            f"RMSE = {scores['rmse']:.3g}",
        ])
        ax.text(0.03, 0.97, text, transform=ax.transAxes, va="top", fontsize=9,
                bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.85})
    except ValueError:
        pass  # fewer than 2 points: nothing meaningful to annotate
    ax.set_xlabel("target")
    ax.set_ylabel("prediction")
    ax.set_title("Predictions vs targets")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def plot_residuals(pred: np.ndarray, target: np.ndarray, *, path: str | Path) -> Path:
    """Residuals (prediction - target) against target, and their histogram."""
    x = np.asarray(target, dtype=np.float64).ravel()
    residual = np.asarray(pred, dtype=np.float64).ravel() - x
    fig, (ax_scatter, ax_hist) = plt.subplots(1, 2, figsize=(12, 4.5))
    alpha = float(np.clip(300 / max(x.size, 1), 0.15, 0.8))
    ax_scatter.scatter(x, residual, s=12, alpha=alpha, edgecolors="none")
    ax_scatter.axhline(0, color="0.3", linestyle="--", linewidth=1)
    ax_scatter.set_xlabel("target")
    ax_scatter.set_ylabel("prediction - target")
    ax_scatter.set_title("Residuals vs target")
    ax_scatter.grid(alpha=0.3)
    ax_hist.hist(residual, bins=min(50, max(5, x.size // 10)), color="tab:blue", alpha=0.8)
    ax_hist.axvline(0, color="0.3", linestyle="--", linewidth=1)
    if residual.size:
        ax_hist.set_title(
            f"Residual distribution (mean {residual.mean():.3g}, std {residual.std():.3g})"
        )
    ax_hist.set_xlabel("prediction - target")
    ax_hist.set_ylabel("samples")
    ax_hist.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


# --- comparisons ---------------------------------------------------------------------


def plot_run_comparison(
    histories: dict[str, Sequence[dict[str, Any]]],
    *,
    monitors: dict[str, str],
    path: str | Path,
) -> Path:
    """Overlay each run's monitored validation metric and validation loss.

    `histories` and `monitors` are keyed by run name. When runs monitor different
    metrics, each legend entry names its metric.
    """
    fig, (ax_metric, ax_loss) = plt.subplots(1, 2, figsize=(14, 4.8))
    same_monitor = len(set(monitors.values())) <= 1
    colours = plt.get_cmap("tab10" if len(histories) <= 10 else "tab20")
    for i, (name, history) in enumerate(histories.items()):
        colour = colours(i % colours.N)
        epochs = _epochs(history)
        monitor = monitors.get(name, "val/accuracy")
        label = name if same_monitor else f"{name} ({monitor})"
        ax_metric.plot(epochs, _series(history, monitor), marker=".", color=colour, label=label)
        ax_loss.plot(epochs, _series(history, "val/loss"), marker=".", color=colour, label=name)
    metric_title = "monitored metric"
    if same_monitor and monitors:
        metric_title = next(iter(monitors.values()))
    ax_metric.set_title(f"Validation: {metric_title}")
    ax_loss.set_title("Validation: loss")
    for ax in (ax_metric, ax_loss):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    if histories:
        # many runs: put the legend outside so it does not hide the curves
        if len(histories) > 6:
            ax_loss.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
        else:
            ax_metric.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


# --- standard sets -------------------------------------------------------------------


def write_classification_plots(
    report: ClassificationReport,
    history: Sequence[dict[str, Any]],
    *,
    monitor: str,
    plots_dir: str | Path,
    images: np.ndarray | None = None,
    probs: np.ndarray | None = None,
    targets: np.ndarray | None = None,
    best_epoch: int | None = None,
) -> list[Path]:
    """Write the six standard figures (`STANDARD_CLASSIFICATION_PLOTS`) into plots_dir,
    plus misclassified.png when `images` are given (then `probs` and `targets` are
    needed too; `probs` may also be logits, which are softmaxed). An empty `history`
    (a model fitted once, such as the HOG+SVM baseline) draws no curves.png."""
    if images is not None and (probs is None or targets is None):
        raise ValueError("misclassified.png needs probs and targets alongside images")
    out = Path(plots_dir)
    names = report.class_names
    paths = [
        plot_confusion_matrix(report.confusion, names, path=out / "confusion_matrix.png",
                              normalize=False),
        plot_confusion_matrix(report.confusion, names,
                              path=out / "confusion_matrix_normalized.png", normalize=True),
        plot_per_class_accuracy(report.per_class, path=out / "per_class_accuracy.png"),
        plot_per_class_accuracy(report.per_class, path=out / "per_class_top_bottom.png",
                                top_bottom=10),
        plot_confused_pairs(report.confusion, names, path=out / "confused_pairs.png"),
    ]
    if history:
        paths.insert(0, plot_training_curves(history, monitor=monitor, path=out / "curves.png",
                                             best_epoch=best_epoch))
    if images is not None:
        probabilities = _as_probabilities(probs)
        paths.append(plot_misclassified_grid(
            images, np.asarray(targets), probabilities.argmax(axis=1),
            probabilities.max(axis=1), names, path=out / "misclassified.png",
        ))
    return paths


def write_regression_plots(
    history: Sequence[dict[str, Any]],
    *,
    monitor: str,
    plots_dir: str | Path,
    pred: np.ndarray,
    target: np.ndarray,
    best_epoch: int | None = None,
) -> list[Path]:
    """Write curves.png, regression_scatter.png and residuals.png into plots_dir."""
    out = Path(plots_dir)
    return [
        plot_training_curves(history, monitor=monitor, path=out / "curves.png",
                             best_epoch=best_epoch),
        plot_regression_scatter(pred, target, path=out / "regression_scatter.png"),
        plot_residuals(pred, target, path=out / "residuals.png"),
    ]
