"""``train``: one run from config to run folder, with resume, stop requests and out-of-memory retries."""

from __future__ import annotations

import dataclasses
import gc
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from resnetlab.api.assemble import (
    Task,
    balanced_class_weights,
    balanced_sample_weights,
    build_model,
    clip_groups,
    eval_batch_size,
    for_eval,
    frozen_bn_train_mode,
    gather_outputs,
    head_parameters,
    input_size,
    make_loader,
    monitor_key,
    setting_warnings,
    stage_plans,
    validate_config,
)
from resnetlab.baselines.hog_svm import MODEL_NAME as BASELINE_MODEL
from resnetlab.config import Config, build_config, flatten, save_config, to_dict
from resnetlab.data.augment import BatchAugment, normalize
from resnetlab.data.bundle import DataBundle, Split
from resnetlab.data.sources import load_data
from resnetlab.errors import UserError
from resnetlab.evaluation.inference import run_model
from resnetlab.models import freeze
from resnetlab.training.checkpoint import atomic_save, load_checkpoint
from resnetlab.training.device import (
    load_rng_state,
    resolve_device,
    resolve_precision,
    rng_state,
    seed_everything,
    set_threads,
    use_channels_last,
)
from resnetlab.training.distributed import (
    DistInfo,
    any_process,
    barrier,
    broadcast_object,
    gather_objects,
    init_distributed,
)
from resnetlab.training.history import History
from resnetlab.training.loop import Diverged, LoopState, OutOfMemory, StagePlan, TrainParts, fit
from resnetlab.training.losses import classification_loss, regression_loss
from resnetlab.training.monitor import Monitor
from resnetlab.training.optim import build_optimizer
from resnetlab.training.progress import ProgressReporter
from resnetlab.training.run_folder import (
    default_run_name,
    make_run_dir,
    peak_device_mb,
    peak_rss_mb,
    provenance,
    write_data_record,
    write_json,
)
from resnetlab.training.signals import Interrupted, StopRequest


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
    cfg = build_config(overrides, base=to_dict(config) if config is not None else None)
    if cfg.model.name == BASELINE_MODEL:
        return _fit_baseline(cfg)
    validate_config(cfg)
    seed_everything(cfg.train.seed, deterministic=cfg.train.deterministic)
    set_threads(cfg.train.threads)
    device = resolve_device(cfg.train.device)
    amp_dtype = resolve_precision(cfg.train.precision, device)
    channels_last = use_channels_last(cfg.train.channels_last, amp_dtype, device)
    dist = init_distributed(device)

    run_dir, resume_from = _run_dir(cfg, dist)
    if resume_from is not None:
        cfg = _resumed_config(cfg, resume_from)
    fresh = dist.is_main and resume_from is None and not any(run_dir.iterdir())
    progress = ProgressReporter(enabled=dist.is_main and cfg.output.progress,
                                log_file=run_dir / "train.log" if dist.is_main else None,
                                log_every=cfg.train.log_every)
    try:
        while True:
            try:
                return _train(cfg, run_dir=run_dir, resume_from=resume_from, device=device, amp_dtype=amp_dtype,
                              channels_last=channels_last, dist=dist, progress=progress, callbacks=callbacks)
            except OutOfMemory:
                if not cfg.train.auto_batch or cfg.train.batch_size < 2 or resume_from is not None or dist.enabled:
                    raise
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
    import difflib

    groups = None if val.groups is None else np.asarray(val.groups)
    try:
        names = [f"val/{name}" for name in task.metric_names(val.targets, groups)]
    except ValueError as exc:
        raise UserError(f"validation metrics cannot be computed on {len(val)} validation image(s) ({exc}); "
                        "raise data.val_ratio or add images") from None
    if key not in names:
        close = difflib.get_close_matches(key, names, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
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
    try:  # memory-mapped: the tensors stay on disk, only the settings are read
        checkpoint = load_checkpoint(path, mmap=True)
    except UserError:
        checkpoint = load_checkpoint(path)  # names what is wrong with the file (or reads what mmap cannot)
    return checkpoint.get("config")


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
    result = train_hog_svm(cfg.data, out_dir=cfg.output.dir, name=cfg.output.name,
                           reuse_folder=cfg.train.resume == "auto", workers=cfg.train.threads or None, log=log)
    return TrainResult(run_dir=result.run_dir, monitor=MONITOR, best=result.val["accuracy"], best_epoch=None,
                       val=result.val, test=result.test)


def _network_settings(cfg: Config) -> list[str]:
    """Keys set away from their defaults that only a network uses (the optimizer, epochs, ...)."""
    default = build_config([])
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



def _train(cfg: Config, *, run_dir: Path, resume_from: Path | None, device: torch.device,
           amp_dtype: torch.dtype | None, channels_last: bool, dist: DistInfo,
           progress: ProgressReporter, callbacks: Sequence[Callable[[dict[str, Any]], None]] = ()) -> TrainResult:
    wall_start = time.perf_counter()
    bundle = load_data(cfg.data, log=progress.line)
    task = Task(cfg.data.task, bundle.class_names, bundle.target_stats)
    if task.kind == "classification" and len(task.class_names) < 2:
        raise UserError(f"data.source={cfg.data.source} has {len(task.class_names)} class "
                        f"({', '.join(task.class_names)}); classification needs at least 2: add another class")
    if len(bundle.val) == 0:
        raise UserError("the validation split is empty; raise data.val_ratio or add a val/ folder")
    _check_monitor(monitor_key(cfg), task, bundle.val)

    feature_dim = 0 if bundle.train.features is None else int(bundle.train.features.shape[1])
    model = build_model(cfg.model, num_outputs=task.num_outputs, in_channels=bundle.channels,
                        image_size=input_size(cfg, bundle.image_size), feature_dim=feature_dim,
                        log=progress.line).to(device)
    for warning in setting_warnings(cfg, channels=bundle.channels):
        progress.line(warning)
    if dist.enabled and cfg.train.sync_bn:  # before the optimizer sees the BatchNorm parameters
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    core = model
    num_params = sum(p.numel() for p in core.parameters())

    # ---- parts around the loop
    weights = balanced_sample_weights(bundle.train, task.num_outputs) if cfg.train.balanced_sampler else None
    train_loader = make_loader(bundle.train, task, batch_size=cfg.train.batch_size, device=device, shuffle=True,
                           seed=cfg.train.seed, dist=dist, sample_weights=weights,
                           repeat=cfg.patches.train_num if cfg.patches.size else 1)
    eval_bs = eval_batch_size(cfg, cfg.train.eval_batch_size or 2 * cfg.train.batch_size)
    val_loader = make_loader(bundle.val, task, batch_size=eval_bs, device=device, shuffle=False, dist=dist)
    augment = BatchAugment(cfg.augment, num_classes=task.num_outputs if task.kind == "classification" else 0,
                           mean=bundle.mean, std=bundle.std, device=device,
                           seed=cfg.train.seed + 1 + dist.rank)  # each process its own draws
    if cfg.patches.size:
        from resnetlab.data.patches import PatchAugment

        augment = PatchAugment(augment, size=cfg.patches.size, device=device, seed=cfg.train.seed + 2 + dist.rank)
    uses_features = cfg.model.fusion != "none"
    if task.kind == "classification":
        class_weights = balanced_class_weights(bundle.train, task.num_outputs, device) \
            if cfg.train.class_weights == "balanced" else None
        loss_fn = classification_loss(num_classes=task.num_outputs, label_smoothing=cfg.train.label_smoothing,
                                      class_weights=class_weights, mpca_weight=cfg.train.mpca_loss,
                                      accuracy_weight=cfg.train.accuracy_loss)
    else:
        loss_fn = regression_loss("mse" if cfg.train.loss == "auto" else cfg.train.loss)
    optimizer = build_optimizer(core, cfg.optim, head=head_parameters(core))
    scaler = torch.amp.GradScaler(device.type) if amp_dtype == torch.float16 else None
    monitor = Monitor(monitor_key(cfg), mode=cfg.train.monitor_mode, patience=cfg.train.early_stopping)
    history = History()
    stages = stage_plans(cfg)

    runner: nn.Module = core
    if cfg.train.compile:
        runner = torch.compile(runner)
    if dist.enabled:
        runner = nn.parallel.DistributedDataParallel(
            runner, device_ids=[device.index] if device.type == "cuda" else None)

    prepare = lambda images: normalize(images, bundle.mean, bundle.std)  # noqa: E731
    frozen_bn: list[nn.Module] = []

    def set_stage(stage: StagePlan) -> None:
        frozen_bn.clear()
        frozen_bn.extend(freeze(core, stage.freeze, freeze_bn_stats=cfg.model.freeze_bn_stats))

    def evaluate_val() -> dict[str, float]:
        out = run_model(for_eval(core, cfg), val_loader, prepare=prepare, amp_dtype=amp_dtype,
                        channels_last=channels_last, uses_features=uses_features)
        out = gather_outputs(out, dist)
        if not np.isfinite(out.outputs).all():
            # The last step of the epoch can blow the weights up after the last loss the loop checked.
            raise Diverged(f"the model's outputs on the validation split became NaN or infinite; lower optim.lr "
                           f"(now {cfg.optim.lr:g}), set train.grad_clip=1.0 or train.precision=fp32; last.pt, if "
                           "any, holds the previous epoch")
        scalars, _ = task.metrics(out.outputs, out.targets, clip_groups(bundle.val, out))
        return {f"val/{k}": float(v) for k, v in scalars.items() if isinstance(v, (int, float))}

    meta = {"class_names": bundle.class_names, "mean": list(bundle.mean), "std": list(bundle.std),
            "channels": bundle.channels, "image_size": bundle.image_size, "task": task.kind,
            "target_stats": list(task.target_stats) if task.target_stats else None,
            "feature_dim": feature_dim,
            "feature_stats": [s.tolist() for s in bundle.feature_stats] if bundle.feature_stats else None,
            "config": to_dict(cfg)}

    def save(kind: str, loop: dict[str, Any]) -> None:
        # Every process draws its own augmentation and random numbers, so each one's state is kept
        # (a collective: the loop saves at the same step on every process).
        draws = gather_objects({"augment": augment.state_dict(), "rng": rng_state()}, dist)
        if dist.is_main:
            payload = {"model": core.state_dict(), **meta, "epoch": loop["epoch"], "loop": loop,
                       "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict() if scaler else None,
                       "monitor": monitor.state_dict(), "history": history.state_dict(),
                       "loader": train_loader.state_dict(), **draws[0], "per_process": draws}
            atomic_save(payload, run_dir / f"{kind}.pt")
            history.write(run_dir)
        # The others wait for the file: if one of them exits (a stop), torchrun ends the writer too.
        barrier(dist)

    # ---- resume
    state = LoopState()
    if resume_from is not None:
        ckpt = load_checkpoint(resume_from, map_location=device)
        try:
            core.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
        except (KeyError, RuntimeError, ValueError):
            raise UserError(f"train.resume: {resume_from} does not fit the model of this config; resume with "
                            "the settings the run started with") from None
        if scaler is not None and ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        monitor.load_state_dict(ckpt["monitor"])
        history.load_state_dict(ckpt["history"])
        train_loader.load_state_dict(ckpt["loader"])
        # This process's own draws when the run had as many processes; else the first one's.
        per_process = ckpt.get("per_process") or []
        draws = per_process[dist.rank] if len(per_process) == dist.world_size else ckpt
        augment.load_state_dict(draws["augment"])
        load_rng_state(draws["rng"])
        state = LoopState(**ckpt["loop"])
        progress.line(f"resuming {run_dir} at epoch {state.epoch + 1}, batch {train_loader.position} "
                      f"(step {state.step})")

    # ---- record what this run is
    tb = None
    if dist.is_main:
        save_config(cfg, run_dir / "config.yaml")
        write_data_record(run_dir, bundle)
        write_json(run_dir / "provenance.json", provenance(device=device, data_hash=bundle.data_hash, extra={
            "precision": str(amp_dtype).replace("torch.", "") if amp_dtype else "fp32",
            "channels_last": channels_last, "world_size": dist.world_size, "num_params": num_params}))
        if cfg.output.tensorboard or cfg.output.mlflow:  # tb: TensorBoard and/or MLflow
            from resnetlab.evaluation.tracking import Tracking

            tb = Tracking(run_dir, model=core, params=flatten(to_dict(cfg)), tensorboard=cfg.output.tensorboard,
                          histograms=cfg.output.histograms, mlflow_uri=cfg.output.mlflow,
                          experiment=Path(cfg.output.dir).resolve().name)
        progress.banner(f"resnetlab train → {run_dir}", _banner_rows(cfg, bundle, device, amp_dtype, channels_last,
                                                                     num_params, augment, dist))

    hooks = list(callbacks)
    if tb is not None:
        hooks.append(tb.on_epoch)

    parts = TrainParts(model=runner, loader=train_loader, augment=augment, loss_fn=loss_fn, optimizer=optimizer,
                       schedule=cfg.schedule, stages=stages, evaluate=evaluate_val, monitor=monitor,
                       history=history, save=save, set_stage=set_stage,
                       set_train_mode=lambda: frozen_bn_train_mode(core, frozen_bn), progress=progress,
                       device=device, amp_dtype=amp_dtype, scaler=scaler, channels_last=channels_last,
                       accumulate=cfg.train.accumulate, grad_clip=cfg.train.grad_clip,
                       checkpoint_steps=cfg.train.checkpoint_steps, uses_features=uses_features,
                       on_epoch_end=hooks, on_step=[tb.on_step] if tb is not None else [],
                       log_steps=cfg.output.log_steps)
    try:
        with StopRequest() as stop:
            if dist.enabled:  # a signal to any process stops them all at the same step
                stop.agree = lambda requested: any_process(requested, dist, device)
            parts.stop = stop
            fit(parts, state)
    except Interrupted as stopped:
        stopped.run_dir = run_dir
        if tb is not None:
            tb.close()
        raise
    except BaseException:
        if tb is not None:
            tb.close()
        raise
    train_seconds = time.perf_counter() - wall_start

    # ---- final evaluation with the best weights, on val and test
    barrier(dist)
    best = load_checkpoint(run_dir / "best.pt", map_location="cpu")["model"] if dist.is_main else None
    core.load_state_dict(broadcast_object(best, dist))  # no shared file system needed across nodes
    results: dict[str, Any] = {}
    for name, split in (("val", bundle.val), ("test", bundle.test)):
        if split is None or len(split) == 0:
            continue
        loader = make_loader(split, task, batch_size=eval_bs, device=device, shuffle=False, dist=dist)
        out = gather_outputs(run_model(for_eval(core, cfg), loader, prepare=prepare, amp_dtype=amp_dtype,
                                        channels_last=channels_last, tta=cfg.train.tta,
                                        uses_features=uses_features), dist)
        results[name] = (out, *task.metrics(out.outputs, out.targets, clip_groups(split, out)))

    rows = history.rows
    resources = {"wall_seconds": round(train_seconds, 2),
                 "seconds_per_epoch": round(float(np.mean([r["seconds"] for r in rows])), 3) if rows else None,
                 "images_per_s": round(float(np.mean([r["images_per_s"] for r in rows])), 1) if rows else None,
                 "peak_rss_mb": round(peak_rss_mb(), 1), "peak_device_mb": peak_device_mb(device),
                 "device": str(device), "num_params": num_params}
    if dist.is_main:
        _write_outputs(cfg, run_dir, bundle, task, results, history, monitor, resources, tb, core)
        if tb is not None:
            tb.finish({name: result[1] for name, result in results.items()})
        progress.line(_final_line(run_dir, monitor, results))
    if tb is not None:
        tb.close()
    return TrainResult(run_dir=run_dir, monitor=monitor.key, best=monitor.best, best_epoch=monitor.best_epoch,
                       val=results["val"][1] if "val" in results else {},
                       test=results["test"][1] if "test" in results else None, history=list(rows))



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
        ("data", f"{bundle.source}: {len(bundle.train)} train / {len(bundle.val)} val / {test} test, "
                 f"{bundle.channels}x{bundle.image_size}x{bundle.image_size}, "
                 f"{targets}, {len(bundle.skipped)} skipped"),
        ("model", f"{m.name} ({num_params:,} params), stem {m.stem}, {start}" + _variant_words(cfg)),
        ("optim", f"{cfg.optim.name} lr {cfg.optim.lr:g} wd {cfg.optim.weight_decay:g}, schedule {cfg.schedule.name} "
                  f"(warmup {cfg.schedule.warmup_epochs:g} ep)"),
        ("train", f"{stages}, batch {cfg.train.batch_size}x{cfg.train.accumulate}, monitor {monitor_key(cfg)}, "
                  f"early stop {cfg.train.early_stopping or 'off'}"),
        ("augment", augment.summary()),
        ("device", f"{device}, {precision}, channels_last {channels_last}, {torch.get_num_threads()} threads, "
                   f"{dist.world_size} process(es)"),
    ]



def _variant_words(cfg: Config) -> str:
    m, p = cfg.model, cfg.patches
    words = [w for on, w in ((m.multiscale, "multi-scale"), (m.attention != "none", f"attention {m.attention}"),
                             (m.fusion != "none", f"fusion {m.fusion} (visual {m.visual_dim})"),
                             (bool(p.size), f"{p.size}px patches x{p.train_num} train / x{p.test_num} test"))
             if on]
    return "".join(f", {w}" for w in words)



def _final_line(run_dir: Path, monitor: Monitor, results: dict[str, Any]) -> str:
    parts = [f"done: best {monitor.key} {monitor.best:.4f} at epoch {monitor.best_epoch}"]
    for name in ("val", "test"):
        if name in results:
            scalars = results[name][1]
            key = "accuracy" if "accuracy" in scalars else "srcc"
            parts.append(f"{name}/{key} {scalars[key]:.4f}")
    return "  ".join(parts) + f"  → {run_dir}"



def _write_outputs(cfg: Config, run_dir: Path, bundle: DataBundle, task: Task, results: dict[str, Any],
                   history: History, monitor: Monitor, resources: dict[str, Any], tb: Any, model: nn.Module) -> None:
    from resnetlab.evaluation.report import write_report

    metrics: dict[str, Any] = {"best_epoch": monitor.best_epoch, "monitor": monitor.key, "resources": resources}
    for name, (out, scalars, detail) in results.items():
        metrics[name] = detail.to_dict() if task.kind == "classification" else {"scalars": scalars}
    write_json(run_dir / "metrics.json", metrics)
    val, test = results.get("val"), results.get("test")
    key = "accuracy" if task.kind == "classification" else "srcc"
    second = "mpca" if task.kind == "classification" else "plcc"
    best_row = next((r for r in history.rows if r["epoch"] == monitor.best_epoch), {})
    write_json(run_dir / "final_results.json", {
        f"test_{key}": test[1].get(key) if test else None,
        f"test_{second}": test[1].get(second) if test else None,
        f"best_val_{key}": best_row.get(f"val/{key}"),
        f"best_val_{second}": best_row.get(f"val/{second}"),
        "best_epoch": monitor.best_epoch, "monitor": monitor.key, "monitor_best": monitor.best,
        "config": to_dict(cfg)})
    if cfg.output.plots:
        _write_plots(run_dir, bundle, task, val, history, monitor, model, patches=bool(cfg.patches.size))
    if tb is not None and val is not None and task.kind == "classification":
        tb.log_figure_confusion(val[2].confusion, bundle.class_names, monitor.best_epoch or 0)
    write_report(run_dir)



def _write_gradcam(path: Path, model: nn.Module, bundle: DataBundle, out: Any, *, patches: bool) -> None:
    """The report's Grad-CAM grid of a few right and wrong validation images, with the best weights."""
    from resnetlab.evaluation import gradcam, plots

    if patches:  # the network sees patches, the report's images are whole: a map of either would mislead
        plots.plot_message("not drawn for patch-averaged evaluation (patches.size); use resnetlab explain on "
                           "patch-sized images", title="Grad-CAM", path=path)
        return
    features = bundle.val.features[out.index] if bundle.val.features is not None else None
    gradcam.report_examples(model, np.asarray(bundle.val.images[out.index]), out.targets, out.outputs,
                            bundle.class_names, mean=bundle.mean, std=bundle.std, path=path, features=features)



def _write_plots(run_dir: Path, bundle: DataBundle, task: Task, val: Any, history: History,
                 monitor: Monitor, model: nn.Module, *, patches: bool) -> None:
    from resnetlab.evaluation import plots

    plots_dir = run_dir / "plots"
    plots_dir.mkdir(exist_ok=True)
    if val is None:
        return
    out, scalars, detail = val
    if task.kind == "classification":
        probs = torch.from_numpy(out.outputs).softmax(dim=1).numpy()
        plots.write_classification_plots(detail, history.rows, monitor=monitor.key, plots_dir=plots_dir,
                                         images=np.asarray(bundle.val.images[out.index]), probs=probs,
                                         targets=out.targets, best_epoch=monitor.best_epoch)
        _write_gradcam(plots_dir / "gradcam.png", model, bundle, out, patches=patches)
    else:
        plots.write_regression_plots(history.rows, monitor=monitor.key, plots_dir=plots_dir, pred=detail,
                                     target=np.asarray(bundle.val.targets)[out.index],
                                     best_epoch=monitor.best_epoch)

