"""Training: the loop and the small stateful parts around it (schedule, monitor, history,
checkpoints, progress, signals), plus device and distributed set-up.

The function users call is :func:`resnetlab.train` (:func:`resnetlab.api.train`), which builds
these parts from a config; this package never sees a config.
"""

from resnetlab.training.checkpoint import atomic_save, load_checkpoint
from resnetlab.training.checkpointer import Checkpointer
from resnetlab.training.loop import (
    Compute,
    Control,
    Diverged,
    LoopState,
    OutOfMemory,
    StagePlan,
    Stages,
    StepRules,
    TrainParts,
    fit,
)

__all__ = ["Checkpointer", "Compute", "Control", "Diverged", "LoopState", "OutOfMemory", "StagePlan", "Stages",
           "StepRules", "TrainParts", "atomic_save", "fit", "load_checkpoint"]
