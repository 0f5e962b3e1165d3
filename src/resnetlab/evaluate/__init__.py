"""Judging a run: metrics, plots, reports, comparisons, TensorBoard, and the inference path.

``resnetlab.evaluate`` is also the function users call (``resnetlab.evaluate(run_dir)``). Python
binds a sub-package to its parent's attribute on import, so, as ``resnetlab.train`` does, the
package itself is made callable and forwards to :func:`resnetlab.api.evaluate`.
"""

import sys
import types
from typing import Any

from resnetlab.evaluate.inference import Outputs, run_model
from resnetlab.evaluate.metrics import ClassificationReport, classification_metrics
from resnetlab.evaluate.regression_metrics import regression_metrics


class _CallableModule(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from resnetlab.api import evaluate

        return evaluate(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

__all__ = ["ClassificationReport", "Outputs", "classification_metrics", "regression_metrics", "run_model"]
