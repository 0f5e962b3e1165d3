"""The Python face of resnetlab: ``train``, ``evaluate``, ``predict``, ``summary``.

This module is the composition root: it turns the validated config into explicit typed
arguments for the data, model, train and evaluate packages, which never see the config
as a whole. The command line is a thin layer over these functions.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from resnetlab.config import Config, build_config, save_config, to_dict
from resnetlab.config.schema import DataConfig, ModelConfig
from resnetlab.data.augment import BatchAugment, normalize
from resnetlab.data.bundle import DataBundle, Split
from resnetlab.data.loader import BatchLoader
from resnetlab.data.sources import load_data
from resnetlab.errors import UserError
from resnetlab.evaluate.inference import Outputs, run_model
from resnetlab.evaluate.metrics import classification_metrics
from resnetlab.evaluate.regression_metrics import regression_metrics
from resnetlab.models import create_model, freeze, load_pretrained, load_weights_file
from resnetlab.train.checkpoint import atomic_save, load_checkpoint
from resnetlab.train.device import (
    load_rng_state,
    resolve_device,
    resolve_precision,
    rng_state,
    seed_everything,
    set_threads,
    use_channels_last,
)
from resnetlab.train.distributed import DistInfo, barrier, broadcast_object, gather_objects, init_distributed
from resnetlab.train.history import History
from resnetlab.train.loop import LoopState, OutOfMemory, StagePlan, TrainParts, fit
from resnetlab.train.losses import classification_loss, regression_loss
from resnetlab.train.monitor import Monitor
from resnetlab.train.optim import build_optimizer
from resnetlab.train.progress import ProgressReporter
from resnetlab.train.run_folder import (
    default_run_name,
    make_run_dir,
    peak_device_mb,
    peak_rss_mb,
    provenance,
    write_json,
)
from resnetlab.train.signals import Interrupted, StopRequest


@dataclass
class TrainResult:
    run_dir: Path
    monitor: str
    best: float | None
    best_epoch: int | None
    val: dict[str, float]
    test: dict[str, float] | None
    history: list[dict[str, Any]] = field(default_factory=list)


# ============================================================================ building blocks


def build_model(cfg: ModelConfig, *, num_outputs: int, in_channels: int, image_size: int,
                feature_dim: int = 0) -> nn.Module:
    """The adapter from config to the model factories' keyword arguments.

    ``image_size`` is what the network sees (the patch size under patch sampling);
    ``feature_dim`` the number of side-feature columns a fusion model takes.
    """
    # ImageNet weights were learned with the 7x7 stem, so auto keeps it when they are loaded.
    small = image_size <= 64 and cfg.pretrained == "none" and not cfg.weights
    stem = cfg.stem if cfg.stem != "auto" else ("cifar" if small else "imagenet")
    kwargs: dict[str, Any] = {"num_classes": num_outputs, "in_channels": in_channels,
                              "zero_init_residual": cfg.zero_init_residual, "drop_rate": cfg.drop_rate}
    if not cfg.name.startswith("resnet") or cfg.name in ("resnet18", "resnet34", "resnet50", "resnet101",
                                                        "resnet152"):
        kwargs["stem"] = stem
    if cfg.attention == "blocks":
        kwargs["block_attention"] = True
    model = create_model(cfg.name, **kwargs)
    if cfg.pretrained == "imagenet":
        load_pretrained(model, arch=cfg.name)
    if cfg.weights:
        load_weights_file(model, cfg.weights)
    if cfg.multiscale or cfg.attention == "fused":
        from resnetlab.models import with_multiscale

        model = with_multiscale(model, num_classes=num_outputs, project_dim=cfg.multiscale_dim,
                                attention=cfg.attention == "fused")
    if cfg.fusion != "none":
        from resnetlab.models import with_fusion

        model = with_fusion(model, num_classes=num_outputs, feature_dim=feature_dim, visual_dim=cfg.visual_dim,
                            fusion=cfg.fusion, drop_rate=cfg.drop_rate)
    return model


def _input_size(cfg: Config, image_size: int) -> int:
    """The network's input size: the patch size when patches are cut, else the cached image size."""
    return cfg.patches.size or image_size


def _for_eval(model: nn.Module, cfg: Config) -> nn.Module:
    """The model as evaluated: with patch sampling, the mean over ``patches.test_num`` patches per image."""
    if not cfg.patches.size:
        return model
    from resnetlab.data.patches import PatchAverage

    return PatchAverage(model, size=cfg.patches.size, count=cfg.patches.test_num, random=cfg.patches.test_random,
                        seed=cfg.train.seed)


def _eval_batch_size(cfg: Config, batch_size: int) -> int:
    # Each image becomes test_num patches, so fewer images per batch keep the memory the same.
    return max(1, batch_size // cfg.patches.test_num) if cfg.patches.size else batch_size


def _monitor_key(cfg: Config) -> str:
    # The schema's default monitor is a classification metric; regression ranks by SRCC (seed 004).
    if cfg.data.task == "regression" and cfg.train.monitor == "val/accuracy":
        return "val/srcc"
    return cfg.train.monitor


def _stages(cfg: Config) -> list[StagePlan]:
    if not cfg.train.stages:
        return [StagePlan(epochs=cfg.train.epochs, freeze=cfg.model.freeze, lr=cfg.optim.lr)]
    return [StagePlan(epochs=s.epochs, freeze=s.freeze, lr=s.lr if s.lr is not None else cfg.optim.lr)
            for s in cfg.train.stages]


def _validate(cfg: Config) -> None:
    """Cross-field checks that no single field can make."""
    for spec in [cfg.model.freeze] + [s.freeze for s in cfg.train.stages]:
        if spec not in ("none", "backbone") and not (spec.startswith("stages:") and spec[7:].isdigit()):
            raise UserError(f"model.freeze={spec} is not understood; use none, backbone or stages:N "
                            "(stem plus the first N stages)")
    if cfg.data.task == "regression" and (cfg.augment.mixup or cfg.augment.cutmix):
        pass  # mixing regression targets is linear and well defined
    if cfg.train.loss in ("mse", "l1", "smooth_l1") and cfg.data.task == "classification":
        raise UserError(f"train.loss={cfg.train.loss} is a regression loss; use cross_entropy or set data.task=regression")
    if cfg.train.loss == "cross_entropy" and cfg.data.task == "regression":
        raise UserError("train.loss=cross_entropy needs classes; use mse, l1 or smooth_l1 with data.task=regression")
    if len(cfg.optim.betas) != 2:
        raise UserError(f"optim.betas takes two numbers, e.g. optim.betas=[0.9,0.999]; got {cfg.optim.betas}")
    for key in ("resized_crop_scale", "resized_crop_ratio", "scale"):
        value = getattr(cfg.augment, key)
        if len(value) != 2 or value[0] > value[1] or value[0] <= 0:
            raise UserError(f"augment.{key} takes [low, high] with 0 < low <= high; got {value}")
    _validate_beyond_labels(cfg)
    _validate_model_inputs(cfg)


def _validate_beyond_labels(cfg: Config) -> None:
    """Patches, side-feature fusion and the class-only options of regression."""
    p, m, d = cfg.patches, cfg.model, cfg.data
    if not p.size and (p.train_num > 1 or p.test_num > 1 or p.test_random):
        raise UserError("patches.train_num/test_num/test_random need patches.size (the patch side in pixels), "
                        "e.g. patches.size=24")
    if p.size > d.image_size:
        raise UserError(f"patches.size={p.size} is larger than data.image_size={d.image_size}; lower patches.size "
                        "or raise data.image_size")
    if m.fusion != "none" and not d.feature_columns:
        raise UserError(f"model.fusion={m.fusion} needs side features; set data.feature_columns to CSV columns, "
                        "e.g. data.feature_columns=[x,y]")
    if d.feature_columns and m.fusion == "none":
        raise UserError(f"data.feature_columns={d.feature_columns} would be ignored with model.fusion=none; "
                        "set model.fusion=concat (or bilinear, add)")
    if m.fusion == "add" and m.visual_dim != len(d.feature_columns):
        raise UserError(f"model.fusion=add needs model.visual_dim equal to the {len(d.feature_columns)} feature "
                        f"columns (got {m.visual_dim}); set model.visual_dim={len(d.feature_columns)} or use concat")
    if d.task == "regression":
        used = [k for k, on in (("class_weights", cfg.train.class_weights != "none"),
                                ("balanced_sampler", cfg.train.balanced_sampler),
                                ("mpca_loss", cfg.train.mpca_loss > 0), ("accuracy_loss", cfg.train.accuracy_loss > 0))
                if on]
        if used:
            raise UserError(f"train.{used[0]} needs classes; remove it or set data.task=classification")


def _validate_model_inputs(cfg: Config) -> None:
    """What would otherwise fail only after the data is loaded: model name, weights, freeze specs, betas."""
    import difflib

    from resnetlab.models import get_pretrained, is_model, list_models

    m = cfg.model
    if not all(0.0 <= b < 1.0 for b in cfg.optim.betas):
        raise UserError(f"optim.betas takes two numbers in [0, 1), e.g. optim.betas=[0.9,0.999]; got {cfg.optim.betas}")
    if not is_model(m.name):
        close = difflib.get_close_matches(m.name, list_models(), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise UserError(f"model.name: unknown model '{m.name}'{hint}; resnetlab summary --list shows all")
    if m.pretrained != "none":
        get_pretrained(m.name, m.pretrained)
    if m.weights and not Path(m.weights).expanduser().is_file():
        raise UserError(f"model.weights: {m.weights} not found; give a .pt/.pth file (a state dict or a run's best.pt)")
    if m.freeze != "none" and cfg.train.stages:
        raise UserError(f"model.freeze={m.freeze} is ignored when train.stages is set; give each stage its "
                        f"freeze, e.g. train.stages=[{{epochs: 1, freeze: {m.freeze}}}, {{epochs: 5}}]")
    specs = [("model.freeze", m.freeze)] + [(f"train.stages[{i}].freeze", s.freeze)
                                            for i, s in enumerate(cfg.train.stages)]
    if any(spec.startswith("stages:") for _, spec in specs):
        with torch.device("meta"):  # shapes only: no memory, no time
            stages = len(create_model(m.name).get_stages())
        for key, spec in specs:
            if spec.startswith("stages:") and int(spec[7:]) > stages:
                raise UserError(f"{key}={spec}: {m.name} has {stages} stages; use stages:0 to stages:{stages}, "
                                "or backbone")


@dataclass
class Task:
    """What the outputs mean: class logits or a (normalized) score."""

    kind: str
    class_names: list[str]
    target_stats: tuple[float, float] | None = None

    @property
    def num_outputs(self) -> int:
        return len(self.class_names) if self.kind == "classification" else 1

    def encode_targets(self, targets: np.ndarray) -> np.ndarray:
        if self.kind == "regression" and self.target_stats is not None:
            mean, std = self.target_stats
            return ((targets - mean) / std).astype(np.float32)
        return targets

    def decode_scores(self, outputs: np.ndarray) -> np.ndarray:
        scores = outputs.reshape(-1)
        if self.target_stats is not None:
            mean, std = self.target_stats
            scores = scores * std + mean
        return scores

    def metrics(self, outputs: np.ndarray, targets: np.ndarray,
                groups: np.ndarray | None = None) -> tuple[dict[str, float], Any]:
        """Named scalars and the full report (classification) or scores (regression).

        With ``groups`` (the clip of each frame), clip-level ``clip_*`` scalars are added.
        """
        from resnetlab.evaluate.clips import clip_classification_metrics, clip_regression_metrics

        if self.kind == "classification":
            logits = torch.from_numpy(outputs)
            loss = float(nn.functional.cross_entropy(logits, torch.from_numpy(targets).long()))
            report = classification_metrics(outputs, targets, class_names=self.class_names, loss=loss)
            if groups is not None:
                report.scalars.update(clip_classification_metrics(outputs, targets, groups))
            return dict(report.scalars), report
        scores = self.decode_scores(outputs)
        truth = self.decode_scores(targets.astype(np.float64)) if self.target_stats else targets
        loss = float(np.mean((outputs.reshape(-1) - targets.reshape(-1)) ** 2))
        scalars = regression_metrics(scores, truth, loss=loss)
        if groups is not None:
            scalars.update(clip_regression_metrics(scores, truth, groups))
        return dict(scalars), scores


def _loader(split: Split, task: Task, *, batch_size: int, device: torch.device, shuffle: bool, seed: int = 0,
            dist: DistInfo = DistInfo(), sample_weights: np.ndarray | None = None, repeat: int = 1) -> BatchLoader:
    return BatchLoader(split.images, task.encode_targets(split.targets), batch_size=batch_size, device=device,
                       shuffle=shuffle, drop_last=False, seed=seed, features=split.features,
                       sample_weights=sample_weights, rank=dist.rank, world_size=dist.world_size, repeat=repeat)


def _groups(split: Split, out: Outputs) -> np.ndarray | None:
    """The clip of each output row of a frame manifest's split, else None."""
    return None if split.groups is None else np.asarray(split.groups)[out.index]


def _sample_weights(split: Split, num_classes: int) -> np.ndarray:
    counts = np.bincount(split.targets, minlength=num_classes).astype(np.float64)
    return 1.0 / np.maximum(counts, 1)[split.targets]


def _class_weights(split: Split, num_classes: int, device: torch.device) -> torch.Tensor:
    counts = np.bincount(split.targets, minlength=num_classes).astype(np.float64)
    weights = len(split.targets) / (num_classes * np.maximum(counts, 1))
    return torch.tensor(weights, dtype=torch.float32, device=device)


def _head_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters that are new for the task: everything outside a wrapped backbone, else the classifier."""
    backbone = getattr(model, "backbone", None)
    if isinstance(backbone, nn.Module):
        inside = {id(p) for p in backbone.parameters()}
        return [p for p in model.parameters() if id(p) not in inside]
    return list(model.get_classifier().parameters())


def _unwrap(model: nn.Module) -> nn.Module:
    model = getattr(model, "module", model)  # DDP
    return getattr(model, "_orig_mod", model)  # torch.compile


def _frozen_bn_train_mode(model: nn.Module, frozen_bn: list[nn.Module]) -> None:
    model.train()
    for module in frozen_bn:
        module.eval()


# ============================================================================ train


def train(config: Config | None = None, *, overrides: Sequence[str] = (),
          callbacks: Sequence[Callable[[dict[str, Any]], None]] = ()) -> TrainResult:
    """Train one run and return where it lives and how it did.

    ``resnetlab.train(overrides=["preset=quick", "train.epochs=3"])`` is the command line's
    ``resnetlab train preset=quick train.epochs=3``. Each of ``callbacks`` receives every
    epoch's history row (e.g. to report to a hyperparameter search, which may raise to
    prune the run).
    """
    cfg = config if config is not None and not overrides else build_config(
        overrides, base=to_dict(config) if config is not None else None)
    _validate(cfg)
    seed_everything(cfg.train.seed, deterministic=cfg.train.deterministic)
    set_threads(cfg.train.threads)
    device = resolve_device(cfg.train.device)
    amp_dtype = resolve_precision(cfg.train.precision, device)
    channels_last = use_channels_last(cfg.train.channels_last, amp_dtype) and device.type != "mps"
    dist = init_distributed(device)

    run_dir, resume_from = _run_dir(cfg, dist)
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
    import warnings

    outputs = np.zeros((len(val), task.num_outputs), dtype=np.float32)
    groups = None if val.groups is None else np.asarray(val.groups)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # constant outputs: undefined correlations are expected here
            scalars, _ = task.metrics(outputs, task.encode_targets(val.targets), groups)
    except ValueError as exc:
        raise UserError(f"validation metrics cannot be computed on {len(val)} validation image(s) ({exc}); "
                        "raise data.val_ratio or add images") from None
    names = sorted(f"val/{k}" for k, v in scalars.items() if isinstance(v, (int, float)))
    if key not in names:
        close = difflib.get_close_matches(key, names, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise UserError(f"train.monitor={key} is not a validation metric of this {task.kind} run{hint}; "
                        f"choose one of {', '.join(names)}")


def _changed_model(saved: Any, cfg: Config) -> str:
    """Names the first model.* setting that differs from the checkpoint's, e.g. " (model.name was resnet20...)"."""
    before = saved.get("model", {}) if isinstance(saved, dict) else {}
    for key, now in to_dict(cfg.model).items():
        if key in before and before[key] != now:
            return f" (model.{key} was {before[key]}, now {now})"
    return ""


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
    _check_monitor(_monitor_key(cfg), task, bundle.val)

    feature_dim = 0 if bundle.train.features is None else int(bundle.train.features.shape[1])
    model = build_model(cfg.model, num_outputs=task.num_outputs, in_channels=bundle.channels,
                        image_size=_input_size(cfg, bundle.image_size), feature_dim=feature_dim).to(device)
    if dist.enabled and cfg.train.sync_bn:  # before the optimizer sees the BatchNorm parameters
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    core = model
    num_params = sum(p.numel() for p in core.parameters())

    # ---- parts around the loop
    weights = _sample_weights(bundle.train, task.num_outputs) if cfg.train.balanced_sampler else None
    train_loader = _loader(bundle.train, task, batch_size=cfg.train.batch_size, device=device, shuffle=True,
                           seed=cfg.train.seed, dist=dist, sample_weights=weights,
                           repeat=cfg.patches.train_num if cfg.patches.size else 1)
    eval_bs = _eval_batch_size(cfg, cfg.train.eval_batch_size or 2 * cfg.train.batch_size)
    val_loader = _loader(bundle.val, task, batch_size=eval_bs, device=device, shuffle=False, dist=dist)
    augment = BatchAugment(cfg.augment, num_classes=task.num_outputs if task.kind == "classification" else 0,
                           mean=bundle.mean, std=bundle.std, device=device,
                           seed=cfg.train.seed + 1 + dist.rank)  # each process its own draws
    if cfg.patches.size:
        from resnetlab.data.patches import PatchAugment

        augment = PatchAugment(augment, size=cfg.patches.size, device=device, seed=cfg.train.seed + 2 + dist.rank)
    uses_features = cfg.model.fusion != "none"
    if task.kind == "classification":
        class_weights = _class_weights(bundle.train, task.num_outputs, device) \
            if cfg.train.class_weights == "balanced" else None
        loss_fn = classification_loss(num_classes=task.num_outputs, label_smoothing=cfg.train.label_smoothing,
                                      class_weights=class_weights, mpca_weight=cfg.train.mpca_loss,
                                      accuracy_weight=cfg.train.accuracy_loss)
    else:
        loss_fn = regression_loss("mse" if cfg.train.loss == "auto" else cfg.train.loss)
    optimizer = build_optimizer(core, cfg.optim, head=_head_parameters(core))
    scaler = torch.amp.GradScaler(device.type) if amp_dtype == torch.float16 else None
    monitor = Monitor(_monitor_key(cfg), mode=cfg.train.monitor_mode, patience=cfg.train.early_stopping)
    history = History()
    stages = _stages(cfg)

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
        out = run_model(_for_eval(core, cfg), val_loader, prepare=prepare, amp_dtype=amp_dtype,
                        channels_last=channels_last, uses_features=uses_features)
        out = _gather_outputs(out, dist)
        scalars, _ = task.metrics(out.outputs, out.targets, _groups(bundle.val, out))
        return {f"val/{k}": float(v) for k, v in scalars.items() if isinstance(v, (int, float))}

    meta = {"class_names": bundle.class_names, "mean": list(bundle.mean), "std": list(bundle.std),
            "channels": bundle.channels, "image_size": bundle.image_size, "task": task.kind,
            "target_stats": list(task.target_stats) if task.target_stats else None,
            "feature_dim": feature_dim,
            "feature_stats": [s.tolist() for s in bundle.feature_stats] if bundle.feature_stats else None,
            "config": to_dict(cfg)}

    def save(kind: str, loop: dict[str, Any]) -> None:
        if not dist.is_main:
            return
        payload = {"model": core.state_dict(), **meta, "epoch": loop["epoch"], "loop": loop,
                   "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict() if scaler else None,
                   "monitor": monitor.state_dict(), "history": history.state_dict(),
                   "loader": train_loader.state_dict(), "augment": augment.state_dict(), "rng": rng_state()}
        atomic_save(payload, run_dir / f"{kind}.pt")
        history.write(run_dir)

    # ---- resume
    state = LoopState()
    if resume_from is not None:
        ckpt = load_checkpoint(resume_from, map_location=device)
        try:
            core.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
        except (KeyError, RuntimeError, ValueError):
            raise UserError(f"train.resume: {resume_from} does not fit the model of this config"
                            f"{_changed_model(ckpt.get('config'), cfg)}; resume with the settings the run "
                            "started with") from None
        if scaler is not None and ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        monitor.load_state_dict(ckpt["monitor"])
        history.load_state_dict(ckpt["history"])
        train_loader.load_state_dict(ckpt["loader"])
        augment.load_state_dict(ckpt["augment"])
        load_rng_state(ckpt["rng"])
        state = LoopState(**ckpt["loop"])
        progress.line(f"resuming {run_dir} at epoch {state.epoch + 1}, batch {train_loader.position} "
                      f"(step {state.step})")

    # ---- record what this run is
    tb = None
    if dist.is_main:
        save_config(cfg, run_dir / "config.yaml")
        write_json(run_dir / "data_summary.json", bundle.summary())
        (run_dir / "skipped_files.txt").write_text("".join(f"{b.path}\t{b.reason}\n" for b in bundle.skipped))
        write_json(run_dir / "provenance.json", provenance(device=device, data_hash=bundle.data_hash, extra={
            "precision": str(amp_dtype).replace("torch.", "") if amp_dtype else "fp32",
            "channels_last": channels_last, "world_size": dist.world_size, "num_params": num_params}))
        if cfg.output.tensorboard:
            from resnetlab.evaluate.tensorboard_log import TensorBoardLogger

            tb = TensorBoardLogger(run_dir / "tensorboard")
        progress.banner(f"resnetlab train → {run_dir}", _banner_rows(cfg, bundle, device, amp_dtype, channels_last,
                                                                     num_params, augment, dist))

    hooks = list(callbacks)
    if tb is not None:
        def log_epoch(row: dict[str, Any]) -> None:
            tb.log_scalars({k: v for k, v in row.items() if isinstance(v, (int, float)) and k != "epoch"},
                           row["epoch"])
            tb.log_histograms(core, row["epoch"])
        hooks.append(log_epoch)

    parts = TrainParts(model=runner, loader=train_loader, augment=augment, loss_fn=loss_fn, optimizer=optimizer,
                       schedule=cfg.schedule, stages=stages, evaluate=evaluate_val, monitor=monitor,
                       history=history, save=save, set_stage=set_stage,
                       set_train_mode=lambda: _frozen_bn_train_mode(core, frozen_bn), progress=progress,
                       device=device, amp_dtype=amp_dtype, scaler=scaler, channels_last=channels_last,
                       accumulate=cfg.train.accumulate, grad_clip=cfg.train.grad_clip,
                       checkpoint_steps=cfg.train.checkpoint_steps, uses_features=uses_features,
                       on_epoch_end=hooks)
    try:
        with StopRequest() as stop:
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
        loader = _loader(split, task, batch_size=eval_bs, device=device, shuffle=False, dist=dist)
        out = _gather_outputs(run_model(_for_eval(core, cfg), loader, prepare=prepare, amp_dtype=amp_dtype,
                                        channels_last=channels_last, tta=cfg.train.tta,
                                        uses_features=uses_features), dist)
        results[name] = (out, *task.metrics(out.outputs, out.targets, _groups(split, out)))

    rows = history.rows
    resources = {"wall_seconds": round(train_seconds, 2),
                 "seconds_per_epoch": round(float(np.mean([r["seconds"] for r in rows])), 3) if rows else None,
                 "images_per_s": round(float(np.mean([r["images_per_s"] for r in rows])), 1) if rows else None,
                 "peak_rss_mb": round(peak_rss_mb(), 1), "peak_device_mb": peak_device_mb(device),
                 "device": str(device), "num_params": num_params}
    if dist.is_main:
        _write_outputs(cfg, run_dir, bundle, task, results, history, monitor, resources, tb)
        progress.line(_final_line(run_dir, monitor, results))
    if tb is not None:
        tb.close()
    return TrainResult(run_dir=run_dir, monitor=monitor.key, best=monitor.best, best_epoch=monitor.best_epoch,
                       val=results["val"][1] if "val" in results else {},
                       test=results["test"][1] if "test" in results else None, history=list(rows))


def _gather_outputs(out: Outputs, dist: DistInfo) -> Outputs:
    """Outputs of every process, back in sample order: each sample counted exactly once."""
    if not dist.enabled:
        return out
    parts = gather_objects((out.outputs, out.targets, out.index), dist)
    outputs = np.concatenate([p[0] for p in parts])
    targets = np.concatenate([p[1] for p in parts])
    index = np.concatenate([p[2] for p in parts])
    order = np.argsort(index, kind="stable")
    return Outputs(outputs=outputs[order], targets=targets[order], index=index[order])


def _banner_rows(cfg: Config, bundle: DataBundle, device: torch.device, amp_dtype: torch.dtype | None,
                 channels_last: bool, num_params: int, augment: BatchAugment, dist: DistInfo) -> list[tuple[str, str]]:
    test = len(bundle.test) if bundle.test is not None else 0
    precision = str(amp_dtype).replace("torch.", "") if amp_dtype else "fp32"
    stages = " → ".join(f"{s.epochs} ep freeze={s.freeze} lr={s.lr:g}" for s in _stages(cfg))
    return [
        ("data", f"{bundle.source}: {len(bundle.train)} train / {len(bundle.val)} val / {test} test, "
                 f"{bundle.channels}x{bundle.image_size}x{bundle.image_size}, "
                 f"{len(bundle.class_names) or 'regression'} classes, {len(bundle.skipped)} skipped"),
        ("model", f"{cfg.model.name} ({num_params:,} params), stem {cfg.model.stem}, "
                  f"pretrained {cfg.model.pretrained}" + _variant_words(cfg)),
        ("optim", f"{cfg.optim.name} lr {cfg.optim.lr:g} wd {cfg.optim.weight_decay:g}, schedule {cfg.schedule.name} "
                  f"(warmup {cfg.schedule.warmup_epochs:g} ep)"),
        ("train", f"{stages}, batch {cfg.train.batch_size}x{cfg.train.accumulate}, monitor {_monitor_key(cfg)}, "
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
                   history: History, monitor: Monitor, resources: dict[str, Any], tb: Any) -> None:
    from resnetlab.evaluate.report import write_report

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
        _write_plots(run_dir, bundle, task, val, history, monitor)
    if tb is not None and val is not None and task.kind == "classification":
        tb.log_figure_confusion(val[2].confusion, bundle.class_names, monitor.best_epoch or 0)
    write_report(run_dir)


def _write_plots(run_dir: Path, bundle: DataBundle, task: Task, val: Any, history: History,
                 monitor: Monitor) -> None:
    from resnetlab.evaluate import plots

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
    else:
        plots.write_regression_plots(history.rows, monitor=monitor.key, plots_dir=plots_dir, pred=detail,
                                     target=np.asarray(bundle.val.targets)[out.index],
                                     best_epoch=monitor.best_epoch)


# ============================================================================ load a trained model


@dataclass
class Trained:
    model: nn.Module
    config: Config
    class_names: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    channels: int
    image_size: int
    task: Task
    run_dir: Path
    checkpoint: Path
    feature_dim: int = 0
    feature_stats: tuple[np.ndarray, np.ndarray] | None = None  # training mean and std of the side features

    @property
    def uses_features(self) -> bool:
        return self.config.model.fusion != "none"

    def standardize_features(self, raw: np.ndarray) -> np.ndarray:
        if self.feature_stats is None:
            return raw.astype(np.float32)
        mean, std = self.feature_stats
        return ((raw - mean) / std).astype(np.float32)


def load_trained(run_or_checkpoint: str | Path, *, device: torch.device | str = "cpu") -> Trained:
    """A trained model and what it needs to see images as it saw them in training."""
    from resnetlab.config import from_dict

    path = Path(run_or_checkpoint)
    if path.is_dir():  # a folder with neither file stays a folder: load_checkpoint says so
        path = next((path / n for n in ("best.pt", "last.pt") if (path / n).is_file()), path)
    ckpt = load_checkpoint(path)
    missing = [k for k in ("model", "config", "class_names", "mean", "std", "channels", "image_size")
               if k not in ckpt]
    if missing:
        raise UserError(f"{path} is not a resnetlab checkpoint (no {', '.join(missing)}); "
                        "for torchvision weights use model.weights=PATH in resnetlab train")
    cfg = from_dict(Config, ckpt["config"], source=str(path))
    task = Task(ckpt.get("task", "classification"), list(ckpt["class_names"]),
                tuple(ckpt["target_stats"]) if ckpt.get("target_stats") else None)
    model_cfg = ModelConfig(**{**to_dict(cfg.model), "pretrained": "none", "weights": None})
    feature_dim = int(ckpt.get("feature_dim") or 0)
    model = build_model(model_cfg, num_outputs=task.num_outputs, in_channels=int(ckpt["channels"]),
                        image_size=_input_size(cfg, int(ckpt["image_size"])), feature_dim=feature_dim)
    try:
        model.load_state_dict(ckpt["model"])
    except (RuntimeError, TypeError):
        raise UserError(f"{path}: its weights do not fit the model its config describes (model.name="
                        f"{cfg.model.name}); the file was changed or saved by another resnetlab version") from None
    model.to(device).eval()
    stats = ckpt.get("feature_stats")
    return Trained(model=model, config=cfg, class_names=task.class_names, mean=tuple(ckpt["mean"]),
                   std=tuple(ckpt["std"]), channels=int(ckpt["channels"]), image_size=int(ckpt["image_size"]),
                   task=task, run_dir=path.parent, checkpoint=path, feature_dim=feature_dim,
                   feature_stats=tuple(np.asarray(s, dtype=np.float32) for s in stats) if stats else None)


# ============================================================================ evaluate


@dataclass
class EvalResult:
    split: str
    scalars: dict[str, float]
    out_dir: Path
    count: int

    def format(self) -> str:
        lines = [f"{self.split}: {self.count} images"]
        lines += [f"  {k:20} {v:.4f}" for k, v in self.scalars.items() if isinstance(v, float)]
        lines.append(f"metrics, plots and report in {self.out_dir}")
        return "\n".join(lines)


def evaluate(run_or_checkpoint: str | Path, *, overrides: Sequence[str] = (), split: str = "val",
             tta: bool = False, out_dir: str | Path | None = None) -> EvalResult:
    """Every metric and plot of a trained model, on any split of its data or of new data with its classes."""
    bad = [o for o in overrides if not o.startswith("data.")]
    if bad:
        raise UserError(f"eval takes data.* overrides only, got {bad[0]}: the model is already trained; "
                        "to change other settings train a new run")
    if out_dir is not None and Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise UserError(f"--out {out_dir} is a file; give a folder for the metrics and plots")
    trained = load_trained(run_or_checkpoint)
    cfg = build_config([*overrides, f"data.image_size={trained.image_size}", f"data.channels={trained.channels}"],
                       base=to_dict(trained.config))
    device, amp_dtype = _device_here(cfg)
    set_threads(cfg.train.threads)
    bundle = load_data(cfg.data, log=lambda line: None)
    if trained.task.kind == "classification" and bundle.class_names != trained.class_names:
        raise UserError(f"{trained.checkpoint} was trained on classes {_short(trained.class_names)} but "
                        f"{cfg.data.source} has {_short(bundle.class_names)}; evaluate on data with the same classes")
    chosen = {"train": bundle.train, "val": bundle.val, "test": bundle.test}[split]
    if chosen is None or len(chosen) == 0:
        raise UserError(f"--split {split}: {cfg.data.source} has no {split} split; use --split val")
    task = trained.task
    if chosen.features is not None and bundle.feature_stats is not None:
        # load_data scaled the features with this data's training split; the model knows its own statistics.
        raw = chosen.features * bundle.feature_stats[1] + bundle.feature_stats[0]
        chosen = dataclasses.replace(chosen, features=trained.standardize_features(raw))
    model = _for_eval(trained.model.to(device), trained.config)
    loader = _loader(chosen, task, batch_size=_eval_batch_size(trained.config, 256), device=device, shuffle=False)
    prepare = lambda images: normalize(images, trained.mean, trained.std)  # noqa: E731
    keep = hasattr(model, "get_classifier") and task.kind == "classification"
    out = run_model(model, loader, prepare=prepare, amp_dtype=amp_dtype, tta=tta, keep_features=keep,
                    uses_features=trained.uses_features)
    scalars, detail = task.metrics(out.outputs, out.targets, _groups(chosen, out))
    if out.features is not None:
        # Seed 001 compares how sparse HOG and network features are.
        scalars["feature_zero_share"] = float(np.mean(out.features == 0))
    folder = Path(out_dir) if out_dir else trained.run_dir / f"eval-{split}"
    folder.mkdir(parents=True, exist_ok=True)
    result = {"split": split, "source": cfg.data.source, "checkpoint": str(trained.checkpoint), "tta": tta,
              "scalars": scalars}
    if task.kind == "classification":
        result.update({**detail.to_dict(), "scalars": scalars})  # scalars plus the extra feature share
        from resnetlab.evaluate import plots

        probs = torch.from_numpy(out.outputs).softmax(dim=1).numpy()
        history_file = trained.run_dir / "history.json"
        import json

        history = json.loads(history_file.read_text()) if history_file.is_file() else []
        plots.write_classification_plots(detail, history, monitor=trained.config.train.monitor,
                                         plots_dir=folder / "plots", images=np.asarray(chosen.images[out.index]),
                                         probs=probs, targets=out.targets)
    else:
        from resnetlab.evaluate import plots

        plots.write_regression_plots([], monitor=trained.config.train.monitor, plots_dir=folder / "plots",
                                     pred=detail, target=np.asarray(chosen.targets)[out.index])
    write_json(folder / "metrics.json", result)
    return EvalResult(split=split, scalars=scalars, out_dir=folder, count=len(out.targets))


def _device_here(cfg: Config) -> tuple[torch.device, torch.dtype | None]:
    """Device and autocast dtype to run a trained model on this machine: the run's own settings where
    they work here, else auto (a model trained on a GPU is evaluated on a laptop)."""
    try:
        device = resolve_device(cfg.train.device)
    except UserError:
        device = resolve_device("auto")
    try:
        return device, resolve_precision(cfg.train.precision, device)
    except UserError:
        return device, resolve_precision("auto", device)


def _short(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return f"[{shown}{', ...' if len(names) > limit else ''}] ({len(names)})"


# ============================================================================ summary


def summary(model: str, *, image_size: int = 224, in_channels: int = 3, num_classes: int = 1000,
            stem: str | None = None, multiscale: bool = False, attention: str = "none"):
    """Layer table, parameters, FLOPs and MACs of a registered model or of a run's model."""
    from resnetlab.models import summarize

    if Path(model).exists():
        trained = load_trained(model)
        size = _input_size(trained.config, trained.image_size)
        return summarize(trained.model, input_size=(trained.channels, size, size), feature_dim=trained.feature_dim)
    cfg = ModelConfig(name=model, stem=stem or "imagenet", multiscale=multiscale, attention=attention,
                      zero_init_residual=False)
    net = build_model(cfg, num_outputs=num_classes, in_channels=in_channels, image_size=image_size)
    return summarize(net, input_size=(in_channels, image_size, image_size))


# ============================================================================ predict


@dataclass
class PredictResult:
    path: Path
    count: int
    skipped: list[Any]


def collect_images(inputs: Sequence[str | Path]) -> list[Path]:
    """Image paths from folders (recursively), globs, files, or CSVs of paths."""
    import csv
    import glob

    found: list[Path] = []
    for item in inputs:
        item = str(item)
        path = Path(item)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        elif path.suffix.lower() == ".csv" and path.is_file():
            with open(path, newline="") as handle:
                rows = list(csv.reader(handle))
            if not rows:
                raise UserError(f"{path} is empty; give a CSV with an image-path column")
            header = [h.strip().lower() for h in rows[0]]
            column = next((header.index(c) for c in ("image", "path", "file", "filename", "id") if c in header), None)
            body = rows[1:] if column is not None else rows
            column = column or 0
            found += [(path.parent / r[column]).resolve() if not Path(r[column]).is_absolute() else Path(r[column])
                      for r in body if r]
        elif any(ch in item for ch in "*?["):
            matches = sorted(Path(p) for p in glob.glob(item, recursive=True) if Path(p).is_file())
            if not matches:
                raise UserError(f"no files match {item}; check the pattern (quote it, e.g. 'photos/*.jpg', "
                                "so the shell leaves it to resnetlab)")
            found += matches
        elif path.is_file():
            found.append(path)
        else:
            raise UserError(f"{item} not found; give image files, a folder, a glob in quotes or a CSV of paths")
    if not found:
        raise UserError(f"no images in {', '.join(map(str, inputs))}; give image files, a folder holding "
                        "images, a glob or a CSV of paths")
    return found


def _check_output_file(path: Path, *, option: str) -> None:
    if path.is_dir():
        raise UserError(f"{option} {path} is a folder; give a file name, e.g. {path / 'predictions.csv'}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{option} {path}: cannot create its folder ({exc.strerror}); give a writable path") from None


def predict(run_or_checkpoint: str | Path, inputs: Sequence[str | Path], *, out: str | Path = "predictions.csv",
            tta: bool = False, batch_size: int = 128) -> PredictResult:
    """Predict every readable image; write ``id,label,<class probabilities>`` (regression: ``id,score``)."""
    import csv

    from resnetlab.data.bundle import BadFile
    from resnetlab.data.decode import decode_image

    trained = load_trained(run_or_checkpoint)
    device, _ = _device_here(trained.config)
    _check_output_file(Path(out), option="--out")
    features = None
    if trained.uses_features:
        paths, features = _feature_inputs(trained, inputs)
    else:
        paths = collect_images(inputs)
    images, kept, rows, skipped = [], [], [], []
    for row, path in enumerate(paths):
        decoded = (decode_image(path, image_size=trained.image_size, channels=trained.channels)
                   if path.is_file() else BadFile(str(path), "missing file"))
        if isinstance(decoded, BadFile):
            skipped.append(decoded)
        else:
            images.append(decoded)
            kept.append(path)
            rows.append(row)
    if not images:
        raise UserError(f"none of the {len(paths)} input file(s) is a readable image (first: {skipped[0].path}: "
                        f"{skipped[0].reason}); give image files")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    task = trained.task
    with open(out, "w", newline="") as handle:
        writer = csv.writer(handle)
        if task.kind == "classification":
            writer.writerow(["id", "label", *[f"prob_{name}" for name in task.class_names]])
        else:
            writer.writerow(["id", "score"])
        if images:
            array = np.stack(images)
            loader = BatchLoader(array, np.zeros(len(array), dtype=np.int64), device=device,
                                 batch_size=_eval_batch_size(trained.config, batch_size),
                                 features=None if features is None else features[rows])
            result = run_model(_for_eval(trained.model.to(device), trained.config), loader,
                               prepare=lambda x: normalize(x, trained.mean, trained.std), tta=tta,
                               uses_features=trained.uses_features)
            if task.kind == "classification":
                probs = torch.from_numpy(result.outputs).softmax(dim=1).numpy()
                for path, row in zip(kept, probs):
                    writer.writerow([path.stem, task.class_names[int(row.argmax())], *[f"{p:.6f}" for p in row]])
            else:
                for path, score in zip(kept, task.decode_scores(result.outputs)):
                    writer.writerow([path.stem, f"{score:.6f}"])
    return PredictResult(path=out, count=len(kept), skipped=skipped)


def _feature_inputs(trained: Trained, inputs: Sequence[str | Path]) -> tuple[list[Path], np.ndarray]:
    """A fusion model's inputs: one CSV with the image column and the trained feature columns."""
    from resnetlab.data.feature_table import read_feature_table

    data = trained.config.data
    columns = ",".join([data.image_column, *data.feature_columns])
    if len(inputs) != 1 or Path(inputs[0]).suffix.lower() != ".csv" or not Path(inputs[0]).is_file():
        raise UserError(f"{trained.checkpoint} also takes side features; give one CSV with columns {columns} "
                        f"instead of {', '.join(map(str, inputs))}")
    paths, raw = read_feature_table(Path(inputs[0]), image_column=data.image_column,
                                    feature_columns=list(data.feature_columns))
    return paths, trained.standardize_features(raw)
