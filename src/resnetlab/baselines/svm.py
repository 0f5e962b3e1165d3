"""The SVM on HOG features: standardize, then a linear SVM, or PCA and an exact RBF SVM.

"rbf" projects the standardized features on their first `pca_components` principal axes and
fits an exact RBF `SVC` there. An SVC's cost grows with the square of the training set and
linearly with the feature length, and PCA cuts the latter 30-40x. Measured on Fashion-MNIST
(full test set): with 20,000 training images and 3060 HOG features, fit + predict took 18 s
instead of 13 min for an SVC on all features, at 0.9095 instead of 0.9044 accuracy; with all
54,000 and plain 1296-feature HOG, about 1.5 min instead of 18 min, at 0.9085 instead of
0.9103. So the accuracy cost is within ±0.5 points either way. 60/100/150 components scored
0.9140/0.9183/0.9192 on the validation split; 100 is the default.

"linear" is `LinearSVC` on the standardized features (no PCA: a linear model gains nothing
from fewer dimensions but speed).

Scores are decision values, shape (N, K): SVC's one-vs-rest shape (votes plus a bounded
confidence), LinearSVC's margins. Their argmax is the prediction and their order ranks the
classes for top-5; a softmax of them is drawn where plots want probabilities. That softmax is
a monotone squashing for display, not a calibrated probability.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np

from resnetlab.baselines.params import SvmParams
from resnetlab.errors import UserError

if TYPE_CHECKING:  # scikit-learn loads on first use, so building the command line stays fast
    from sklearn.pipeline import Pipeline

# BLAS threads while fitting and scoring. libsvm and liblinear are single-threaded anyway; on a
# busy shared machine two OpenBLAS threads made PCA of a 1200 x 1200 matrix 60x slower (10 s vs
# 0.17 s) by spinning against each other, while one thread costs little on an idle one.
BLAS_THREADS = 1

def build_svm(params: SvmParams, *, num_features: int, num_samples: int) -> Pipeline:
    """The unfitted pipeline for `num_samples` training vectors of `num_features` each."""
    from sklearn.decomposition import PCA
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC, LinearSVC

    params.validate()
    if params.kernel == "linear":
        # On 54,000 x 3060 Fashion-MNIST HOG at C=0.001, liblinear's dual solver took 260 s and
        # the primal one 637 s, to the same accuracy.
        return make_pipeline(StandardScaler(), LinearSVC(C=params.resolved_C, dual=True,
                                                         max_iter=params.max_iter, random_state=params.seed))
    # PCA cannot keep more components than samples or features.
    components = min(params.pca_components, num_features, num_samples)
    return make_pipeline(StandardScaler(), PCA(n_components=components, random_state=params.seed),
                         SVC(kernel="rbf", C=params.resolved_C, gamma=params.gamma or "scale",
                             cache_size=1000, max_iter=-1, random_state=params.seed))


def fit_svm(features: np.ndarray, targets: np.ndarray, params: SvmParams) -> Pipeline:
    """Fit on (N, D) features and (N,) integer class ids; needs at least two classes."""
    classes = np.unique(targets)
    if len(classes) < 2:
        raise UserError(f"the training split holds {len(classes)} class; an SVM needs at least 2")
    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    model = build_svm(params, num_features=features.shape[1], num_samples=len(features))
    with threadpool_limits(limits=BLAS_THREADS), warnings.catch_warnings():
        # Not converging is reported once, in words, by the caller (see `converged`).
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(features, targets)


def converged(model: Pipeline) -> bool:
    """False when the linear SVM stopped at max_iter (the exact RBF SVC always runs to the end)."""
    svm = model.steps[-1][1]
    return not (hasattr(svm, "max_iter") and svm.max_iter > 0 and int(np.max(svm.n_iter_)) >= svm.max_iter)


def fitted_settings(model: Pipeline, params: SvmParams) -> dict[str, object]:
    """The settings the fitted pipeline really used: C resolved, gamma as a number, the PCA size
    it could keep; settings the kernel ignores are left out."""
    settings: dict[str, object] = {"kernel": params.kernel, "C": params.resolved_C}
    if params.kernel == "linear":
        return {**settings, "max_iter": params.max_iter, "seed": params.seed}
    svc = model.steps[-1][1]
    return {**settings, "gamma": float(svc._gamma), "pca_components": int(model.steps[-2][1].n_components_),
            "seed": params.seed}


def decision_scores(model: Pipeline, features: np.ndarray, *, num_classes: int) -> np.ndarray:
    """(N, num_classes) decision values; classes missing from training get the lowest score."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=BLAS_THREADS):
        raw = model.decision_function(features)
    classes = model.classes_
    if raw.ndim == 1:  # a two-class SVM returns one signed margin, positive for classes_[1]
        raw = np.stack([-raw, raw], axis=1)
    if len(classes) == num_classes:
        return raw.astype(np.float64)
    # Below every real score (and finite, which the metrics require), so never predicted.
    scores = np.full((len(raw), num_classes), raw.min() - 1.0, dtype=np.float64)
    scores[:, classes] = raw
    return scores
