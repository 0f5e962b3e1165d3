"""Classification metrics for one split, computed by scikit-learn from model outputs.

`classification_metrics` turns logits (or probabilities: the ranking is the same) and
integer targets into a `ClassificationReport`: flat named scalars the trainer can log
without knowing what they are, a per-class table and a K x K confusion matrix.

Every sklearn call passes `labels=range(K)`, so a class missing from a split still
has its row, column and per-class entry instead of silently shifting the indices.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
    top_k_accuracy_score,
)

from resnetlab.errors import UserError

TOP5_NOT_APPLICABLE = "n/a (5 classes or fewer)"


@dataclass
class ClassificationReport:
    """Metrics of one split.

    `scalars` holds "loss" (when given), "accuracy", "top5" (only when K > 5; otherwise
    `top5_note` says why it is missing), the macro and weighted precision/recall/F1,
    and "mpca". `per_class[i]` describes class i; `confusion[i, j]` counts samples of
    true class i predicted as j.
    """

    scalars: dict[str, float]
    per_class: list[dict[str, Any]]
    confusion: np.ndarray
    class_names: list[str]
    top5_note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain lists, ints and floats only, so `json.dump` takes it as it is."""
        out: dict[str, Any] = {
            "class_names": list(self.class_names),
            "scalars": {k: float(v) for k, v in self.scalars.items()},
            "per_class": [dict(row) for row in self.per_class],
            "confusion_matrix": self.confusion.astype(int).tolist(),
        }
        if self.top5_note is not None:
            out["top5_note"] = self.top5_note
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClassificationReport:
        """Inverse of `to_dict`, for rebuilding plots from a saved metrics.json."""
        return cls(
            scalars={k: float(v) for k, v in data["scalars"].items()},
            per_class=[dict(row) for row in data["per_class"]],
            confusion=np.asarray(data["confusion_matrix"], dtype=np.int64),
            class_names=list(data["class_names"]),
            top5_note=data.get("top5_note"),
        )


def classification_metrics(
    logits_or_probs: np.ndarray,
    targets: np.ndarray,
    *,
    class_names: list[str],
    loss: float | None = None,
) -> ClassificationReport:
    """Score (N, K) logits or probabilities against (N,) integer targets in [0, K).

    Macro averages run over all K classes (`labels=range(K)`, `zero_division=0`), so a
    class absent from `targets` contributes 0 recall to `recall_macro`.

    "mpca" (mean per-class accuracy) instead averages recall over the classes *present*
    in `targets`: an absent class has no samples, so its recall is undefined, and
    counting it as 0 would score the split's composition rather than the model. With
    every class present, mpca equals `recall_macro` (and sklearn's balanced accuracy).
    """
    scores = np.asarray(logits_or_probs)
    y_true = np.asarray(targets)
    _check_inputs(scores, y_true, class_names)
    num_classes = scores.shape[1]

    labels = list(range(num_classes))
    y_pred = scores.argmax(axis=1)

    scalars: dict[str, float] = {}
    if loss is not None:
        scalars["loss"] = float(loss)
    scalars["accuracy"] = float(accuracy_score(y_true, y_pred))
    top5_note: str | None = None
    if num_classes > 5:
        scalars["top5"] = float(top_k_accuracy_score(y_true, scores, k=5, labels=labels))
    else:
        top5_note = TOP5_NOT_APPLICABLE

    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average=average, zero_division=0
        )
        scalars[f"precision_{average}"] = float(p)
        scalars[f"recall_{average}"] = float(r)
        scalars[f"f1_{average}"] = float(f)

    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average=None, zero_division=0
    )
    present = support > 0
    scalars["mpca"] = float(recall[present].mean())

    confusion = confusion_matrix(y_true, y_pred, labels=labels).astype(np.int64)
    predicted = confusion.sum(axis=0)
    per_class = [
        {
            "name": class_names[i],
            "support": int(support[i]),
            "accuracy": float(recall[i]) if support[i] > 0 else None,
            "precision": float(precision[i]),
            "f1": float(f1[i]),
            "predicted": int(predicted[i]),
        }
        for i in range(num_classes)
    ]
    return ClassificationReport(
        scalars=scalars,
        per_class=per_class,
        confusion=confusion,
        class_names=list(class_names),
        top5_note=top5_note,
    )



def _check_inputs(scores: np.ndarray, y_true: np.ndarray, class_names: list[str]) -> None:
    """(N, K) finite scores, (N,) integer targets in [0, K), K class names."""
    if scores.ndim != 2:
        raise ValueError(f"logits_or_probs must be (N, K), got shape {scores.shape}")
    if y_true.shape != (scores.shape[0],):
        raise ValueError(
            f"targets must be (N,) = ({scores.shape[0]},), got shape {y_true.shape}"
        )
    if scores.shape[0] == 0:
        raise ValueError("cannot compute metrics on an empty split (N = 0)")
    num_classes = scores.shape[1]
    if len(class_names) != num_classes:
        raise UserError(
            f"the model outputs {num_classes} classes but the data has "
            f"{len(class_names)} class names; use a checkpoint trained on these classes"
        )
    if not np.issubdtype(y_true.dtype, np.integer):
        raise ValueError(f"targets must be integer class indices, got dtype {y_true.dtype}")
    outside = y_true[(y_true < 0) | (y_true >= num_classes)]
    if outside.size:
        raise UserError(
            f"target label {int(outside[0])} is outside 0..{num_classes - 1}; "
            "check the dataset labels against class_names"
        )
    if not np.isfinite(scores).all():
        # argmax would silently pick the first NaN; the caller should see the divergence.
        raise ValueError("logits_or_probs contain NaN or inf (did training diverge?)")


def confused_pairs(
    confusion: np.ndarray, class_names: list[str], *, k: int = 10
) -> list[tuple[str, str, int]]:
    """The k largest off-diagonal cells as (true name, predicted name, count).

    Zero cells are left out; ties keep row-major order so the list is stable.
    """
    matrix = np.asarray(confusion)
    off_diagonal = matrix.copy()
    np.fill_diagonal(off_diagonal, 0)
    flat = off_diagonal.ravel()
    # A stable sort on the negated counts keeps row-major order among ties.
    order = np.argsort(-flat, kind="stable")
    pairs: list[tuple[str, str, int]] = []
    for index in order[:k]:
        count = int(flat[index])
        if count == 0:
            break
        true_idx, pred_idx = divmod(int(index), matrix.shape[1])
        pairs.append((class_names[true_idx], class_names[pred_idx], count))
    return pairs
