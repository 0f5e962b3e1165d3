import json

import numpy as np
import pytest
from sklearn.metrics import (
    balanced_accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
)

from resnetlab.errors import UserError
from resnetlab.evaluation.metrics import (
    TOP5_NOT_APPLICABLE,
    ClassificationReport,
    classification_metrics,
    confused_pairs,
)

NAMES = ["cat", "dog", "bird", "fish"]
# bird (2) is in the targets but never predicted; fish (3) is predicted but never a target.
TARGETS = np.array([0, 0, 0, 1, 1, 2, 2, 2])
PREDS = np.array([0, 0, 1, 1, 3, 0, 1, 3])


def logits_for(preds: np.ndarray, num_classes: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=0.1, size=(preds.size, num_classes))
    logits[np.arange(preds.size), preds] += 5.0
    return logits


@pytest.fixture
def report() -> ClassificationReport:
    return classification_metrics(logits_for(PREDS, 4), TARGETS, class_names=NAMES, loss=0.75)


def test_scalar_keys_for_few_classes(report):
    assert set(report.scalars) == {
        "loss", "accuracy", "precision_macro", "recall_macro", "f1_macro",
        "precision_weighted", "recall_weighted", "f1_weighted", "mpca",
    }
    assert report.top5_note == TOP5_NOT_APPLICABLE == "n/a (5 classes or fewer)"
    assert report.scalars["loss"] == 0.75


def test_loss_is_absent_when_not_given():
    result = classification_metrics(logits_for(PREDS, 4), TARGETS, class_names=NAMES)
    assert "loss" not in result.scalars


def test_hand_computed_values(report):
    assert report.scalars["accuracy"] == pytest.approx(3 / 8)
    # recall over present classes: cat 2/3, dog 1/2, bird 0; fish has no samples
    assert report.scalars["mpca"] == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)
    # sklearn's macro recall with labels=range(4) counts the absent class as 0
    assert report.scalars["recall_macro"] == pytest.approx((2 / 3 + 1 / 2 + 0 + 0) / 4)
    assert report.scalars["precision_macro"] == pytest.approx((2 / 3 + 1 / 3 + 0 + 0) / 4)


def test_mpca_matches_balanced_accuracy(report):
    # balanced accuracy also averages recall over the classes present in y_true only
    with pytest.warns(UserWarning, match="y_pred contains classes not in y_true"):
        expected = balanced_accuracy_score(TARGETS, PREDS)
    assert report.scalars["mpca"] == pytest.approx(expected)


def test_averages_match_sklearn(report):
    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(
            TARGETS, PREDS, labels=range(4), average=average, zero_division=0
        )
        assert report.scalars[f"precision_{average}"] == pytest.approx(p)
        assert report.scalars[f"recall_{average}"] == pytest.approx(r)
        assert report.scalars[f"f1_{average}"] == pytest.approx(f)


def test_confusion_matrix_keeps_absent_classes(report):
    expected = np.array([[2, 1, 0, 0], [0, 1, 0, 1], [1, 1, 0, 1], [0, 0, 0, 0]])
    np.testing.assert_array_equal(report.confusion, expected)
    np.testing.assert_array_equal(
        report.confusion, confusion_matrix(TARGETS, PREDS, labels=range(4))
    )
    assert report.confusion.sum() == TARGETS.size
    assert report.confusion.shape == (4, 4)


def test_per_class_rows(report):
    rows = {row["name"]: row for row in report.per_class}
    assert [row["name"] for row in report.per_class] == NAMES
    assert rows["cat"] == {
        "name": "cat", "support": 3, "accuracy": pytest.approx(2 / 3),
        "precision": pytest.approx(2 / 3), "f1": pytest.approx(2 / 3), "predicted": 3,
    }
    assert rows["bird"]["accuracy"] == 0.0 and rows["bird"]["predicted"] == 0
    assert rows["bird"]["precision"] == 0.0  # never predicted: zero_division=0
    assert rows["fish"]["support"] == 0 and rows["fish"]["accuracy"] is None
    assert rows["fish"]["predicted"] == 2


def test_to_dict_is_json_and_round_trips(report):
    data = json.loads(json.dumps(report.to_dict()))
    assert data["class_names"] == NAMES
    assert data["confusion_matrix"][2] == [1, 1, 0, 1]
    assert data["top5_note"] == TOP5_NOT_APPLICABLE
    assert data["per_class"][3]["accuracy"] is None
    again = ClassificationReport.from_dict(data)
    np.testing.assert_array_equal(again.confusion, report.confusion)
    assert again.scalars == pytest.approx(report.scalars)


def test_top5_hand_computed_for_seven_classes():
    names = [f"c{i}" for i in range(7)]
    # each row's scores rank the classes 0 (best) .. 6 (worst) in the listed order
    orders = [[3, 0, 1, 2, 4, 5, 6],   # target 3 ranked 1st -> hit
              [0, 1, 2, 3, 6, 5, 4],   # target 6 ranked 5th -> hit
              [0, 1, 2, 3, 4, 5, 6],   # target 5 ranked 6th -> miss
              [6, 5, 4, 3, 2, 1, 0]]   # target 0 ranked 7th -> miss
    targets = np.array([3, 6, 5, 0])
    scores = np.zeros((4, 7))
    for row, order in enumerate(orders):
        scores[row, order] = np.arange(7, 0, -1)
    result = classification_metrics(scores, targets, class_names=names)
    assert result.top5_note is None
    assert result.scalars["top5"] == pytest.approx(0.5)
    assert result.scalars["accuracy"] == pytest.approx(0.25)


def test_probabilities_and_logits_agree():
    logits = logits_for(PREDS, 4, seed=3)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    a = classification_metrics(logits, TARGETS, class_names=NAMES)
    b = classification_metrics(probs, TARGETS, class_names=NAMES)
    assert a.scalars == pytest.approx(b.scalars)


def test_wrong_class_count_is_a_user_error():
    with pytest.raises(UserError, match="4 classes but the data has 3 class names"):
        classification_metrics(logits_for(PREDS, 4), TARGETS, class_names=NAMES[:3])


def test_target_out_of_range_is_a_user_error():
    with pytest.raises(UserError, match="target label 7 is outside 0..3"):
        classification_metrics(logits_for(PREDS, 4), np.array([0, 0, 0, 1, 1, 2, 2, 7]),
                               class_names=NAMES)


def test_nan_logits_are_rejected():
    logits = logits_for(PREDS, 4)
    logits[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        classification_metrics(logits, TARGETS, class_names=NAMES)


def test_confused_pairs_largest_off_diagonal_first():
    confusion = np.array([[5, 3, 0], [1, 4, 7], [0, 2, 9]])
    assert confused_pairs(confusion, ["a", "b", "c"], k=10) == [
        ("b", "c", 7), ("a", "b", 3), ("c", "b", 2), ("b", "a", 1),
    ]
    assert confused_pairs(confusion, ["a", "b", "c"], k=2) == [("b", "c", 7), ("a", "b", 3)]
    assert confused_pairs(np.diag([3, 4]), ["a", "b"]) == []
