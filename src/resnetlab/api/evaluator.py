"""Evaluate a model on one split: named scalars out, the full report kept beside them.

Training calls one every epoch (validation scalars for the monitor) and once more at the end
with the best weights (val and test); ``resnetlab eval`` calls one on any split. The final
results of both are written by :mod:`resnetlab.api.outputs`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from resnetlab.api.assemble import Task, clip_groups, gather_outputs
from resnetlab.data.bundle import Split
from resnetlab.data.loader import BatchLoader
from resnetlab.evaluation.inference import Outputs, run_model
from resnetlab.training.distributed import DistInfo


@dataclass
class SplitResult:
    """A model's outputs on a split with their named scalars and the full report (or scores)."""

    out: Outputs
    scalars: dict[str, float]
    detail: Any


@dataclass
class Evaluator:
    """``evaluator()`` → ``{"val/accuracy": ..., ...}``: the model's named scalars on ``split``.

    ``run()`` gives the outputs and full report too. Under DDP every process evaluates its
    shard and the outputs are gathered, so every process gets the same numbers.
    """

    # The model as evaluated, made for each evaluation (an average over random patches draws the
    # same patches every time from a fresh wrapper).
    model: Callable[[], nn.Module]
    split: Split
    loader: BatchLoader
    task: Task
    prepare: Callable[[torch.Tensor], torch.Tensor]  # uint8 batch → normalized input
    amp_dtype: torch.dtype | None = None
    channels_last: bool = False
    uses_features: bool = False
    tta: bool = False
    keep_features: bool = False
    compile: bool = False
    dist: DistInfo = field(default_factory=DistInfo)
    prefix: str = "val/"

    def outputs(self) -> Outputs:
        out = run_model(self.model(), self.loader, prepare=self.prepare, amp_dtype=self.amp_dtype, tta=self.tta,
                        channels_last=self.channels_last, uses_features=self.uses_features,
                        keep_features=self.keep_features, compile=self.compile)
        return gather_outputs(out, self.dist)

    def scores(self, out: Outputs) -> SplitResult:
        scalars, detail = self.task.metrics(out.outputs, out.targets, clip_groups(self.split, out))
        return SplitResult(out=out, scalars=scalars, detail=detail)

    def run(self) -> SplitResult:
        return self.scores(self.outputs())

    def __call__(self) -> dict[str, float]:
        out = self.outputs()
        if not np.isfinite(out.outputs).all():
            raise NonFiniteOutputs(self.prefix.rstrip("/"))
        return named_scalars(self.scores(out).scalars, self.prefix)


class NonFiniteOutputs(ValueError):
    """The model's outputs on a split became NaN or infinite."""

    def __init__(self, split: str) -> None:
        self.split = split
        super().__init__(f"the model's outputs on the {split} split became NaN or infinite")


def named_scalars(scalars: dict[str, Any], prefix: str) -> dict[str, float]:
    return {f"{prefix}{k}": float(v) for k, v in scalars.items() if isinstance(v, (int, float))}
