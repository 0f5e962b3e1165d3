"""Learning rate as a function of the step, plus the one schedule that needs a metric (plateau)."""

from __future__ import annotations

import math

from resnetlab.config.schema import ScheduleConfig


class LrSchedule:
    """``lr(step)`` for one training stage of ``total_steps`` optimizer steps.

    Warmup is linear from ``warmup_start * peak`` to ``peak`` and applies to every schedule.
    The plateau schedule keeps a decay factor updated once per epoch by :meth:`observe`.
    """

    def __init__(self, cfg: ScheduleConfig, *, peak_lr: float, steps_per_epoch: int, epochs: int) -> None:
        self.cfg = cfg
        self.peak = peak_lr
        self.steps_per_epoch = max(1, steps_per_epoch)
        self.total = self.steps_per_epoch * epochs
        self.warmup = min(int(round(cfg.warmup_epochs * self.steps_per_epoch)), self.total)
        if cfg.name == "onecycle":  # one-cycle's rise is its warmup: at least 30% of training
            self.warmup = max(self.warmup, int(0.3 * self.total))
        self.plateau_factor = 1.0
        self.best: float | None = None
        self.bad_epochs = 0

    def lr(self, step: int) -> float:
        cfg, peak = self.cfg, self.peak
        if step < self.warmup:
            start = peak / 25 if cfg.name == "onecycle" else peak * cfg.warmup_start
            return start + (peak - start) * step / self.warmup
        progress = (step - self.warmup) / max(1, self.total - self.warmup)
        progress = min(progress, 1.0)
        if cfg.name in ("cosine", "onecycle"):
            floor = cfg.min_lr if cfg.name == "cosine" or cfg.min_lr > 0 else peak / 1e4
            return floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * progress))
        if cfg.name == "step":
            return peak * cfg.gamma ** (step // (cfg.step_epochs * self.steps_per_epoch))
        if cfg.name == "plateau":
            return max(peak * self.plateau_factor, cfg.min_lr)
        return peak

    def observe(self, value: float, *, maximize: bool) -> None:
        """Feed the monitored metric once per epoch (only the plateau schedule listens)."""
        if self.cfg.name != "plateau":
            return
        better = self.best is None or (value > self.best if maximize else value < self.best)
        if better:
            self.best, self.bad_epochs = value, 0
            return
        self.bad_epochs += 1
        if self.bad_epochs > self.cfg.plateau_patience:
            self.plateau_factor *= self.cfg.gamma
            self.bad_epochs = 0

    def state_dict(self) -> dict:
        return {"plateau_factor": self.plateau_factor, "best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict) -> None:
        self.plateau_factor, self.best, self.bad_epochs = state["plateau_factor"], state["best"], state["bad_epochs"]
