"""The SVM on HOG features: accuracy on digits, score shapes, parameter errors."""

import numpy as np
import pytest
from sklearn.datasets import load_digits

from resnetlab.baselines.hog import hog_features
from resnetlab.baselines.params import HogParams, SvmParams
from resnetlab.baselines.svm import build_svm, converged, decision_scores, fit_svm, fitted_settings
from resnetlab.errors import UserError


@pytest.fixture(scope="module")
def digit_features() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """HOG of sklearn's 8x8 digits at 2-px cells, split 1200 train / rest test."""
    digits = load_digits()
    images = np.round(digits.images / 16.0 * 255).astype(np.uint8)[:, None]
    features = hog_features(images, HogParams(pixels_per_cell=2, smoothing=0.0), workers=1)
    return features[:1200], digits.target[:1200], features[1200:], digits.target[1200:]


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
def test_both_kernels_classify_digits_far_above_chance(digit_features, kernel):
    train_x, train_y, test_x, test_y = digit_features
    model = fit_svm(train_x, train_y, SvmParams(kernel=kernel))
    scores = decision_scores(model, test_x, num_classes=10)
    assert scores.shape == (len(test_x), 10)
    np.testing.assert_array_equal(scores.argmax(axis=1), model.predict(test_x))
    assert np.mean(scores.argmax(axis=1) == test_y) > 0.9  # chance: 0.1


def test_rbf_reduces_with_pca_and_linear_does_not(digit_features):
    train_x = digit_features[0]
    rbf = build_svm(SvmParams(kernel="rbf", pca_components=30), num_features=train_x.shape[1], num_samples=1200)
    assert [name for name, _ in rbf.steps] == ["standardscaler", "pca", "svc"]
    assert rbf.named_steps["pca"].n_components == 30
    linear = build_svm(SvmParams(kernel="linear"), num_features=train_x.shape[1], num_samples=1200)
    assert [name for name, _ in linear.steps] == ["standardscaler", "linearsvc"]
    # more components than samples is capped instead of failing inside sklearn
    small = build_svm(SvmParams(pca_components=500), num_features=144, num_samples=50)
    assert small.named_steps["pca"].n_components == 50


def test_a_class_missing_from_training_is_never_predicted(digit_features):
    train_x, train_y, test_x, _ = digit_features
    keep = train_y != 3
    model = fit_svm(train_x[keep], train_y[keep], SvmParams(kernel="linear"))
    scores = decision_scores(model, test_x, num_classes=10)
    assert scores.shape == (len(test_x), 10) and np.isfinite(scores).all()
    assert not (scores.argmax(axis=1) == 3).any()


def test_two_classes_give_two_columns(digit_features):
    train_x, train_y, test_x, _ = digit_features
    pick = np.isin(train_y, [0, 1])
    model = fit_svm(train_x[pick], train_y[pick], SvmParams(kernel="rbf"))
    scores = decision_scores(model, test_x, num_classes=2)
    assert scores.shape == (len(test_x), 2)
    np.testing.assert_array_equal(scores.argmax(axis=1), model.predict(test_x))


def test_one_class_is_a_user_error(digit_features):
    train_x, train_y = digit_features[0], digit_features[1]
    with pytest.raises(UserError, match="needs at least 2"):
        fit_svm(train_x[train_y == 4], train_y[train_y == 4], SvmParams())


@pytest.mark.parametrize("params, words", [
    (SvmParams(C=0.0), "C=0.0 must be a number > 0"),
    (SvmParams(C=-1.0), "C=-1.0 must be a number > 0"),
    (SvmParams(C=float("nan")), "C=nan must be a number > 0"),
    (SvmParams(kernel="poly"), "kernel='poly' is not known"),
    (SvmParams(gamma=0.0), "gamma=0.0 must be a number > 0"),
    (SvmParams(pca_components=0), "pca_components=0"),
])
def test_bad_svm_parameters_are_one_line_user_errors(params, words):
    with pytest.raises(UserError) as info:
        params.validate()
    assert words in str(info.value) and "\n" not in str(info.value)


def test_fitted_settings_are_what_the_pipeline_used(digit_features):
    train_x, train_y = digit_features[0][:60], digit_features[1][:60]
    params = SvmParams(kernel="rbf", pca_components=500)
    settings = fitted_settings(fit_svm(train_x, train_y, params), params)
    assert settings["pca_components"] == 60 and settings["C"] == 10.0  # capped by the 60 images; kernel default
    assert settings["gamma"] > 0  # "scale" resolved to the number the SVC used
    linear = SvmParams(kernel="linear", gamma=0.1, pca_components=50)
    assert set(fitted_settings(fit_svm(train_x, train_y, linear), linear)) == {"kernel", "C", "max_iter", "seed"}


def test_a_linear_svm_stopped_early_is_reported_not_warned(digit_features, recwarn):
    train_x, train_y = digit_features[0][:300], digit_features[1][:300]
    stopped = fit_svm(train_x, train_y, SvmParams(kernel="linear", C=100.0, max_iter=2))
    assert not converged(stopped) and not [w for w in recwarn if "converge" in str(w.message).lower()]
    assert converged(fit_svm(train_x, train_y, SvmParams(kernel="linear")))
    assert converged(fit_svm(train_x, train_y, SvmParams(kernel="rbf")))
