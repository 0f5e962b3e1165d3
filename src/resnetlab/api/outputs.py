"""The final evaluation and what it leaves in a folder, one path for ``train`` and ``eval``.

``train`` evaluates its best weights on val and test and writes metrics.json,
final_results.json, plots and report.md into the run folder; ``eval`` evaluates any split and
writes its metrics, plots and report into an evaluation folder. Both go through
:func:`final_evaluation` and :func:`write_plots`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from resnetlab.api.assemble import Task
from resnetlab.api.evaluator import Evaluator, SplitResult
from resnetlab.config import Config, to_dict
from resnetlab.data.bundle import DataBundle, Split
from resnetlab.training.run_folder import write_json


def final_evaluation(evaluators: Mapping[str, Evaluator]) -> dict[str, SplitResult]:
    """Each named evaluator's outputs, scalars and report, in order."""
    return {name: evaluator.run() for name, evaluator in evaluators.items()}


def write_plots(result: SplitResult, split: Split, task: Task, *, plots_dir: Path, history: list[dict[str, Any]],
                monitor: str, best_epoch: int | None = None) -> None:
    """The plots of one evaluated split: confusion, curves and examples, or the scores against the truth."""
    from resnetlab.evaluation import plots

    out, detail = result.out, result.detail
    if task.kind == "classification":
        probs = torch.from_numpy(out.outputs).softmax(dim=1).numpy()
        plots.write_classification_plots(detail, history, monitor=monitor, plots_dir=plots_dir,
                                         images=np.asarray(split.images[out.index]), probs=probs,
                                         targets=out.targets, best_epoch=best_epoch)
    else:
        plots.write_regression_plots(history, monitor=monitor, plots_dir=plots_dir, pred=detail,
                                     target=np.asarray(split.targets)[out.index], best_epoch=best_epoch)


def write_run_outputs(cfg: Config, run_dir: Path, *, bundle: DataBundle, task: Task, results: dict[str, SplitResult],
                      history: list[dict[str, Any]], monitor: Any, resources: dict[str, Any], tb: Any,
                      model: nn.Module) -> None:
    """A finished training run's metrics.json, final_results.json, plots (with the Grad-CAM grid of the
    best weights, ``model``), TensorBoard figure and report."""
    from resnetlab.evaluation.report import write_report

    metrics: dict[str, Any] = {"best_epoch": monitor.best_epoch, "monitor": monitor.key, "resources": resources}
    for name, r in results.items():
        metrics[name] = r.detail.to_dict() if task.kind == "classification" else {"scalars": r.scalars}
    write_json(run_dir / "metrics.json", metrics)
    write_json(run_dir / "final_results.json", final_results(cfg, task, results, history, monitor))
    val = results.get("val")
    if cfg.output.plots:
        plots_dir = run_dir / "plots"
        plots_dir.mkdir(exist_ok=True)
        if val is not None:
            write_plots(val, bundle.val, task, plots_dir=plots_dir, history=history, monitor=monitor.key,
                        best_epoch=monitor.best_epoch)
            if task.kind == "classification":
                _write_gradcam(plots_dir / "gradcam.png", model, bundle, val.out, patches=bool(cfg.patches.size))
    if tb is not None and val is not None and task.kind == "classification":
        tb.log_figure_confusion(val.detail.confusion, task.class_names, monitor.best_epoch or 0)
    write_report(run_dir)


def _write_gradcam(path: Path, model: nn.Module, bundle: DataBundle, out: Any, *, patches: bool) -> None:
    """The report's Grad-CAM grid of a few right and wrong validation images, with the best weights."""
    from resnetlab.evaluation import gradcam, plots

    if patches:  # the network sees patches, the report's images are whole: a map of either would mislead
        plots.plot_message("not drawn for patch-averaged evaluation (patches.size); use resnetlab explain on "
                           "patch-sized images", title="Grad-CAM", path=path)
        return
    features = bundle.val.features[out.index] if bundle.val.features is not None else None
    gradcam.report_examples(model, np.asarray(bundle.val.images[out.index]), out.targets, out.outputs,
                            bundle.class_names, mean=bundle.mean, std=bundle.std, path=path, features=features)


def final_results(cfg: Config, task: Task, results: dict[str, SplitResult], history: list[dict[str, Any]],
                  monitor: Any) -> dict[str, Any]:
    """The headline numbers of a run: test and best-validation main metrics, and its settings."""
    test = results.get("test")
    key = "accuracy" if task.kind == "classification" else "srcc"
    second = "mpca" if task.kind == "classification" else "plcc"
    best_row = next((r for r in history if r["epoch"] == monitor.best_epoch), {})
    return {f"test_{key}": test.scalars.get(key) if test else None,
            f"test_{second}": test.scalars.get(second) if test else None,
            f"best_val_{key}": best_row.get(f"val/{key}"),
            f"best_val_{second}": best_row.get(f"val/{second}"),
            "best_epoch": monitor.best_epoch, "monitor": monitor.key, "monitor_best": monitor.best,
            "config": to_dict(cfg)}


def final_line(run_dir: Path, monitor: Any, results: dict[str, SplitResult]) -> str:
    parts = [f"done: best {monitor.key} {monitor.best:.4f} at epoch {monitor.best_epoch}"]
    for name in ("val", "test"):
        if name in results:
            scalars = results[name].scalars
            key = "accuracy" if "accuracy" in scalars else "srcc"
            parts.append(f"{name}/{key} {scalars[key]:.4f}")
    return "  ".join(parts) + f"  → {run_dir}"
