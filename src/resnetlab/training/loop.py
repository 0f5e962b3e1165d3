"""The training loop. It loops and dispatches; everything it calls is built elsewhere.

One pass of the inner ``while`` is one optimizer step: its learning rate from ``lr_at(step)``
(a pure function of the step), then ``accumulate`` micro-batches (augment on the device,
forward under autocast, backward), then clip, step, poll for a stop request. Each epoch ends
with an evaluation, the monitor, history, and checkpoints. The loop takes plain values and
raises errors that carry data (:class:`Diverged`, :class:`OutOfMemory`); whoever knows the
settings words the advice.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

from resnetlab.data.loader import Batch, BatchLoader
from resnetlab.training.device import autocast
from resnetlab.training.history import History
from resnetlab.training.monitor import Monitor
from resnetlab.training.optim import set_lr
from resnetlab.training.progress import ProgressReporter
from resnetlab.training.resolution import resize_batch
from resnetlab.training.signals import Interrupted, StopRequest


@dataclass
class StagePlan:
    epochs: int
    freeze: str
    lr: float


@dataclass
class LoopState:
    """Counters that, with the parts' own state, pin down where a run is."""

    epoch: int = 0  # completed epochs
    step: int = 0  # optimizer steps since the start of the run
    loss_sum: float = 0.0  # of the current, unfinished epoch
    seen: int = 0
    seconds: float = 0.0
    schedule: dict = field(default_factory=dict)
    first_loss: float | None = None  # the run's first checked loss: the yardstick of an exploding one


# What the per-epoch line shows; every metric still goes to the history and TensorBoard.
_HEADLINE = ("loss", "accuracy", "top5", "mpca", "srcc", "plcc")


class Diverged(ValueError):
    """The loss (or ``what``) became NaN or infinite at optimizer step ``step`` with learning rate ``lr``."""

    def __init__(self, step: int | None, lr: float, *, epoch: int | None = None, what: str = "loss",
                 value: float = math.nan, first: float | None = None) -> None:
        self.step, self.lr, self.epoch, self.what, self.value = step, lr, epoch, what, value
        self.first = first  # the run's first loss, when a finite loss exploded past EXPLODED times it
        self.advice = ""  # how to avoid it, in the caller's words
        super().__init__(step, lr)

    def __str__(self) -> str:
        shown = f"became {self.value}" if self.what == "loss" else "became NaN or infinite"
        where = f" at step {self.step} (epoch {self.epoch})" if self.step is not None else ""
        text = f"{self.what} {shown}{where}"
        if self.first is not None:
            text = (f"loss exploded to {self.value:.3g}{where}, over {EXPLODED:g} times its first value "
                    f"{self.first:.3g}: the run diverged")
        return f"{text}; {self.advice}" if self.advice else text


class OutOfMemory(RuntimeError):
    """The device ran out of memory while training at ``batch_size`` (with ``accumulate`` micro-batches a step)."""

    def __init__(self, batch_size: int, *, accumulate: int = 1, device: torch.device | str = "cpu") -> None:
        self.batch_size, self.accumulate, self.device = batch_size, accumulate, torch.device(device)
        super().__init__(f"{self.device} ran out of memory while training at batch size {batch_size}")


class Schedule(Protocol):
    def lr(self, step: int) -> float: ...
    def observe(self, value: float, *, maximize: bool) -> None: ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...


@dataclass
class Stages:
    """The run's stages and how to enter one (freeze what it says) and set train mode within it."""

    plans: list[StagePlan]
    enter: Callable[[StagePlan], None] = lambda stage: None
    train_mode: Callable[[], None] | None = None  # default: model.train()


@dataclass
class Compute:
    """Where and how each micro-batch runs."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    amp_dtype: torch.dtype | None = None
    scaler: torch.amp.GradScaler | None = None
    channels_last: bool = False
    uses_features: bool = False  # the model takes (images, side features)


@dataclass
class StepRules:
    accumulate: int = 1  # micro-batches per optimizer step
    grad_clip: float = 0.0  # max gradient norm (0: off)
    checkpoint_steps: int = 0  # also save last.pt every this many steps (0: at epoch ends only)


@dataclass
class Control:
    """What the loop talks to while it runs: progress lines, stop requests, per-epoch hooks."""

    progress: ProgressReporter = field(default_factory=lambda: ProgressReporter(enabled=False))
    stop: StopRequest = field(default_factory=StopRequest)
    on_epoch_end: list[Callable[[dict[str, Any]], None]] = field(default_factory=list)
    # Every log_steps optimizer steps: on_step(step, loss of the step's last micro-batch, lr). Costs one
    # host-device sync per call (free on the CPU), none between calls.
    on_step: list[Callable[[int, float, float], None]] = field(default_factory=list)
    log_steps: int = 0
    after_step: list[Callable[[], None]] = field(default_factory=list)  # after every optimizer step, no sync


@dataclass
class TrainParts:
    model: nn.Module  # what runs forward/backward (may be DDP- or compile-wrapped)
    loader: BatchLoader
    augment: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
    loss_fn: Callable[..., torch.Tensor]
    optimizer: torch.optim.Optimizer
    # schedule(peak_lr=, steps_per_epoch=, epochs=) for one stage; its .lr(step) is lr_at(step)
    schedule: Callable[..., Schedule]
    stages: Stages
    evaluate: Callable[[], dict[str, float]]  # named validation scalars, e.g. {"val/accuracy": 0.9}
    monitor: Monitor
    history: History
    save: Callable[[str, dict[str, Any]], None]  # save("last" | "best", loop_state)
    compute: Compute = field(default_factory=Compute)
    rules: StepRules = field(default_factory=StepRules)
    control: Control = field(default_factory=Control)
    # size_at(epoch) -> the side training images are resized to in that epoch (0-based), None for as they are
    size_at: Callable[[int], int | None] | None = None


def fit(parts: TrainParts, state: LoopState | None = None) -> LoopState:
    """Train through every stage, resuming from ``state`` (and the parts' loaded state)."""
    try:
        return _fit(parts, state or LoopState())
    except torch.OutOfMemoryError as exc:  # the same class as torch.cuda.OutOfMemoryError
        raise OutOfMemory(parts.loader.batch_size, accumulate=parts.rules.accumulate,
                          device=parts.compute.device) from exc


@dataclass
class _Epoch:
    """One epoch in progress: its stage, schedule and step numbering, and its running totals."""

    label: str
    stage_index: int
    schedule: Schedule
    first_step: int  # the stage's step number of this epoch's first optimizer step
    micro_batches: int
    started: float
    running: torch.Tensor
    lr: float = 0.0
    size: int | None = None  # progressive resizing's image side this epoch


def _fit(p: TrainParts, state: LoopState) -> LoopState:
    steps_per_epoch = math.ceil(len(p.loader) / p.rules.accumulate)
    total_epochs = sum(s.epochs for s in p.stages.plans)
    current_stage, schedule = -1, None
    while state.epoch < total_epochs and not p.monitor.should_stop:
        stage_index, stage_first_epoch = _locate(p.stages.plans, state.epoch)
        if stage_index != current_stage:
            current_stage = stage_index
            schedule = _enter_stage(p, stage_index, state, steps_per_epoch)
        epoch = _start_epoch(p, state, stage_index, schedule, total_epochs,
                             first_step=(state.epoch - stage_first_epoch) * steps_per_epoch)
        _train_epoch(p, state, epoch)
        _end_epoch(p, state, epoch)
    return state


def _enter_stage(p: TrainParts, index: int, state: LoopState, steps_per_epoch: int) -> Schedule:
    plans = p.stages.plans
    stage = plans[index]
    p.stages.enter(stage)
    schedule = p.schedule(peak_lr=stage.lr, steps_per_epoch=steps_per_epoch, epochs=stage.epochs)
    if state.schedule and state.schedule.get("stage") == index:
        schedule.load_state_dict(state.schedule["state"])
    if len(plans) > 1:
        p.control.progress.line(f"stage {index + 1}/{len(plans)}: {stage.epochs} epochs, "
                                f"freeze={stage.freeze}, lr={stage.lr:g}")
    return schedule


def _start_epoch(p: TrainParts, state: LoopState, stage_index: int, schedule: Schedule, total_epochs: int, *,
                 first_step: int) -> _Epoch:
    if p.stages.train_mode is not None:
        p.stages.train_mode()
    else:
        p.model.train()
    p.loader.set_epoch(state.epoch)
    label = f"epoch {state.epoch + 1}/{total_epochs}"
    p.control.progress.start_epoch(label, len(p.loader), done=p.loader.position)
    # The epoch's loss sum so far, continued in float32 from a checkpoint: summing in one float32
    # total keeps a resumed (or checkpointed) epoch's loss bit-identical to an uninterrupted one.
    running = torch.tensor(state.loss_sum, dtype=torch.float32, device=p.compute.device)
    return _Epoch(label=label, stage_index=stage_index, schedule=schedule, first_step=first_step,
                  micro_batches=len(p.loader), started=time.perf_counter() - state.seconds, running=running,
                  lr=schedule.lr(first_step + p.loader.position // p.rules.accumulate),
                  size=p.size_at(state.epoch) if p.size_at else None)


def _train_epoch(p: TrainParts, state: LoopState, e: _Epoch) -> None:
    """Optimizer steps until the epoch's micro-batches are used up (a resumed epoch starts where it stopped)."""
    acc, loader = p.rules.accumulate, p.loader
    # On a GPU, reading the loss is a host-device sync; poll it every few steps instead of each.
    sync_every = 1 if p.compute.device.type == "cpu" else 25
    resumed_at, local_start = loader.position, time.perf_counter()
    batches = iter(loader)
    while loader.position < e.micro_batches:
        first = loader.position  # a multiple of acc: checkpoints are taken between steps only
        count = min(acc, e.micro_batches - first)
        done = first + count
        e.lr = e.schedule.lr(e.first_step + first // acc)
        c = p.control
        log_step = c.log_steps > 0 and bool(c.on_step) and (state.step + 1) % c.log_steps == 0
        check = (state.step % sync_every == 0 or done == e.micro_batches or p.rules.checkpoint_steps > 0
                 or c.stop.requested is not None or log_step)
        loss = _accumulate(p, state, e, itertools.islice(batches, count), count=count, check=check)
        set_lr(p.optimizer, e.lr)
        _step(p, keep_grads=done == e.micro_batches)
        state.step += 1
        for hook in c.after_step:
            hook()
        if check:
            rate = state.seen / max(time.perf_counter() - e.started, 1e-9)
            per_micro = (time.perf_counter() - local_start) / max(1, done - resumed_at)
            c.progress.update(done, loss=e.running.item() / max(1, state.seen),  # sync point
                              images_per_s=rate, eta_s=(e.micro_batches - done) * per_micro)
        if log_step:
            step_loss = float(loss.detach())  # already synced by the check above
            for hook in c.on_step:
                hook(state.step, step_loss, e.lr)
        _maybe_save_or_stop(p, state, e, done, sync_every)
    next(batches, None)  # let the loader close its epoch (it moves on to the next one by itself)
    p.control.progress.end_epoch()


def _accumulate(p: TrainParts, state: LoopState, e: _Epoch, batches: Iterator[Batch], *, count: int,
                check: bool) -> torch.Tensor:
    """Forward and backward over one step's micro-batches; gradients add up, scaled by 1/accumulate.
    Returns the last micro-batch's loss."""
    c = p.compute
    loss = torch.zeros(())
    for i, batch in enumerate(batches):
        last = i == count - 1
        images, targets = p.augment(batch.images, batch.targets)
        if e.size is not None:
            images = resize_batch(images, e.size)
        if c.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        # DDP averages gradients once per step, on the last micro-batch.
        sync = contextlib.nullcontext() if last or not hasattr(p.model, "no_sync") else p.model.no_sync()
        with sync:
            with autocast(c.device, c.amp_dtype):
                inputs = (images, batch.features) if c.uses_features else (images,)
                loss = p.loss_fn(p.model(*inputs), targets)
            if last and check:
                check_loss(state, loss.item(), e.lr)  # sync point (free on the CPU)
            scaled = loss / p.rules.accumulate
            (c.scaler.scale(scaled) if c.scaler else scaled).backward()
        e.running += loss.detach() * len(batch.index)
        state.seen += len(batch.index)
    return loss


def _maybe_save_or_stop(p: TrainParts, state: LoopState, e: _Epoch, done: int, sync_every: int) -> None:
    stop = p.control.stop
    # Alone, a stop request is read after every step; under DDP it is agreed on at steps that are
    # the same on every process (a collective, so not on a GPU's every step).
    stopping = ((stop.agree is None or state.step % sync_every == 0 or done == e.micro_batches)
                and stop.agreed() is not None)
    every = p.rules.checkpoint_steps
    if not ((every and state.step % every == 0) or stopping):
        return
    state.loss_sum = e.running.item()
    state.seconds = time.perf_counter() - e.started
    state.schedule = {"stage": e.stage_index, "state": e.schedule.state_dict()}
    p.save("last", asdict(state))
    if stopping:
        p.control.progress.end_epoch()
        p.control.progress.line(f"stopped by {stop.requested} at epoch {state.epoch + 1}, batch "
                                f"{done}/{e.micro_batches}; state saved to last.pt")
        raise Interrupted(stop.requested, "last.pt")


def _end_epoch(p: TrainParts, state: LoopState, e: _Epoch) -> None:
    """Evaluate, monitor, record, checkpoint; then say how the epoch went."""
    seconds = time.perf_counter() - e.started
    train_loss = e.running.item() / max(1, state.seen)
    images_per_s = state.seen / max(seconds, 1e-9)
    metrics = p.evaluate()
    if p.monitor.key not in metrics:
        raise KeyError(f"the monitored metric {p.monitor.key} is not among the evaluated ones: "
                       f"{', '.join(sorted(metrics))}")
    value = metrics[p.monitor.key]
    improved = p.monitor.update(value, state.epoch + 1)
    e.schedule.observe(value, maximize=p.monitor.maximize)
    row = {"epoch": state.epoch + 1, "stage": e.stage_index + 1, "train/loss": train_loss, **metrics,
           "lr": e.lr, "seconds": seconds, "images_per_s": images_per_s}
    p.history.append(row)
    state.epoch += 1
    state.loss_sum, state.seen, state.seconds = 0.0, 0, 0.0
    state.schedule = {"stage": e.stage_index, "state": e.schedule.state_dict()}
    for hook in p.control.on_epoch_end:
        hook(row)
    p.optimizer.zero_grad(set_to_none=True)  # the last step's gradients, kept for the hooks
    p.save("last", asdict(state))
    if improved:
        p.save("best", asdict(state))
    _say_epoch(p, e, row, metrics, improved)
    if p.control.stop.agreed():
        p.control.progress.line(f"stopped by {p.control.stop.requested} after epoch {state.epoch}; "
                                "state saved to last.pt")
        raise Interrupted(p.control.stop.requested, "last.pt")


def _say_epoch(p: TrainParts, e: _Epoch, row: dict[str, Any], metrics: dict[str, float], improved: bool) -> None:
    m, say = p.monitor, p.control.progress.line
    shown = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k == m.key or k.rsplit("/", 1)[-1] in _HEADLINE)
    mark = " *" if improved else ""
    say(f"{e.label}  train/loss {row['train/loss']:.4f}  {shown}  lr {e.lr:.3g}  "
        f"{row['seconds']:.1f}s  {row['images_per_s']:,.0f} img/s{mark}")
    if m.should_stop:
        say(f"early stopping: {m.key} did not improve for {m.patience} epochs (best {m.best:.4f} at epoch "
            f"{m.best_epoch})")


def _step(p: TrainParts, *, keep_grads: bool = False) -> None:
    """One optimizer step. ``keep_grads`` leaves this step's (unscaled) gradients in place for the
    epoch-end hooks, which draw their histograms; the loop clears them before the next epoch."""
    scaler, clip = p.compute.scaler, p.rules.grad_clip
    if scaler is not None:
        if clip > 0 or keep_grads:
            scaler.unscale_(p.optimizer)
        if clip > 0:
            nn.utils.clip_grad_norm_(p.model.parameters(), clip)
        scaler.step(p.optimizer)
        scaler.update()
    else:
        if clip > 0:
            nn.utils.clip_grad_norm_(p.model.parameters(), clip)
        p.optimizer.step()
    if not keep_grads:
        p.optimizer.zero_grad(set_to_none=True)


def _locate(stages: list[StagePlan], epoch: int) -> tuple[int, int]:
    start = 0
    for index, stage in enumerate(stages):
        if epoch < start + stage.epochs:
            return index, start
        start += stage.epochs
    return len(stages) - 1, start - stages[-1].epochs


# A loss this many times the run's first one is running away, not learning (adam at lr 1e6 reaches
# 4e19 from 2.3); a spike of a few times the start is normal, early in a run or after a restart.
EXPLODED = 1e4


def check_loss(state: LoopState, value: float, lr: float) -> None:
    """Raise Diverged for a loss that is NaN, infinite, or past ``EXPLODED`` times the run's first one."""
    if not math.isfinite(value):
        raise Diverged(state.step + 1, lr, epoch=state.epoch + 1, value=value)
    if state.first_loss is None:
        state.first_loss = value
    elif value > EXPLODED * max(state.first_loss, 1e-3):
        raise Diverged(state.step + 1, lr, epoch=state.epoch + 1, value=value, first=state.first_loss)
