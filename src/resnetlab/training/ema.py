"""An exponential moving average of a model's weights (Polyak averaging; timm's ``--model-ema``).

The average is what a run validates, tests and keeps in ``best.pt``: late in training the
weights still jitter around a minimum, and their average sits nearer its centre. The decay
warms up as ``min(decay, (1 + step) / (10 + step))`` so the early, random weights wash out in
tens of steps instead of the thousands a 0.999 decay would take on its own.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class WeightEma:
    """Keep ``module``, an averaged copy of a model, and move it toward the model after each step."""

    def __init__(self, model: nn.Module, *, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay {decay!r} is outside (0, 1); use e.g. 0.999")
        self.decay = decay
        self.updates = 0
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self._model = model

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self) -> None:
        """One step toward the model: floating-point parameters and buffers (BatchNorm's running
        statistics too) move by ``1 - decay``; integer buffers (batch counters) are copied."""
        weight = 1.0 - self.current_decay()
        averaged, live = [], []
        for mine, theirs in zip(self._tensors(self.module), self._tensors(self._model), strict=True):
            if mine.is_floating_point():
                averaged.append(mine)
                live.append(theirs.detach())
            else:
                mine.copy_(theirs)
        if averaged:
            torch._foreach_lerp_(averaged, live, weight)
        self.updates += 1

    @staticmethod
    def _tensors(model: nn.Module) -> list[torch.Tensor]:
        return [*model.parameters(), *model.buffers()]

    def state_dict(self) -> dict[str, Any]:
        return {"module": self.module.state_dict(), "updates": self.updates, "decay": self.decay}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])
