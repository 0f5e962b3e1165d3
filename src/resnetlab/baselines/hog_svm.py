"""The HOG+SVM baseline run: data → HOG features → SVM → metrics, plots and report.

The run folder follows the same contract as a network run (see `resnetlab.evaluation.report`),
so `resnetlab report` and the comparison tables take it as they are: config.yaml (the resolved
data config, ``model.name: hog-svm`` and a ``baseline:`` section), history.json (one row: the
SVM is fitted once), metrics.json, final_results.json, data_summary.json, provenance.json,
plots/ and report.md. The SVM is trained on the train split only, like a network, so val and
test mean the same thing in both.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy.special import softmax

from resnetlab.baselines.hog import cached_hog_features, zero_share
from resnetlab.baselines.params import DEFAULT_C, HogParams, SvmParams
from resnetlab.baselines.svm import converged, decision_scores, fit_svm, fitted_settings
from resnetlab.errors import UserError
from resnetlab.extras import require

MODEL_NAME = "hog-svm"
MONITOR = "val/accuracy"

# HOG parameters are in pixels, so resampling changes what a cell sees; the baseline describes
# built-ins at their native size (the published Fashion-MNIST HOG+SVM result is at 28 px).
# digits (8 px) is left out: 8x8 is too small for 4-px cells (2x2 cells, 36 features per grid),
# so it keeps data.image_size's default.
NATIVE_IMAGE_SIZE = {"fashion-mnist": 28, "cifar10": 32, "cifar100": 32}


@dataclass
class BaselineResult:
    run_dir: Path
    val: dict[str, float]
    test: dict[str, float] | None
    seconds: float


def train_hog_svm(
    data: Mapping[str, Any],
    *,
    kernel: str = SvmParams.kernel,
    C: float | None = SvmParams.C,
    orientations: int = HogParams.orientations,
    pixels_per_cell: int = HogParams.pixels_per_cell,
    cells_per_block: int = HogParams.cells_per_block,
    out_dir: str | Path = "runs",
    name: str | None = None,
    smoothing: float = HogParams.smoothing,
    offset_grid: bool = HogParams.offset_grid,
    pca_components: int = SvmParams.pca_components,
    gamma: float | None = SvmParams.gamma,
    workers: int | None = None,
    reuse_folder: bool = False,
    log: Callable[[str], None] = print,
) -> BaselineResult:
    """Fit HOG+SVM on the train split, score val and test, and write a run folder.

    ``data`` is ``load_data``'s keyword arguments (``source``, ``image_size``, ...), saved as the
    run's ``data:`` settings. `kernel` "linear" (LinearSVC) or "rbf" (PCA to `pca_components`, then an
    exact SVC); `C` None takes the kernel's default (`resnetlab.baselines.params.DEFAULT_C`). `smoothing` and
    `offset_grid` are explained in `resnetlab.baselines.hog`. `workers` processes extract the
    features (default: up to 2). `reuse_folder` fits again into an existing run folder `name`
    (a study's retry) instead of refusing it.
    """
    require("skimage.feature", extra="baseline", what="the HOG+SVM baseline")  # before any data is loaded
    from resnetlab.data.sources import load_data
    from resnetlab.training.run_folder import make_run_dir

    hog_params = HogParams(orientations=orientations, pixels_per_cell=pixels_per_cell,
                           cells_per_block=cells_per_block, smoothing=smoothing, offset_grid=offset_grid)
    svm_params = SvmParams(kernel=kernel, C=C, gamma=gamma, pca_components=pca_components)
    hog_params.validate(image_size=data.get("image_size", 32))  # before minutes of data loading
    svm_params.validate()
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise UserError(f"workers={workers!r} must be a whole number >= 1 (feature extraction processes)")
    if kernel == "linear" and (gamma is not None or pca_components != SvmParams.pca_components):
        log("note: gamma and pca_components belong to the rbf kernel; the linear SVM ignores them")
    if data.get("task", "classification") != "classification":
        raise UserError("data.task=regression: the HOG+SVM baseline classifies; use a classification source")

    wall_start, started = time.perf_counter(), time.strftime("%Y-%m-%dT%H:%M:%S")
    bundle = load_data(**data, log=log)
    if len(bundle.class_names) < 2:
        raise UserError(f"data.source={data.get('source')} has {len(bundle.class_names)} class; need at least 2")
    if len(bundle.val) == 0:
        raise UserError("the validation split is empty; raise data.val_ratio or add a val/ folder")
    generated = name is None
    name = name or f"{MODEL_NAME}_{kernel}_C{svm_params.resolved_C:g}_{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir = make_run_dir(out_dir, name, resuming=reuse_folder, generated=generated)

    fitted = _fit_and_score(bundle, data, hog_params, svm_params, workers=workers, log=log)
    fitted.wall_seconds = time.perf_counter() - wall_start
    val, test = _write_run(run_dir, bundle, data, fitted, hog_params, started=started)
    done = f"done: val/accuracy {val['accuracy']:.4f}"
    if test:
        done += f"  test/accuracy {test['accuracy']:.4f}"
    log(f"{done}  ({fitted.wall_seconds:.1f}s)  → {run_dir}")
    return BaselineResult(run_dir=run_dir, val=dict(val), test=dict(test) if test else None,
                          seconds=fitted.wall_seconds)


@dataclass
class _Fitted:
    """HOG features of each split, the SVM's settings, and its reports and scores on val and test."""

    features: dict[str, np.ndarray]
    settings: dict[str, Any]
    reports: dict[str, Any]
    scores: dict[str, np.ndarray]
    feature_seconds: float
    fit_seconds: float
    wall_seconds: float = 0.0


def _fit_and_score(bundle: Any, data: Mapping[str, Any], hog_params: HogParams, svm_params: SvmParams, *,
                   workers: int | None, log: Callable[[str], None]) -> _Fitted:
    """HOG features (one cache entry per split), the SVM fitted once on train, val and test scored."""
    from resnetlab.data.cache import cache_root
    from resnetlab.evaluation.metrics import classification_metrics

    feature_dir = None if data.get("cache") == "memory" else cache_root(data.get("cache_dir")) / "features"
    splits = {"train": bundle.train, "val": bundle.val}
    if bundle.test is not None and len(bundle.test):
        splits["test"] = bundle.test
    start = time.perf_counter()
    features = {split: cached_hog_features(part.images, hog_params, data_hash=bundle.data_hash, split=split,
                                           cache_dir=feature_dir, workers=workers, log=log)
                for split, part in splits.items()}
    feature_seconds = time.perf_counter() - start
    length = features["train"].shape[1]
    log(f"HOG: {length} features per image ({hog_params.orientations} orientations, "
        f"{hog_params.pixels_per_cell}px cells, {hog_params.cells_per_block}x{hog_params.cells_per_block} blocks) "
        f"in {feature_seconds:.1f}s")
    start = time.perf_counter()
    model = fit_svm(features["train"], bundle.train.targets, svm_params)
    fit_seconds = time.perf_counter() - start
    if not converged(model):
        log(f"note: the linear SVM stopped at {svm_params.max_iter} iterations before converging, so it may score "
            f"a little lower; a smaller --C converges sooner (the linear default is {DEFAULT_C['linear']:g})")
    settings = fitted_settings(model, svm_params)
    kept = settings.get("pca_components")
    if kept is not None and kept < svm_params.pca_components:
        log(f"note: PCA keeps {kept} components (no more than the training images or features), "
            f"not {svm_params.pca_components}")
    log(f"SVM ({svm_params.kernel}, C={svm_params.resolved_C:g}) fitted on {len(bundle.train):,} images in "
        f"{fit_seconds:.1f}s")
    reports, scores = {}, {}
    for split in (s for s in splits if s != "train"):
        scores[split] = decision_scores(model, features[split], num_classes=len(bundle.class_names))
        report = classification_metrics(scores[split], splits[split].targets, class_names=bundle.class_names)
        # Raw HOG (before standardization), to compare with ResNet features' zero share.
        report.scalars["feature_zero_share"] = zero_share(features[split])
        reports[split] = report
    return _Fitted(features=features, settings=settings, reports=reports, scores=scores,
                   feature_seconds=feature_seconds, fit_seconds=fit_seconds)


def _write_run(run_dir: Path, bundle: Any, data: Mapping[str, Any], fitted: _Fitted, hog_params: HogParams, *,
               started: str) -> tuple[dict[str, float], dict[str, float] | None]:
    """The run folder's files, as a network run writes them; returns the val and test scalars."""
    from resnetlab.atomic_write import write_json, write_text
    from resnetlab.training.run_folder import peak_rss_mb, write_data_record

    val = fitted.reports["val"].scalars
    length = fitted.features["train"].shape[1]
    # One row: the SVM is fitted once. Training accuracy is left out, since scoring 54,000
    # training images through an RBF SVC costs as much as the fit itself.
    history = [{"epoch": 1, **{f"val/{k}": v for k, v in val.items()}, "seconds": round(fitted.fit_seconds, 3)}]
    baseline = {"method": MODEL_NAME, **asdict(hog_params), **fitted.settings, "feature_length": length}
    config = {"model": {"name": MODEL_NAME}, "data": dict(data), "baseline": baseline}
    write_text(run_dir / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    write_json(run_dir / "history.json", history)
    write_data_record(run_dir, bundle)
    write_json(run_dir / "provenance.json", _provenance(bundle.data_hash, started=started))
    # wall_seconds: data loading to scores (plots and report excluded), like a network's train time.
    resources = {"wall_seconds": round(fitted.wall_seconds, 2), "seconds_per_epoch": None,
                 "feature_seconds": round(fitted.feature_seconds, 2), "fit_seconds": round(fitted.fit_seconds, 2),
                 "peak_rss_mb": round(peak_rss_mb(), 1), "device": "cpu"}
    # No epoch is selected (the SVM is fitted once), so best_epoch stays empty in every file.
    metrics: dict[str, Any] = {"best_epoch": None, "monitor": MONITOR, "resources": resources,
                               "features": {"length": length, "zero_share": {s: zero_share(f) for s, f
                                                                             in fitted.features.items()}}}
    metrics.update({split: report.to_dict() for split, report in fitted.reports.items()})
    write_json(run_dir / "metrics.json", metrics)
    test = fitted.reports["test"].scalars if "test" in fitted.reports else None
    write_json(run_dir / "final_results.json", {
        "test_accuracy": test.get("accuracy") if test else None,
        "test_mpca": test.get("mpca") if test else None,
        "best_val_accuracy": val["accuracy"], "best_val_mpca": val["mpca"],
        "best_epoch": None, "monitor": MONITOR, "monitor_best": val["accuracy"], "config": config})
    _write_plots_and_report(run_dir, fitted.reports["val"], images=bundle.val.images, scores=fitted.scores["val"],
                            targets=bundle.val.targets)
    return val, test


def _write_plots_and_report(run_dir: Path, report: Any, *, images: np.ndarray, scores: np.ndarray,
                            targets: np.ndarray) -> None:
    from resnetlab.evaluation.plots import write_classification_plots
    from resnetlab.evaluation.report import write_report

    # No history, so no curves.png: an SVM fitted once has no curve to draw.
    write_classification_plots(report, [], monitor=MONITOR, plots_dir=run_dir / "plots",
                               images=np.asarray(images), probs=softmax(scores, axis=1), targets=targets)
    write_report(run_dir)


def _provenance(data_hash: str, *, started: str) -> dict[str, Any]:
    """A network run's provenance, on the CPU, with the libraries that did the work here."""
    import skimage
    import sklearn
    import torch

    from resnetlab.training.run_folder import provenance

    return provenance(device=torch.device("cpu"), data_hash=data_hash,
                      extra={"sklearn_version": sklearn.__version__, "skimage_version": skimage.__version__,
                             "started": started})
