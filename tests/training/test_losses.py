"""Losses: the soft accuracy and MPCA terms, class weights, the regression losses."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from resnetlab.evaluation.metrics import classification_metrics
from resnetlab.training.losses import classification_loss, regression_loss, soft_accuracy_terms


def test_soft_terms_equal_accuracy_and_mpca_for_confident_predictions():
    targets = torch.tensor([0, 0, 0, 0, 1, 2, 2])
    predicted = torch.tensor([0, 0, 0, 1, 1, 0, 2])
    logits = F.one_hot(predicted, 3).float() * 50  # softmax is one-hot to float precision
    accuracy, mpca = soft_accuracy_terms(logits, targets, 3)
    report = classification_metrics(logits.numpy(), targets.numpy(), class_names=["a", "b", "c"])
    assert float(accuracy) == pytest.approx(report.scalars["accuracy"], abs=1e-6)
    assert float(mpca) == pytest.approx(report.scalars["mpca"], abs=1e-6)


def test_the_mpca_term_pulls_a_rare_sample_harder_than_cross_entropy_does():
    targets = torch.tensor([0] * 9 + [1])
    logits = torch.zeros(10, 2, requires_grad=True)  # every sample at p = 0.5

    def per_sample_pull(loss_fn):
        logits.grad = None
        loss_fn(logits, targets).backward()
        return logits.grad.abs().sum(dim=1)

    ce = per_sample_pull(classification_loss(num_classes=2))
    mpca = per_sample_pull(lambda x, y: 1 - soft_accuracy_terms(x, y, 2)[1])
    assert ce[9] == pytest.approx(float(ce[0]))  # cross-entropy: every sample alike
    assert mpca[9] == pytest.approx(9 * float(mpca[0]))  # MPCA: one rare sample weighs like nine frequent ones


def test_extra_terms_are_added_to_cross_entropy_only_when_weighted():
    torch.manual_seed(0)
    logits, targets = torch.randn(8, 4), torch.randint(0, 4, (8,))
    plain = classification_loss(num_classes=4)(logits, targets)
    assert plain == pytest.approx(float(F.cross_entropy(logits, targets)))
    accuracy, mpca = soft_accuracy_terms(logits, targets, 4)
    both = classification_loss(num_classes=4, mpca_weight=2.0, accuracy_weight=0.5)(logits, targets)
    assert both == pytest.approx(float(plain + 2.0 * (1 - mpca) + 0.5 * (1 - accuracy)))


def test_balanced_class_weights_make_every_class_weigh_the_same():
    from resnetlab.api.assemble import balanced_class_weights as _class_weights
    from resnetlab.data.bundle import Split

    targets = np.array([0] * 90 + [1] * 10)
    split = Split(images=np.zeros((100, 1, 2, 2), np.uint8), targets=targets, ids=[str(i) for i in range(100)])
    weights = _class_weights(split, 2, torch.device("cpu"))
    assert weights.tolist() == pytest.approx([100 / (2 * 90), 100 / (2 * 10)])
    assert float((weights[torch.from_numpy(targets)]).sum()) == pytest.approx(100.0)  # total weight unchanged
    per_class = [float(weights[c] * (targets == c).sum()) for c in (0, 1)]
    assert per_class[0] == pytest.approx(per_class[1])


@pytest.mark.parametrize("name, expected", [("mse", 2.5), ("l1", 1.5), ("smooth_l1", 1.0)])
def test_regression_losses(name, expected):
    outputs, targets = torch.tensor([[1.0], [0.0]]), torch.tensor([0.0, 2.0])
    assert float(regression_loss(name)(outputs, targets)) == pytest.approx(expected)
