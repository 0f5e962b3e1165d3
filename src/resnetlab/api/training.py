"""``train``: one run from config to run folder, with resume, stop requests and out-of-memory retries."""

from __future__ import annotations

import dataclasses
import functools
import gc
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from resnetlab.api.assemble import (
    Task,
    augment_kwargs,
    balanced_class_weights,
    balanced_sample_weights,
    build_model,
    data_kwargs,
    eval_batch_size,
    for_eval,
    frozen_bn_train_mode,
    head_parameters,
    input_size,
    make_loader,
    monitor_key,
    optimizer_kwargs,
    schedule_kwargs,
    setting_warnings,
    stage_plans,
    user_input,
    validate_config,
)
from resnetlab.api.evaluator import Evaluator, NonFiniteOutputs
from resnetlab.api.outputs import final_evaluation, final_line, write_run_outputs
from resnetlab.baselines.hog_svm import MODEL_NAME as BASELINE_MODEL
from resnetlab.config import Config, build_config, flatten, save_config, to_dict
from resnetlab.config.lr_rule import lr_words, with_auto_lr
from resnetlab.data.augment import BatchAugment, normalize
from resnetlab.data.bundle import DataBundle, Split
from resnetlab.data.sources import check_unseen_classes, load_data
from resnetlab.errors import UserError, did_you_mean
from resnetlab.models import freeze
from resnetlab.training.allocator import keep_freed_memory
from resnetlab.training.checkpoint import load_checkpoint
from resnetlab.training.checkpointer import Checkpointer, CheckpointMismatch, GlobalRng
from resnetlab.training.device import (
    resolve_device,
    resolve_precision,
    seed_everything,
    set_threads,
    use_channels_last,
)
from resnetlab.training.distributed import (
    DistInfo,
    any_process,
    barrier,
    broadcast_object,
    check_sync_bn,
    init_distributed,
)
from resnetlab.training.ema import WeightEma
from resnetlab.training.history import History
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
from resnetlab.training.losses import classification_loss, regression_loss
from resnetlab.training.monitor import Monitor
from resnetlab.training.optim import build_optimizer
from resnetlab.training.progress import ProgressReporter
from resnetlab.training.resolution import progressive_size
from resnetlab.training.run_folder import (
    default_run_name,
    make_run_dir,
    peak_device_mb,
    peak_rss_mb,
    provenance,
    resume_has_work,
    write_data_record,
    write_json,
)
from resnetlab.training.schedule import LrSchedule
from resnetlab.training.signals import Interrupted, StopRequest
from resnetlab.training.threads import start_threads


@dataclass
class TrainResult:
    run_dir: Path
    monitor: str
    best: float | None
    best_epoch: int | None
    val: dict[str, float]
    test: dict[str, float] | None
    history: list[dict[str, Any]] = field(default_factory=list)



def train(config: Config | Sequence[str] | None = None, *, overrides: Sequence[str] = (),
          callbacks: Sequence[Callable[[dict[str, Any]], None]] = ()) -> TrainResult:
    """Train one run and return where it lives and how it did.

    ``resnetlab.train(overrides=["preset=quick", "train.epochs=3"])`` is the command line's
    ``resnetlab train preset=quick train.epochs=3``; ``resnetlab.train(["preset=quick"])`` is the
    same. Each of ``callbacks`` receives every epoch's history row (e.g. to report to a
    hyperparameter search, which may raise to prune the run).
    """
    if isinstance(config, (list, tuple)):
        config, overrides = None, [*config, *overrides]
    elif config is not None and not isinstance(config, Config):
        raise TypeError(f"train() takes a Config or a list of override strings, got {type(config).__name__}; "
                        "e.g. resnetlab.train(overrides=['preset=quick'])")
    # Built again even from a Config object: one edited in Python (cfg.optim.lr = -5) gets the same
    # one-line check as an override, before any data is loaded.
    cfg = with_auto_lr(build_config(overrides, base=to_dict(config) if config is not None else None))[0]
    if cfg.model.name == BASELINE_MODEL:
        return _fit_baseline(cfg)
    validate_config(cfg)
    seed_everything(cfg.train.seed, deterministic=cfg.train.deterministic)
    set_threads(cfg.train.threads)
    keep_freed_memory()
    device = resolve_device(cfg.train.device)
    amp_dtype = resolve_precision(cfg.train.precision, device)
    env = RunEnv(device=device, amp_dtype=amp_dtype, channels_last=use_channels_last(cfg.train.channels_last,
                                                                                     amp_dtype, device),
                 dist=init_distributed(device))
    check_sync_bn(cfg.train.sync_bn, device, env.dist)
    run_dir, resume_from = _run_dir(cfg, env.dist)
    if resume_from is not None:
        cfg = _resumed_config(cfg, resume_from)
        resume_has_work(run_dir, _saved(resume_from), total_epochs=sum(s.epochs for s in stage_plans(cfg)),
                        patience=cfg.train.early_stopping)
    fresh = env.dist.is_main and resume_from is None and not any(run_dir.iterdir())
    progress = ProgressReporter(enabled=env.dist.is_main and cfg.output.progress,
                                log_file=run_dir / "train.log" if env.dist.is_main else None,
                                log_every=cfg.train.log_every)
    try:
        while True:
            try:
                return _train(cfg, run_dir=run_dir, resume_from=resume_from, env=env, progress=progress,
                              callbacks=callbacks)
            except OutOfMemory as exc:
                if not cfg.train.auto_batch or cfg.train.batch_size < 2 or resume_from is not None \
                        or env.dist.enabled:
                    raise _out_of_memory(exc) from exc.__cause__
                cfg = _halve_batch(cfg, run_dir, log=progress.line)
            _free_device_memory(device)  # outside the except: the failed step's tensors are released by now
    except UserError:
        progress.close()
        if fresh and not (run_dir / "config.yaml").exists():
            # Rejected before the run began (data, model or settings): leave no half-made folder behind,
            # so the same command works once the input is fixed.
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    finally:
        progress.close()



def _check_monitor(key: str, task: Task, val: Split) -> None:
    """train.monitor must be a validation metric: checked on placeholder outputs, before any training."""
    groups = None if val.groups is None else np.asarray(val.groups)
    try:
        names = [f"val/{name}" for name in task.metric_names(val.targets, groups)]
    except ValueError as exc:
        raise UserError(f"validation metrics cannot be computed on {len(val)} validation image(s) ({exc}); "
                        "raise data.val_ratio or add images") from None
    if key not in names:
        hint = did_you_mean(key, names, prefix=" (", suffix=")")
        raise UserError(f"train.monitor={key} is not a validation metric of this {task.kind} run{hint}; "
                        f"choose one of {', '.join(names)}")



# Settings a resumed run may change: they do not change what the run learns (train.epochs extends it).
RESUME_MAY_CHANGE = ("train.epochs", "train.early_stopping", "train.threads", "train.device", "train.resume",
                     "train.log_every", "train.checkpoint_steps", "train.eval_batch_size", "train.compile",
                     "train.tta", "data.dir", "data.cache_dir", "data.cache", "data.workers")  # and every output.*


def _resumed_config(cfg: Config, resume_from: Path) -> Config:
    """``cfg`` if it may continue the run in ``resume_from``; a UserError naming what changed if not.

    Otherwise a resume would train on with other settings, or (a finished run) train nothing and
    rewrite config.yaml and final_results.json with settings the run never used.
    """
    saved = _saved_config(resume_from)
    if not isinstance(saved, dict):
        return cfg  # a checkpoint without its config: the weights still have to fit, checked when loaded
    before, now = flatten(saved), flatten(to_dict(cfg))
    changed = [k for k in now if k in before and before[k] != now[k]
               and k not in RESUME_MAY_CHANGE and not k.startswith("output.")]
    t = cfg.train
    if changed and t.auto_batch and set(changed) <= {"train.batch_size", "train.accumulate"} and \
            before.get("train.batch_size", 0) * before.get("train.accumulate", 0) == t.batch_size * t.accumulate:
        # train.auto_batch halved this run's batch after an out-of-memory error: go on with the halved one.
        return dataclasses.replace(cfg, train=dataclasses.replace(
            t, batch_size=before["train.batch_size"], accumulate=before["train.accumulate"]))
    if changed:
        shown = ", ".join(f"{k} was {_shown(before[k])}, now {_shown(now[k])}" for k in changed[:3])
        more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        raise UserError(f"train.resume: {resume_from} does not fit this config ({shown}{more}); resume with the "
                        "settings the run started with, or start a new run with another output.name to change them")
    return cfg


def _saved_config(path: Path) -> Any:
    return _saved(path).get("config")


def _saved(path: Path) -> dict[str, Any]:
    try:  # memory-mapped: the tensors stay on disk, only the settings are read
        return load_checkpoint(path, mmap=True)
    except UserError:
        return load_checkpoint(path)  # names what is wrong with the file (or reads what mmap cannot)


def _shown(value: Any) -> str:
    return "none" if value is None else str(value)



def _halve_batch(cfg: Config, run_dir: Path, *, log: Callable[[str], None]) -> Config:
    """The same run from its start with half the batch and twice the accumulation (same effective batch)."""
    half, accumulate = cfg.train.batch_size // 2, cfg.train.accumulate * 2
    log(f"out of memory at train.batch_size={cfg.train.batch_size} (train.auto_batch): restarting the run with "
        f"train.batch_size={half} train.accumulate={accumulate}")
    for name in ("last.pt", "best.pt"):  # the restart must not resume or report the failed attempt
        (run_dir / name).unlink(missing_ok=True)
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, batch_size=half, accumulate=accumulate))



def _free_device_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()



def _fit_baseline(cfg: Config) -> TrainResult:
    """model.name=hog-svm: the HOG+SVM baseline with its default settings on the run's data, so a
    study or a search can hold it beside networks (`resnetlab baseline hog-svm` tunes it)."""
    from resnetlab.baselines.hog_svm import MONITOR, train_hog_svm

    if cfg.train.resume not in (None, "", "auto"):
        raise UserError(f"train.resume={cfg.train.resume}: a {BASELINE_MODEL} run is fitted once and has no "
                        "checkpoint to resume; run it again under a new output.name")
    log = print if cfg.output.progress else lambda line: None
    ignored = _network_settings(cfg)
    if ignored:
        shown = ", ".join(ignored[:6]) + (f" and {len(ignored) - 6} more" if len(ignored) > 6 else "")
        log(f"note: model.name={BASELINE_MODEL} uses the data.* settings only; not used: {shown} "
            "(its own settings are options of `resnetlab baseline hog-svm`)")
    result = train_hog_svm(data_kwargs(cfg.data), out_dir=cfg.output.dir, name=cfg.output.name,
                           reuse_folder=cfg.train.resume == "auto", workers=cfg.train.threads or None, log=log)
    return TrainResult(run_dir=result.run_dir, monitor=MONITOR, best=result.val["accuracy"], best_epoch=None,
                       val=result.val, test=result.test)


def _network_settings(cfg: Config) -> list[str]:
    """Keys set away from their defaults that only a network uses (the optimizer, epochs, ...)."""
    # The defaults as this run would fill them in (lr from the batch, clipping from the task).
    default, _ = with_auto_lr(dataclasses.replace(build_config([]), data=cfg.data))
    used = {"model.name", "train.threads", "train.resume", "train.seed"}
    return [f"{section}.{f.name}" for section in ("model", "augment", "optim", "schedule", "train", "patches")
            for f in dataclasses.fields(getattr(cfg, section))
            if f"{section}.{f.name}" not in used
            and getattr(getattr(cfg, section), f.name) != getattr(getattr(default, section), f.name)]


def _run_dir(cfg: Config, dist: DistInfo) -> tuple[Path, Path | None]:
    resume = cfg.train.resume
    resume_from: Path | None = None
    if resume and resume != "auto":
        target = Path(resume)
        if not target.exists():
            raise UserError(f"train.resume: {target} not found; give a run folder or its last.pt")
        resume_from = target / "last.pt" if target.is_dir() else target
        if not resume_from.is_file():
            raise UserError(f"train.resume: {target} holds no last.pt (it stopped before its first checkpoint); "
                            "nothing to resume, so train it again under a new output.name")
        run_dir = resume_from.parent
        return run_dir, resume_from
    name = cfg.output.name
    if resume == "auto" and name is None:
        raise UserError("train.resume=auto needs output.name to find the run; or pass --resume RUN_DIR")
    if resume == "auto" and (Path(cfg.output.dir) / name / "last.pt").is_file():
        resume_from = Path(cfg.output.dir) / name / "last.pt"
    generated = name is None
    name = name or default_run_name(model=cfg.model.name, batch_size=cfg.train.batch_size, lr=cfg.optim.lr)
    run_dir = Path(cfg.output.dir) / name
    if dist.is_main:
        run_dir = make_run_dir(cfg.output.dir, name, resuming=resume_from is not None or resume == "auto",
                               generated=generated)
    run_dir = Path(broadcast_object(str(run_dir), dist))
    return run_dir, resume_from



@dataclass
class RunEnv:
    """Where a run computes: resolved once, before the first attempt (an out-of-memory retry keeps it)."""

    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool
    dist: DistInfo


@dataclass
class RunData:
    bundle: DataBundle
    task: Task

    @property
    def feature_dim(self) -> int:
        features = self.bundle.train.features
        return 0 if features is None else int(features.shape[1])


class RunDiverged(UserError, Diverged):
    """The loop's Diverged, with the advice worded in the settings that fix it."""


def _advised(exc: Diverged, cfg: Config) -> RunDiverged:
    advised = RunDiverged(exc.step, exc.lr, epoch=exc.epoch, what=exc.what, value=exc.value, first=exc.first)
    advised.advice = (f"lower optim.lr (now {exc.lr:.3g}), set train.grad_clip=1.0 or train.precision=fp32; "
                      + ("the last good checkpoint is last.pt" if exc.step is not None
                         else "last.pt, if any, holds the previous epoch"))
    return advised


def _out_of_memory(exc: OutOfMemory) -> UserError:
    batch, accumulate = exc.batch_size, exc.accumulate
    if batch > 1:
        advice = (f"set train.batch_size={batch // 2} train.accumulate={2 * accumulate} to keep the "
                  f"effective batch, or train.auto_batch=true to halve it automatically")
    else:
        advice = "use a smaller model or data.image_size, or train.precision=bf16"
    return UserError(f"{exc.device} ran out of memory while training at train.batch_size={batch}; {advice}")


def _train(cfg: Config, *, run_dir: Path, resume_from: Path | None, env: RunEnv, progress: ProgressReporter,
           callbacks: Sequence[Callable[[dict[str, Any]], None]] = ()) -> TrainResult:
    """Build the parts, run the loop, report with the best weights."""
    wall_start = time.perf_counter()
    data = _load_run_data(cfg, progress)
    core = _build_core(cfg, data, env, progress)
    ema = WeightEma(core, decay=cfg.train.ema) if cfg.train.ema else None
    parts = build_parts(cfg, core=core, data=data, env=env, progress=progress, callbacks=callbacks, ema=ema)
    checkpointer = _checkpointer(cfg, run_dir, core, parts, data, env.dist, ema=ema)
    parts.save = checkpointer.save
    state = LoopState()
    if resume_from is not None:
        state = _resume(checkpointer, resume_from, env.device)
        progress.line(f"resuming {run_dir} at epoch {state.epoch + 1}, batch {parts.loader.position} "
                      f"(step {state.step})")
    # The thread count is chosen here, after loading, when only other processes keep the cores busy.
    threads = start_threads(cfg.train.threads, device=env.device, log=progress.line, world_size=env.dist.world_size,
                            deterministic=cfg.train.deterministic)
    parts.control.after_step += [threads.step_done] if threads else []
    tb = _record_run(cfg, run_dir, data, env, core, parts) if env.dist.is_main else None
    try:
        _run(parts, state, env.dist, run_dir, cfg)
    except BaseException:
        if tb is not None:
            tb.close()
        raise
    return _report(cfg, run_dir, core, data, env, parts, tb, train_seconds=time.perf_counter() - wall_start)


def _load_run_data(cfg: Config, progress: ProgressReporter) -> RunData:
    bundle = load_data(**data_kwargs(cfg.data), log=progress.line)
    check_unseen_classes(bundle, allow=cfg.data.allow_unseen_classes)
    task = Task(cfg.data.task, bundle.class_names, bundle.target_stats)
    if task.kind == "classification" and len(task.class_names) < 2:
        raise UserError(f"data.source={cfg.data.source} has {len(task.class_names)} class "
                        f"({', '.join(task.class_names)}); classification needs at least 2: add another class")
    if len(bundle.val) == 0:
        raise UserError("the validation split is empty; raise data.val_ratio or add a val/ folder")
    _check_monitor(monitor_key(cfg), task, bundle.val)
    return RunData(bundle=bundle, task=task)


def _build_core(cfg: Config, data: RunData, env: RunEnv, progress: ProgressReporter) -> nn.Module:
    """The model as its weights are saved: on the device, SyncBatchNorm under DDP, channels-last if asked."""
    bundle = data.bundle
    model = build_model(cfg.model, num_outputs=data.task.num_outputs, in_channels=bundle.channels,
                        image_size=input_size(cfg, bundle.image_size), feature_dim=data.feature_dim,
                        log=progress.line).to(env.device)
    for warning in setting_warnings(cfg, channels=bundle.channels):
        progress.line(warning)
    if env.dist.enabled and cfg.train.sync_bn:  # before the optimizer sees the BatchNorm parameters
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if env.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def build_parts(cfg: Config, *, core: nn.Module, data: RunData, env: RunEnv, progress: ProgressReporter,
                callbacks: Sequence[Callable[[dict[str, Any]], None]] = (), ema: WeightEma | None = None) -> TrainParts:
    """Everything the loop calls, built from the config: loader, augmentation, loss, optimizer, schedule,
    stages, validation, monitor. ``save`` is set by the caller (it needs the parts). With ``ema``, the
    weight average follows every step and is what validation sees."""
    bundle, task, t = data.bundle, data.task, cfg.train
    weights = balanced_sample_weights(bundle.train, task.num_outputs) if t.balanced_sampler else None
    train_loader = make_loader(bundle.train, task, batch_size=t.batch_size, device=env.device, shuffle=True,
                               seed=t.seed, dist=env.dist, sample_weights=weights,
                               repeat=cfg.patches.train_num if cfg.patches.size else 1)
    frozen_bn: list[nn.Module] = []

    def enter_stage(stage: StagePlan) -> None:
        with user_input():
            frozen_bn[:] = freeze(core, stage.freeze, freeze_bn_stats=cfg.model.freeze_bn_stats)

    runner: nn.Module = torch.compile(core) if t.compile else core
    if env.dist.enabled:  # a frozen stage leaves parameters without gradients, which DDP must expect
        runner = nn.parallel.DistributedDataParallel(
            runner, device_ids=[env.device.index] if env.device.type == "cuda" else None,
            find_unused_parameters=any(s.freeze != "none" for s in stage_plans(cfg)))
    scaler = torch.amp.GradScaler(env.device.type) if env.amp_dtype == torch.float16 else None
    return TrainParts(
        model=runner, loader=train_loader, augment=_augment(cfg, data, env), loss_fn=_loss(cfg, data, env.device),
        optimizer=build_optimizer(core, **optimizer_kwargs(cfg.optim), head=head_parameters(core)),
        schedule=functools.partial(LrSchedule, **schedule_kwargs(cfg.schedule)),
        stages=Stages(stage_plans(cfg), enter=enter_stage, train_mode=lambda: frozen_bn_train_mode(core, frozen_bn)),
        evaluate=_validation(cfg, ema.module if ema else core, data, env),
        monitor=Monitor(monitor_key(cfg), mode=t.monitor_mode, patience=t.early_stopping),
        history=History(), save=lambda kind, loop: None,
        compute=Compute(device=env.device, amp_dtype=env.amp_dtype, scaler=scaler, channels_last=env.channels_last,
                        uses_features=cfg.model.fusion != "none"),
        rules=StepRules(accumulate=t.accumulate, grad_clip=t.grad_clip, checkpoint_steps=t.checkpoint_steps),
        control=Control(progress=progress, on_epoch_end=list(callbacks), after_step=[ema.update] if ema else []),
        size_at=functools.partial(progressive_size, start=t.resize_from, full=input_size(cfg, bundle.image_size),
                                  epochs=sum(s.epochs for s in stage_plans(cfg)), until=t.resize_until)
        if t.resize_from else None)


def _augment(cfg: Config, data: RunData, env: RunEnv) -> Any:
    task, bundle, seed = data.task, data.bundle, cfg.train.seed
    augment = BatchAugment(**augment_kwargs(cfg.augment), num_classes=task.num_outputs
                           if task.kind == "classification" else 0, mean=bundle.mean, std=bundle.std,
                           device=env.device, seed=seed + 1 + env.dist.rank)  # each process its own draws
    if cfg.patches.size:
        from resnetlab.data.patches import PatchAugment

        augment = PatchAugment(augment, size=cfg.patches.size, device=env.device, seed=seed + 2 + env.dist.rank)
    return augment


def _loss(cfg: Config, data: RunData, device: torch.device) -> Callable[..., torch.Tensor]:
    t, task = cfg.train, data.task
    if task.kind != "classification":
        return regression_loss("mse" if t.loss == "auto" else t.loss)
    class_weights = balanced_class_weights(data.bundle.train, task.num_outputs, device) \
        if t.class_weights == "balanced" else None
    return classification_loss(num_classes=task.num_outputs, label_smoothing=t.label_smoothing,
                               class_weights=class_weights, mpca_weight=t.mpca_loss, accuracy_weight=t.accuracy_loss)


def _evaluator(cfg: Config, core: nn.Module, data: RunData, env: RunEnv, split: Split, *,
               tta: bool = False, prefix: str = "val/") -> Evaluator:
    bundle = data.bundle
    batch_size = eval_batch_size(cfg, cfg.train.eval_batch_size or 2 * cfg.train.batch_size)
    return Evaluator(model=lambda: for_eval(core, cfg), split=split, task=data.task,
                     loader=make_loader(split, data.task, batch_size=batch_size, device=env.device, shuffle=False,
                                        dist=env.dist),
                     prepare=lambda images: normalize(images, bundle.mean, bundle.std),
                     amp_dtype=env.amp_dtype, channels_last=env.channels_last,
                     uses_features=cfg.model.fusion != "none", tta=tta, dist=env.dist, prefix=prefix)


def _validation(cfg: Config, core: nn.Module, data: RunData, env: RunEnv) -> Callable[[], dict[str, float]]:
    evaluator = _evaluator(cfg, core, data, env, data.bundle.val)

    def evaluate() -> dict[str, float]:
        try:
            return evaluator()
        except NonFiniteOutputs:
            # The last step of the epoch can blow the weights up after the last loss the loop checked.
            raise _advised(Diverged(None, cfg.optim.lr, what="the model's outputs on the validation split"),
                           cfg) from None

    return evaluate


def _checkpointer(cfg: Config, run_dir: Path, core: nn.Module, parts: TrainParts, data: RunData,
                  dist: DistInfo, *, ema: WeightEma | None = None) -> Checkpointer:
    """One map of every part with a state: last.pt saves and resume restores all of it; best.pt the
    weights (the weight average, when the run keeps one)."""
    bundle, task, history = data.bundle, data.task, parts.history
    meta = {"class_names": bundle.class_names, "mean": list(bundle.mean), "std": list(bundle.std),
            "channels": bundle.channels, "image_size": bundle.image_size, "task": task.kind,
            "target_stats": list(task.target_stats) if task.target_stats else None,
            "feature_dim": data.feature_dim,
            "feature_stats": [s.tolist() for s in bundle.feature_stats] if bundle.feature_stats else None,
            "config": to_dict(cfg)}
    stateful = {"model": core, "optimizer": parts.optimizer, "scaler": parts.compute.scaler,
                "monitor": parts.monitor, "history": history, "loader": parts.loader, "ema": ema}
    return Checkpointer(run_dir, stateful, per_process={"augment": parts.augment, "rng": GlobalRng()}, meta=meta,
                        slim={"model": ema.module if ema else core},
                        dist=dist, best_extra=lambda: {"metrics": dict(history.rows[-1]) if history.rows else {}},
                        on_saved=lambda: history.write(run_dir))


def _resume(checkpointer: Checkpointer, resume_from: Path, device: torch.device) -> LoopState:
    try:
        return LoopState(**checkpointer.restore(resume_from, map_location=device))
    except CheckpointMismatch:
        raise UserError(f"train.resume: {resume_from} does not fit the model of this config; resume with "
                        "the settings the run started with") from None


def _record_run(cfg: Config, run_dir: Path, data: RunData, env: RunEnv, core: nn.Module, parts: TrainParts) -> Any:
    """config.yaml, the data record, provenance and the banner; the TensorBoard logger if asked for."""
    bundle, num_params = data.bundle, _num_params(core)
    save_config(cfg, run_dir / "config.yaml")
    write_data_record(run_dir, bundle)
    write_json(run_dir / "provenance.json", provenance(device=env.device, data_hash=bundle.data_hash, extra={
        "precision": str(env.amp_dtype).replace("torch.", "") if env.amp_dtype else "fp32",
        "channels_last": env.channels_last, "world_size": env.dist.world_size, "num_params": num_params}))
    tb = None
    if cfg.output.tensorboard or cfg.output.mlflow:  # tb: TensorBoard and/or MLflow
        from resnetlab.evaluation.tracking import Tracking

        tb = Tracking(run_dir, model=core, params=flatten(to_dict(cfg)), tensorboard=cfg.output.tensorboard,
                      histograms=cfg.output.histograms, mlflow_uri=cfg.output.mlflow,
                      experiment=Path(cfg.output.dir).resolve().name)
        parts.control.on_epoch_end.append(tb.on_epoch)
        parts.control.on_step.append(tb.on_step)
        parts.control.log_steps = cfg.output.log_steps
    parts.control.progress.banner(f"resnetlab train → {run_dir}", _banner_rows(
        cfg, bundle, env.device, env.amp_dtype, env.channels_last, num_params, parts.augment, env.dist))
    return tb


def _num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _run(parts: TrainParts, state: LoopState, dist: DistInfo, run_dir: Path, cfg: Config) -> None:
    """The loop under a stop request; its errors worded in the settings that fix them."""
    try:
        with StopRequest() as stop:
            if dist.enabled:  # a signal to any process stops them all at the same step
                stop.agree = lambda requested: any_process(requested, dist, parts.compute.device)
            parts.control.stop = stop
            fit(parts, state)
    except Interrupted as stopped:
        stopped.run_dir = run_dir
        # Every process has written its last lines before any exits: torchrun ends the others when one does.
        barrier(dist)
        raise
    except RunDiverged:
        raise
    except Diverged as exc:
        raise _advised(exc, cfg) from None


def _report(cfg: Config, run_dir: Path, core: nn.Module, data: RunData, env: RunEnv, parts: TrainParts, tb: Any,
            *, train_seconds: float) -> TrainResult:
    """The best weights on val and test, the run's outputs, and its result."""
    dist, bundle, monitor, history = env.dist, data.bundle, parts.monitor, parts.history
    barrier(dist)
    best = load_checkpoint(run_dir / "best.pt", map_location="cpu")["model"] if dist.is_main else None
    core.load_state_dict(broadcast_object(best, dist))  # no shared file system needed across nodes
    splits = {name: split for name, split in (("val", bundle.val), ("test", bundle.test))
              if split is not None and len(split) > 0}
    results = final_evaluation({name: _evaluator(cfg, core, data, env, split, tta=cfg.train.tta,
                                                 prefix=f"{name}/") for name, split in splits.items()})
    rows = history.rows
    resources = {"wall_seconds": round(train_seconds, 2),
                 "seconds_per_epoch": round(float(np.mean([r["seconds"] for r in rows])), 3) if rows else None,
                 "images_per_s": round(float(np.mean([r["images_per_s"] for r in rows])), 1) if rows else None,
                 "peak_rss_mb": round(peak_rss_mb(), 1), "peak_device_mb": peak_device_mb(env.device),
                 "device": str(env.device), "num_params": _num_params(core)}
    try:
        if dist.is_main:
            write_run_outputs(cfg, run_dir, bundle=bundle, task=data.task, results=results, history=list(rows),
                              monitor=monitor, resources=resources, tb=tb, model=core)
            if tb is not None:
                tb.finish({name: result.scalars for name, result in results.items()})
            parts.control.progress.line(final_line(run_dir, monitor, results))
    finally:
        if tb is not None:
            tb.close()
    return TrainResult(run_dir=run_dir, monitor=monitor.key, best=monitor.best, best_epoch=monitor.best_epoch,
                       val=results["val"].scalars if "val" in results else {},
                       test=results["test"].scalars if "test" in results else None, history=list(rows))



def _banner_rows(cfg: Config, bundle: DataBundle, device: torch.device, amp_dtype: torch.dtype | None,
                 channels_last: bool, num_params: int, augment: BatchAugment, dist: DistInfo) -> list[tuple[str, str]]:
    test = len(bundle.test) if bundle.test is not None else 0
    precision = str(amp_dtype).replace("torch.", "") if amp_dtype else "fp32"
    stages = " → ".join(f"{s.epochs} ep freeze={s.freeze} lr={s.lr:g}" for s in stage_plans(cfg))
    m = cfg.model
    targets = f"{len(bundle.class_names)} classes" if bundle.class_names else "score regression"
    start = f"pretrained {m.pretrained}" if not m.weights else \
        f"weights {m.weights}" + (f" (over {m.pretrained})" if m.pretrained != "none" else "")
    return [
        ("data", (f"{bundle.source}: {len(bundle.train)} train / {len(bundle.val)} val / {test} test, "
                 f"{bundle.channels}x{bundle.image_size}x{bundle.image_size}, "
                 f"{targets}, {len(bundle.skipped)} skipped")),
        ("model", f"{m.name} ({num_params:,} params), stem {m.stem}, {start}" + _variant_words(cfg)),
        ("optim", (f"{cfg.optim.name} lr {cfg.optim.lr:g}{lr_words(cfg)}, wd {cfg.optim.weight_decay:g}, "
                  f"schedule {cfg.schedule.name} (warmup {cfg.schedule.warmup_epochs:g} ep)")),
        ("train", (f"{stages}, batch {cfg.train.batch_size}x{cfg.train.accumulate}, monitor {monitor_key(cfg)}, "
                  f"early stop {cfg.train.early_stopping or 'off'}"
                  + (f", weight EMA {cfg.train.ema:g}" if cfg.train.ema else "")
                  + (f", images {cfg.train.resize_from}→{input_size(cfg, bundle.image_size)} px over "
                     f"{cfg.train.resize_until:.0%} of the epochs" if cfg.train.resize_from else ""))),
        ("augment", augment.summary()),
        ("device", (f"{device}, {precision}, channels_last {channels_last}, {torch.get_num_threads()} threads, "
                   f"{dist.world_size} process(es)")),
    ]



def _variant_words(cfg: Config) -> str:
    m, p = cfg.model, cfg.patches
    words = [w for on, w in ((m.multiscale, "multi-scale"), (m.attention != "none", f"attention {m.attention}"),
                             (m.fusion != "none", f"fusion {m.fusion} (visual {m.visual_dim})"),
                             (bool(p.size), f"{p.size}px patches x{p.train_num} train / x{p.test_num} test"))
             if on]
    return "".join(f", {w}" for w in words)



