"""The training loop. It loops and dispatches; everything it calls is built elsewhere.

One pass of the ``for`` below is one micro-batch: augment on the device, forward under
autocast, backward (accumulating), and every ``accumulate`` micro-batches: set the lr from
the schedule (a pure function of the step), clip, step, poll for a stop request. Each
epoch ends with an evaluation, the monitor, history, and checkpoints.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from resnetlab.config.schema import ScheduleConfig
from resnetlab.data.loader import BatchLoader
from resnetlab.errors import UserError
from resnetlab.training.device import autocast
from resnetlab.training.history import History
from resnetlab.training.monitor import Monitor
from resnetlab.training.optim import set_lr
from resnetlab.training.progress import ProgressReporter
from resnetlab.training.schedule import LrSchedule
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


# What the per-epoch line shows; every metric still goes to the history and TensorBoard.
_HEADLINE = ("loss", "accuracy", "top5", "mpca", "srcc", "plcc")


class Diverged(UserError):
    """The loss became NaN or infinite."""


class OutOfMemory(UserError):
    """The device ran out of memory at ``batch_size``; the message says how to fit."""

    def __init__(self, *, batch_size: int, accumulate: int, device: torch.device) -> None:
        self.batch_size, self.accumulate = batch_size, accumulate
        if batch_size > 1:
            advice = (f"set train.batch_size={batch_size // 2} train.accumulate={2 * accumulate} to keep the "
                      f"effective batch, or train.auto_batch=true to halve it automatically")
        else:
            advice = "use a smaller model or data.image_size, or train.precision=bf16"
        super().__init__(f"{device} ran out of memory while training at train.batch_size={batch_size}; {advice}")


@dataclass
class TrainParts:
    model: nn.Module  # what runs forward/backward (may be DDP- or compile-wrapped)
    loader: BatchLoader
    augment: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
    loss_fn: Callable[..., torch.Tensor]
    optimizer: torch.optim.Optimizer
    schedule: ScheduleConfig
    stages: list[StagePlan]
    evaluate: Callable[[], dict[str, float]]  # named validation scalars, e.g. {"val/accuracy": 0.9}
    monitor: Monitor
    history: History
    save: Callable[[str, dict[str, Any]], None]  # save("last" | "best", loop_state)
    set_stage: Callable[[StagePlan], None]  # freezes/unfreezes what the stage says
    set_train_mode: Callable[[], None]  # model.train() that respects frozen BatchNorm
    progress: ProgressReporter
    device: torch.device
    amp_dtype: torch.dtype | None = None
    scaler: torch.amp.GradScaler | None = None
    channels_last: bool = False
    accumulate: int = 1
    grad_clip: float = 0.0
    checkpoint_steps: int = 0
    uses_features: bool = False
    stop: StopRequest = field(default_factory=StopRequest)
    on_epoch_end: list[Callable[[dict[str, Any]], None]] = field(default_factory=list)
    # Every log_steps optimizer steps: on_step(step, loss of the step's last micro-batch, lr). Costs one
    # host-device sync per call (free on the CPU), none between calls.
    on_step: list[Callable[[int, float, float], None]] = field(default_factory=list)
    log_steps: int = 0


def fit(parts: TrainParts, state: LoopState | None = None) -> LoopState:
    """Train through every stage, resuming from ``state`` (and the parts' loaded state)."""
    try:
        return _fit(parts, state)
    except torch.OutOfMemoryError as exc:  # the same class as torch.cuda.OutOfMemoryError
        raise OutOfMemory(batch_size=parts.loader.batch_size, accumulate=parts.accumulate,
                          device=parts.device) from exc


def _fit(parts: TrainParts, state: LoopState | None) -> LoopState:
    state = state or LoopState()
    p = parts
    micro_per_epoch = len(p.loader)
    steps_per_epoch = math.ceil(micro_per_epoch / p.accumulate)
    total_epochs = sum(s.epochs for s in p.stages)
    # On a GPU, reading the loss is a host-device sync; poll it every few steps instead of each.
    sync_every = 1 if p.device.type == "cpu" else 25
    current_stage = -1
    schedule: LrSchedule | None = None

    while state.epoch < total_epochs and not p.monitor.should_stop:
        stage_index, stage_first_epoch = _locate(p.stages, state.epoch)
        stage = p.stages[stage_index]
        if stage_index != current_stage:
            current_stage = stage_index
            p.set_stage(stage)
            schedule = LrSchedule(p.schedule, peak_lr=stage.lr, steps_per_epoch=steps_per_epoch, epochs=stage.epochs)
            if state.schedule and state.schedule.get("stage") == stage_index:
                schedule.load_state_dict(state.schedule["state"])
            if len(p.stages) > 1:
                p.progress.line(f"stage {stage_index + 1}/{len(p.stages)}: {stage.epochs} epochs, "
                                f"freeze={stage.freeze}, lr={stage.lr:g}")

        p.set_train_mode()
        p.loader.set_epoch(state.epoch)
        label = f"epoch {state.epoch + 1}/{total_epochs}"
        p.progress.start_epoch(label, micro_per_epoch, done=p.loader.position)
        started = time.perf_counter() - state.seconds
        resumed_at, local_start = p.loader.position, time.perf_counter()
        # The epoch's loss sum so far, continued in float32 from a checkpoint: summing in one float32
        # total keeps a resumed (or checkpointed) epoch's loss bit-identical to an uninterrupted one.
        running = torch.tensor(state.loss_sum, dtype=torch.float32, device=p.device)
        epoch_step0 = (state.epoch - stage_first_epoch) * steps_per_epoch
        lr = schedule.lr(epoch_step0 + p.loader.position // p.accumulate)

        for batch in p.loader:
            micro = p.loader.position  # micro-batches done this epoch, including this one
            boundary = micro % p.accumulate == 0 or micro == micro_per_epoch
            images, targets = p.augment(batch.images, batch.targets)
            if p.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            sync = contextlib.nullcontext() if boundary or not hasattr(p.model, "no_sync") else p.model.no_sync()
            with sync:
                with autocast(p.device, p.amp_dtype):
                    inputs = (images, batch.features) if p.uses_features else (images,)
                    loss = p.loss_fn(p.model(*inputs), targets)
                log_step = boundary and p.log_steps > 0 and bool(p.on_step) and (state.step + 1) % p.log_steps == 0
                check = boundary and (state.step % sync_every == 0 or micro == micro_per_epoch
                                      or p.checkpoint_steps > 0 or p.stop.requested or log_step)
                if check and not torch.isfinite(loss):  # sync point (free on the CPU)
                    _diverged(state, loss, lr)
                scaled = loss / p.accumulate
                (p.scaler.scale(scaled) if p.scaler else scaled).backward()
            running += loss.detach() * len(batch.index)
            state.seen += len(batch.index)

            if boundary:
                lr = schedule.lr(epoch_step0 + (micro - 1) // p.accumulate)
                set_lr(p.optimizer, lr)
                _step(p, keep_grads=micro == micro_per_epoch)
                state.step += 1
                if check:
                    mean_loss = running.item() / max(1, state.seen)  # sync point
                    rate = state.seen / max(time.perf_counter() - started, 1e-9)
                    per_micro = (time.perf_counter() - local_start) / max(1, micro - resumed_at)
                    p.progress.update(micro, loss=mean_loss, images_per_s=rate,
                                      eta_s=(micro_per_epoch - micro) * per_micro)
                if log_step:
                    step_loss = float(loss.detach())  # already synced by the check above
                    for hook in p.on_step:
                        hook(state.step, step_loss, lr)
                # Alone, a stop request is read after every step; under DDP it is agreed on at steps that
                # are the same on every process (a collective, so not on a GPU's every step).
                stopping = ((p.stop.agree is None or state.step % sync_every == 0 or micro == micro_per_epoch)
                            and p.stop.agreed() is not None)
                if (p.checkpoint_steps and state.step % p.checkpoint_steps == 0) or stopping:
                    state.loss_sum = running.item()
                    state.seconds = time.perf_counter() - started
                    state.schedule = {"stage": stage_index, "state": schedule.state_dict()}
                    p.save("last", _snapshot(state))
                    if stopping:
                        p.progress.end_epoch()
                        p.progress.line(f"stopped by {p.stop.requested} at epoch {state.epoch + 1}, batch "
                                        f"{micro}/{micro_per_epoch}; state saved to last.pt")
                        raise Interrupted(p.stop.requested, "last.pt")

        p.progress.end_epoch()
        # ---- end of epoch: evaluate, monitor, record, checkpoint
        seconds = time.perf_counter() - started
        train_loss = running.item() / max(1, state.seen)
        images_per_s = state.seen / max(seconds, 1e-9)
        metrics = p.evaluate()
        if p.monitor.key not in metrics:
            raise UserError(f"train.monitor={p.monitor.key} is not a metric of this run; "
                            f"choose one of {', '.join(sorted(metrics))}")
        value = metrics[p.monitor.key]
        improved = p.monitor.update(value, state.epoch + 1)
        schedule.observe(value, maximize=p.monitor.maximize)
        row = {"epoch": state.epoch + 1, "stage": stage_index + 1, "train/loss": train_loss, **metrics,
               "lr": lr, "seconds": seconds, "images_per_s": images_per_s}
        p.history.append(row)
        state.epoch += 1
        state.loss_sum, state.seen, state.seconds = 0.0, 0, 0.0
        state.schedule = {"stage": stage_index, "state": schedule.state_dict()}
        for hook in p.on_epoch_end:
            hook(row)
        p.optimizer.zero_grad(set_to_none=True)  # the last step's gradients, kept for the hooks
        p.save("last", _snapshot(state))
        if improved:
            p.save("best", _snapshot(state))
        shown = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items()
                          if k == p.monitor.key or k.rsplit("/", 1)[-1] in _HEADLINE)
        mark = " *" if improved else ""
        p.progress.line(f"{label}  train/loss {train_loss:.4f}  {shown}  lr {lr:.3g}  "
                        f"{seconds:.1f}s  {images_per_s:,.0f} img/s{mark}")
        if p.monitor.should_stop:
            p.progress.line(f"early stopping: {p.monitor.key} did not improve for {p.monitor.patience} epochs "
                            f"(best {p.monitor.best:.4f} at epoch {p.monitor.best_epoch})")
        if p.stop.agreed():
            p.progress.line(f"stopped by {p.stop.requested} after epoch {state.epoch}; state saved to last.pt")
            raise Interrupted(p.stop.requested, "last.pt")
    return state


def _step(p: TrainParts, *, keep_grads: bool = False) -> None:
    """One optimizer step. ``keep_grads`` leaves this step's (unscaled) gradients in place for the
    epoch-end hooks, which draw their histograms; the loop clears them before the next epoch."""
    if p.scaler is not None:
        if p.grad_clip > 0 or keep_grads:
            p.scaler.unscale_(p.optimizer)
        if p.grad_clip > 0:
            nn.utils.clip_grad_norm_(p.model.parameters(), p.grad_clip)
        p.scaler.step(p.optimizer)
        p.scaler.update()
    else:
        if p.grad_clip > 0:
            nn.utils.clip_grad_norm_(p.model.parameters(), p.grad_clip)
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


def _snapshot(state: LoopState) -> dict[str, Any]:
    return asdict(state)


def _diverged(state: LoopState, loss: torch.Tensor, lr: float) -> None:
    raise Diverged(f"loss became {loss.item()} at step {state.step + 1} (epoch {state.epoch + 1}); "
                   f"lower optim.lr (now {lr:.3g}), set train.grad_clip=1.0 or train.precision=fp32; "
                   "the last good checkpoint is last.pt")
