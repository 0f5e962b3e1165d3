"""Loss functions: cross-entropy (hard or mixed targets) with soft accuracy and MPCA terms,
and the regression losses."""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor

LossFn = Callable[[Tensor, Tensor], Tensor]


def soft_accuracy_terms(logits: Tensor, targets: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
    """Differentiable accuracy and mean per-class accuracy.

    The probability given to the true class stands in for "correct"; averaging it per class
    and then over the classes present in the batch is a soft MPCA, which pulls
    the rare classes up where plain cross-entropy lets the frequent ones dominate.
    """
    probs = logits.float().softmax(dim=1)
    soft = targets if targets.ndim == 2 else F.one_hot(targets, num_classes).float()
    correct = (probs * soft).sum(dim=1)
    per_class_mass = soft.sum(dim=0)
    per_class = (soft * correct[:, None]).sum(dim=0) / per_class_mass.clamp_min(1e-8)
    present = per_class_mass > 0
    return correct.mean(), per_class[present].mean()


def classification_loss(*, num_classes: int, label_smoothing: float = 0.0, class_weights: Tensor | None = None,
                        mpca_weight: float = 0.0, accuracy_weight: float = 0.0) -> LossFn:
    def loss(logits: Tensor, targets: Tensor) -> Tensor:
        # cross_entropy takes class indices or (mixup/cutmix) class probabilities alike.
        value = F.cross_entropy(logits.float(), targets, weight=class_weights, label_smoothing=label_smoothing)
        if mpca_weight or accuracy_weight:
            accuracy, mpca = soft_accuracy_terms(logits, targets, num_classes)
            value = value + mpca_weight * (1 - mpca) + accuracy_weight * (1 - accuracy)
        return value

    return loss


def regression_loss(name: str) -> LossFn:
    fn = {"mse": F.mse_loss, "l1": F.l1_loss, "smooth_l1": F.smooth_l1_loss}[name]

    def loss(outputs: Tensor, targets: Tensor) -> Tensor:
        return fn(outputs.float().reshape(-1), targets.float().reshape(-1))

    return loss
