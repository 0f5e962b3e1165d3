"""Training: the loop and the small stateful parts around it (schedule, monitor, history,
checkpoints, progress, signals), plus device and distributed set-up.

``resnetlab.train`` is also the function users call (``resnetlab.train(overrides=[...])``).
Python binds a sub-package to its parent's attribute on import, so the package itself is
made callable and forwards to :func:`resnetlab.api.train`.
"""

import sys
import types
from typing import Any

from resnetlab.train.checkpoint import atomic_save, load_checkpoint
from resnetlab.train.loop import LoopState, StagePlan, TrainParts, fit


class _CallableModule(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from resnetlab.api import train

        return train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

__all__ = ["LoopState", "StagePlan", "TrainParts", "atomic_save", "fit", "load_checkpoint"]
