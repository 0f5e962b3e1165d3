"""Which way a metric improves: the one table the monitor, the plots, studies and searches read.

A metric is lower-is-better when one of the words of its name (split on ``_``; the split prefix
such as ``val/`` dropped) is in :data:`LOWER_IS_BETTER`, or the name ends in ``loss``
(``val/loss``, ``clip_rmse``, ``top1_error``, ``nll_loss``); every other metric (accuracy, F1,
MPCA, SRCC, PLCC, ...) is higher-is-better. A leaf module, so every layer can ask it.
"""

from __future__ import annotations

import re

LOWER_IS_BETTER = frozenset({"loss", "error", "err", "rmse", "mse", "mae"})


def lower_is_better(metric: str) -> bool:
    """True for ``val/loss``, ``test/rmse``, ``clip_rmse``, ``top1_error``; False for ``val/accuracy``."""
    name = metric.rsplit("/", 1)[-1].lower()
    return name.endswith("loss") or any(word in LOWER_IS_BETTER for word in re.split(r"[_\W]+", name))
