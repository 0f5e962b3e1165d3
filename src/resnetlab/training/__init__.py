"""Training: the loop and the small stateful parts around it (schedule, monitor, history,
checkpoints, progress, signals), plus device and distributed set-up.

The function users call is :func:`resnetlab.train` (:func:`resnetlab.api.train`), which builds
these parts from a config; this package never sees a config.
"""

from resnetlab.training.checkpoint import atomic_save, load_checkpoint
from resnetlab.training.loop import LoopState, StagePlan, TrainParts, fit

__all__ = ["LoopState", "StagePlan", "TrainParts", "atomic_save", "fit", "load_checkpoint"]
