"""study.md and its plots: the results table (model, optimizer, lr, batch, image size, augmentation,
metrics) with mean ± std over seeds, the deltas against a baseline, failed runs with their errors,
and two figures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: studies run on servers and in CI
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from resnetlab.atomic_write import atomic_write, write_text
from resnetlab.evaluation.report import fmt_duration, fmt_value, table
from resnetlab.metric_direction import lower_is_better
from resnetlab.studies.results import (
    SETTING_KEYS,
    StudyResults,
    load_results,
    mean_std,
    read_history,
    write_results,
)

DPI = 130
SETTING_HEADERS = {"model.name": "model", "optim.name": "optimizer", "optim.lr": "lr", "train.batch_size": "batch",
                   "data.image_size": "image size", "augment.enabled": "augmentation"}
CLASSIFICATION_COLUMNS = (("val acc", "val/accuracy"), ("test acc", "test/accuracy"), ("top-5", "test/top5"))
REGRESSION_COLUMNS = (("val SRCC", "val/srcc"), ("val PLCC", "val/plcc"), ("test SRCC", "test/srcc"),
                      ("test PLCC", "test/plcc"))


def fmt_mean_std(stats: dict[str, Any], digits: int = 4) -> str:
    if not stats or stats.get("mean") is None:
        return "—"
    text = f"{stats['mean']:.{digits}f}"
    return text + (f" ± {stats['std']:.{digits}f}" if stats.get("std") is not None else "")


def write_all(root: str | Path) -> Path:
    """Results files, study.md and plots for the study folder ``root``; returns study.md."""
    results = load_results(root)
    write_results(results)
    return write_study_report(results)


def write_study_report(results: StudyResults) -> Path:
    root = results.root
    plots = root / "plots"
    figures = []
    if any(s["done"] for s in results.summary):
        figures.append(("Metric per variant (mean ± std over seeds, dots are single runs)",
                        plot_metric_by_variant(results, path=plots / "metric_by_variant.png")))
        figures.append(("Validation curves (mean over seeds, band ± std)",
                        plot_validation_curves(results, path=plots / "validation_curves.png")))
    lines = [*_header(results), *_results_table(results), *_delta_table(results), *_problems(results)]
    if figures:
        lines += ["## Plots", ""]
        for caption, path in figures:
            lines += [f"![{caption}](plots/{path.name})", "", f"_{caption}._", ""]
    return write_text(root / "study.md", "\n".join(lines))


# ---------------------------------------------------------------- sections


def _header(results: StudyResults) -> list[str]:
    plan, rows = results.plan, results.rows
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    seeds = plan.get("seeds")
    shape = f"{len(results.summary)} variants" + (f" × {seeds} seeds" if seeds else "")
    status = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    base = " ".join(plan.get("base") or []) or "the default configuration"
    extra = " ".join(plan.get("overrides") or [])
    direction = "lower is better" if lower_is_better(results.metric) else "higher is better"
    lines = [f"# Study: {results.name}", ""]
    if plan.get("description"):
        lines += [str(plan["description"]).strip(), ""]
    lines += [f"{len(rows)} runs ({shape}): {status}. Base: `{base}`" + (f", then `{extra}`" if extra else "")
              + f". From {plan.get('source')}.", "",
              (f"Metric: `{results.metric}` ({direction}); baseline: **{results.baseline}**. Metrics are "
              "mean ± sample standard deviation over the seeds that finished (n). Time is the mean training "
              "wall-clock time of one run."), ""]
    for note in results.notes:
        lines += [f"**Note:** {note}", ""]
    return lines


def _results_table(results: StudyResults) -> list[str]:
    extra_keys = [k for k in results.factors if k not in SETTING_KEYS]
    columns = list(REGRESSION_COLUMNS if results.regression else CLASSIFICATION_COLUMNS)
    if results.metric not in [key for _, key in columns]:
        columns.append((results.metric, results.metric))
    header = ["experiment", *SETTING_HEADERS.values(), *extra_keys, *(h for h, _ in columns), "time", "n"]
    rows = []
    for item in results.summary:
        name = f"{item['variant']} (baseline)" if item["baseline"] else item["variant"]
        settings = item["settings"]
        rows.append([name, *(fmt_value(settings.get(k)) for k in SETTING_HEADERS),
                     *(fmt_value(settings.get(k)) for k in extra_keys),
                     *(fmt_mean_std(item["metrics"][key]) for _, key in columns),
                     fmt_duration(item["wall_seconds"]["mean"]), f"{item['done']}/{item['runs']}"])
    first_extra = 1 + len(SETTING_HEADERS)
    numeric = [first_extra + i for i, key in enumerate(extra_keys)
               if all(_is_number(it["settings"].get(key)) for it in results.summary)]
    right = [3, 4, 5, *numeric, *range(first_extra + len(extra_keys), len(header))]
    return ["## Results", "", table(header, rows, right=right), ""]


def _delta_table(results: StudyResults) -> list[str]:
    metric = results.metric
    rows = []
    for item in results.summary:
        delta, pct = item["delta"], item["delta_pct"]
        if item["baseline"]:
            delta_text, pct_text = "—", "—"
        else:
            delta_text = f"{delta:+.4f}" if delta is not None else "—"
            pct_text = f"{pct:+.2f}%" if pct is not None else "—"
        rows.append([item["variant"] + (" (baseline)" if item["baseline"] else ""),
                     fmt_mean_std(item["metrics"][metric]), delta_text, pct_text,
                     fmt_duration(item["wall_seconds"]["mean"]), f"{item['done']}/{item['runs']}"])
    better = "negative" if lower_is_better(metric) else "positive"
    return [f"## Against the baseline ({results.baseline})", "",
            table(["experiment", metric, f"Δ {metric}", "Δ %", "time", "n"], rows, right=[1, 2, 3, 4, 5]), "",
            f"Δ is the difference of means against the baseline; {better} is better.", ""]


def _problems(results: StudyResults) -> list[str]:
    lines: list[str] = []
    failed = [r for r in results.rows if r["status"] == "failed"]
    if failed:
        lines += ["## Failed runs", "", table(["run", "error"], [[Path(r["run_dir"]).name, r["error"] or "—"]
                                                                 for r in failed]), ""]
    unfinished = [r for r in results.rows if r["status"] in ("interrupted", "pending")]
    if unfinished:
        names = ", ".join(f"{Path(r['run_dir']).name} ({r['status']})" for r in unfinished)
        lines += ["## Not finished", "", f"{names}. Run the same study command again to continue them.", ""]
    return lines


# ---------------------------------------------------------------- plots


def plot_metric_by_variant(results: StudyResults, *, path: Path) -> Path:
    metric = results.metric
    items = results.summary
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(items) + 2), 4.2))
    x = np.arange(len(items))
    means = [it["metrics"][metric]["mean"] for it in items]
    stds = [it["metrics"][metric]["std"] or 0.0 for it in items]
    heights = [m if m is not None else 0.0 for m in means]
    colors = ["tab:orange" if it["baseline"] else "tab:blue" for it in items]
    ax.bar(x, heights, yerr=stds, color=colors, alpha=0.75, capsize=5, edgecolor="black", linewidth=0.6)
    for i, item in enumerate(items):
        values = [r[metric] for r in results.rows
                  if r["variant"] == item["variant"] and r["status"] == "done" and r[metric] is not None]
        ax.scatter(np.full(len(values), i), values, color="black", s=12, zorder=3)
        if means[i] is not None:
            ax.annotate(f"{means[i]:.4f}", (i, heights[i] + stds[i]), ha="center", va="bottom", fontsize=8,
                        xytext=(0, 3), textcoords="offset points")
    present = [m for m in means if m is not None]
    if present:  # zoom on the differences; bars from zero hide them when all are near 1
        low = min(v for r in results.rows for v in [r[metric]] if v is not None)
        high = max(m + s for m, s in zip(heights, stds))
        pad = max(0.05 * (high - low), 1e-3)
        ax.set_ylim(max(0.0, low - 4 * pad) if low >= 0 else low - 4 * pad, high + 3 * pad)
    for i, mean in enumerate(means):
        if mean is None:
            ax.annotate("no finished run", (i, ax.get_ylim()[0]), ha="center", va="bottom", fontsize=8,
                        color="tab:red", xytext=(0, 4), textcoords="offset points")
    ax.set_xticks(x, [it["variant"] for it in items], rotation=30 if len(items) > 4 else 0,
                  ha="right" if len(items) > 4 else "center")
    ax.set_ylabel(metric)
    ax.set_title(f"{results.name}: {metric} (orange: baseline {results.baseline})")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def plot_validation_curves(results: StudyResults, *, path: Path) -> Path:
    key = "val/" + results.metric.split("/", 1)[1]
    keys = list(dict.fromkeys([key, "val/loss"]))
    fig, axes = plt.subplots(1, len(keys), figsize=(6.0 * len(keys), 4.2), squeeze=False)
    for item in results.summary:
        histories = [read_history(r["run_dir"]) for r in results.rows
                     if r["variant"] == item["variant"] and r["status"] == "done"]
        histories = [h for h in histories if h]
        if not histories:
            continue
        for ax, name in zip(axes[0], keys):
            epochs, mean, std = _mean_curve(histories, name)
            if not epochs:
                continue
            line, = ax.plot(epochs, mean, marker="o", markersize=3,
                            label=f"{item['variant']} (n={len(histories)})",
                            linewidth=2.2 if item["baseline"] else 1.4)
            if any(s is not None for s in std):
                band = np.array([s if s is not None else 0.0 for s in std])
                ax.fill_between(epochs, np.array(mean) - band, np.array(mean) + band, color=line.get_color(),
                                alpha=0.15)
    for ax, name in zip(axes[0], keys):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.set_title(name)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle(f"{results.name}: validation curves")
    return _save(fig, path)


def _mean_curve(histories: list[list[dict[str, Any]]], key: str) -> tuple[list[int], list[float], list[float | None]]:
    """Per epoch, the mean and std over the runs that reached it (early stopping shortens some)."""
    by_epoch: dict[int, list[float]] = {}
    for history in histories:
        for row in history:
            if isinstance(row.get(key), (int, float)) and row.get("epoch") is not None:
                by_epoch.setdefault(int(row["epoch"]), []).append(float(row[key]))
    epochs = sorted(by_epoch)
    stats = [mean_std(by_epoch[e]) for e in epochs]
    return epochs, [s["mean"] for s in stats], [s["std"] for s in stats]


def _save(fig: plt.Figure, path: Path) -> Path:
    try:
        return atomic_write(path, lambda handle: fig.savefig(handle, format="png", dpi=DPI, bbox_inches="tight"))
    finally:
        plt.close(fig)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
