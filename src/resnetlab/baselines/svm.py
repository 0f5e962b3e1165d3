"""The SVM on HOG features: standardize, then a linear SVM or an approximate RBF SVM.

"rbf" maps the standardized features through a Nystroem approximation of the RBF kernel
(`n_components` landmark images) and trains a linear SVM there. An exact `SVC` scales with
the square of the training set (tens of minutes on Fashion-MNIST's 54,000 images on two
cores, and slow to predict); the approximation keeps training and prediction linear in N.
See the README's HOG+SVM section for the measured accuracy cost against an exact SVC.

Scores are the one-vs-rest decision values, shape (N, K): their argmax is the prediction and
their order ranks classes for top-5. A softmax of them is used where probabilities are
wanted (plots); it is a monotone squashing for display, not a calibrated probability.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from sklearn.kernel_approximation import Nystroem
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from resnetlab.errors import UserError

KERNELS = ("linear", "rbf")


@dataclass(frozen=True)
class SvmParams:
    """`gamma` None means 1 / D, which on standardized features is sklearn's gamma="scale"."""

    kernel: str = "rbf"
    C: float = 10.0
    gamma: float | None = None
    n_components: int = 4000
    max_iter: int = 2000
    seed: int = 0

    def validate(self) -> None:
        if self.kernel not in KERNELS:
            raise UserError(f"SVM kernel={self.kernel!r} is not known; use one of {', '.join(KERNELS)}")
        if not _positive(self.C):
            raise UserError(f"SVM C={self.C!r} must be a number > 0 (larger C fits the training data harder)")
        if self.gamma is not None and not _positive(self.gamma):
            raise UserError(f"SVM gamma={self.gamma!r} must be a number > 0, or unset for 1/features")
        if isinstance(self.n_components, bool) or not isinstance(self.n_components, int) or self.n_components < 1:
            raise UserError(f"SVM n_components={self.n_components!r} must be a whole number >= 1")


def _positive(value: object) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and value > 0)


def build_svm(params: SvmParams, *, num_features: int, num_samples: int) -> Pipeline:
    """The unfitted pipeline for `num_samples` training vectors of `num_features` each."""
    params.validate()
    steps: list = [StandardScaler()]
    if params.kernel == "rbf":
        gamma = params.gamma if params.gamma is not None else 1.0 / num_features
        # More landmarks than samples adds nothing: the kernel matrix has rank <= N.
        steps.append(Nystroem(kernel="rbf", gamma=gamma, n_components=min(params.n_components, num_samples),
                              random_state=params.seed))
    # The primal solver suits N > D; the dual one is faster when there are fewer samples than dimensions.
    dimensions = num_features if params.kernel == "linear" else min(params.n_components, num_samples)
    steps.append(LinearSVC(C=params.C, dual=num_samples <= dimensions, max_iter=params.max_iter,
                           random_state=params.seed))
    return make_pipeline(*steps)


def fit_svm(features: np.ndarray, targets: np.ndarray, params: SvmParams) -> tuple[Pipeline, np.ndarray]:
    """Fit on (N, D) features and (N,) class ids; returns the pipeline and the training scores.

    The steps are fitted one by one so the transformed training matrix, already computed,
    gives the training scores for free (a second Nystroem pass over N images is not).
    """
    classes = np.unique(targets)
    if len(classes) < 2:
        raise UserError(f"the training split holds {len(classes)} class; an SVM needs at least 2")
    model = build_svm(params, num_features=features.shape[1], num_samples=len(features))
    transformed = features
    for _, step in model.steps[:-1]:
        transformed = step.fit_transform(transformed, targets)
    svm = model.steps[-1][1].fit(transformed, targets)
    return model, _scatter(svm.decision_function(transformed), svm.classes_, int(classes.max()) + 1)


def decision_scores(model: Pipeline, features: np.ndarray, *, num_classes: int) -> np.ndarray:
    """(N, num_classes) decision values; classes missing from training get the lowest score."""
    return _scatter(model.decision_function(features), model.classes_, num_classes)


def _scatter(raw: np.ndarray, classes: np.ndarray, num_classes: int) -> np.ndarray:
    if raw.ndim == 1:  # a two-class SVM returns one signed margin, positive for classes_[1]
        raw = np.stack([-raw, raw], axis=1)
    if len(classes) == num_classes:
        return raw.astype(np.float64)
    # Below every real score (and finite, which the metrics require), so never predicted.
    scores = np.full((len(raw), num_classes), raw.min() - 1.0, dtype=np.float64)
    scores[:, classes] = raw
    return scores
