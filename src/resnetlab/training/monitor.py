"""Best-metric tracking and early stopping: one small part with its own state."""

from __future__ import annotations

import math

from resnetlab.metric_direction import lower_is_better


def infer_mode(key: str, mode: str) -> str:
    """``mode`` as given, or for ``auto`` min/max by the metric's direction."""
    if mode != "auto":
        return mode
    return "min" if lower_is_better(key) else "max"


class Monitor:
    """Watches one metric; says when it improved and when patience ran out."""

    def __init__(self, key: str, *, mode: str = "auto", patience: int = 0) -> None:
        self.key = key
        self.mode = infer_mode(key, mode)
        self.patience = patience
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.bad_epochs = 0

    @property
    def maximize(self) -> bool:
        return self.mode == "max"

    def update(self, value: float, epoch: int) -> bool:
        """Record this epoch's value; True when it is the best so far."""
        if value is None or math.isnan(value):
            improved = False
        elif self.best is None:
            improved = True
        else:
            improved = value > self.best if self.maximize else value < self.best
        if improved:
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
        else:
            self.bad_epochs += 1
        return improved

    @property
    def should_stop(self) -> bool:
        return self.patience > 0 and self.bad_epochs >= self.patience

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch, self.bad_epochs = state["best"], state["best_epoch"], state["bad_epochs"]
