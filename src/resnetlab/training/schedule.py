"""Learning rate as a function of the step, plus the one schedule that needs a metric (plateau)."""

from __future__ import annotations

import math

SCHEDULES = ("cosine", "plateau", "step", "onecycle", "none")


class LrSchedule:
    """``lr(step)`` for one training stage of ``epochs * steps_per_epoch`` optimizer steps.

    Warmup is linear from ``warmup_start * peak_lr`` to ``peak_lr`` and applies to every schedule.
    The plateau schedule keeps a decay factor updated once per epoch by :meth:`observe`.
    """

    def __init__(self, *, name: str = "cosine", peak_lr: float, steps_per_epoch: int, epochs: int,
                 warmup_epochs: float = 0.0, warmup_start: float = 0.01, min_lr: float = 0.0,
                 step_epochs: int = 30, gamma: float = 0.1, plateau_patience: int = 5) -> None:
        if name not in SCHEDULES:
            raise ValueError(f"unknown schedule {name!r}; choose one of {', '.join(SCHEDULES)}")
        self.name, self.peak = name, peak_lr
        self.warmup_start, self.min_lr, self.gamma = warmup_start, min_lr, gamma
        self.step_epochs, self.plateau_patience = step_epochs, plateau_patience
        self.steps_per_epoch = max(1, steps_per_epoch)
        self.total = self.steps_per_epoch * epochs
        self.warmup = min(round(warmup_epochs * self.steps_per_epoch), self.total)
        if name == "onecycle":  # one-cycle's rise is its warmup: at least 30% of training
            self.warmup = max(self.warmup, int(0.3 * self.total))
        self.plateau_factor = 1.0
        self.best: float | None = None
        self.bad_epochs = 0

    def lr(self, step: int) -> float:
        name, peak = self.name, self.peak
        if step < self.warmup:
            start = peak / 25 if name == "onecycle" else peak * self.warmup_start
            return start + (peak - start) * step / self.warmup
        progress = (step - self.warmup) / max(1, self.total - self.warmup)
        progress = min(progress, 1.0)
        if name in ("cosine", "onecycle"):
            floor = self.min_lr if name == "cosine" or self.min_lr > 0 else peak / 1e4
            return floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * progress))
        if name == "step":
            return peak * self.gamma ** (step // (self.step_epochs * self.steps_per_epoch))
        if name == "plateau":
            return max(peak * self.plateau_factor, self.min_lr)
        return peak

    def observe(self, value: float, *, maximize: bool) -> None:
        """Feed the monitored metric once per epoch (only the plateau schedule listens)."""
        if self.name != "plateau":
            return
        better = self.best is None or (value > self.best if maximize else value < self.best)
        if better:
            self.best, self.bad_epochs = value, 0
            return
        self.bad_epochs += 1
        if self.bad_epochs > self.plateau_patience:
            self.plateau_factor *= self.gamma
            self.bad_epochs = 0

    def state_dict(self) -> dict:
        return {"plateau_factor": self.plateau_factor, "best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict) -> None:
        self.plateau_factor, self.best, self.bad_epochs = state["plateau_factor"], state["best"], state["bad_epochs"]
