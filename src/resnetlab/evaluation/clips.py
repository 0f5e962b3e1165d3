"""Clip-level metrics for frame manifests: one decision per clip from all of its frames.

A clip's class probabilities (or score) are the mean over its frames; its label is the most
frequent frame label (frames of a clip normally share one) and its target the mean frame
target. The scalars are named ``clip_*`` so they sit beside the frame-level ones in
metrics.json, the report and the history (``train.monitor=val/clip_accuracy``).
"""

from __future__ import annotations

import numpy as np

from resnetlab.evaluation.regression_metrics import regression_metrics


def _per_clip_mean(values: np.ndarray, clip: np.ndarray, count: int) -> np.ndarray:
    sums = np.zeros((count, *values.shape[1:]), dtype=np.float64)
    np.add.at(sums, clip, values)
    return sums / np.bincount(clip, minlength=count).reshape(-1, *[1] * (values.ndim - 1))


def clip_classification_metrics(logits: np.ndarray, targets: np.ndarray, groups: np.ndarray) -> dict[str, float]:
    """clip_accuracy and clip_mpca from frame logits (N, K), frame labels (N,) and clip ids (N,)."""
    _, clip = np.unique(np.asarray(groups), return_inverse=True)
    count, classes = int(clip.max()) + 1, logits.shape[1]
    shifted = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    predicted = _per_clip_mean(probs, clip, count).argmax(axis=1)
    votes = np.zeros((count, classes), dtype=np.int64)
    np.add.at(votes, (clip, np.asarray(targets, dtype=np.int64)), 1)
    label = votes.argmax(axis=1)
    correct = predicted == label
    present = np.unique(label)
    mpca = float(np.mean([correct[label == c].mean() for c in present]))
    return {"clip_accuracy": float(correct.mean()), "clip_mpca": mpca}


def clip_regression_metrics(scores: np.ndarray, targets: np.ndarray, groups: np.ndarray) -> dict[str, float]:
    """clip_srcc, clip_plcc and clip_rmse of per-clip mean scores; empty with fewer than 2 clips."""
    _, clip = np.unique(np.asarray(groups), return_inverse=True)
    count = int(clip.max()) + 1
    if count < 2:
        return {}
    pred = _per_clip_mean(np.asarray(scores, dtype=np.float64).reshape(-1), clip, count)
    truth = _per_clip_mean(np.asarray(targets, dtype=np.float64).reshape(-1), clip, count)
    scalars = regression_metrics(pred, truth)
    return {f"clip_{k}": scalars[k] for k in ("srcc", "plcc", "rmse")}
