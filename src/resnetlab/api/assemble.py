"""From the validated config to the typed pieces a run is made of: model, task, loaders, checks."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from resnetlab.config import Config
from resnetlab.config.cross_checks import check_cross_fields, freeze_specs
from resnetlab.config.schema import AugmentConfig, DataConfig, ModelConfig, OptimConfig, ScheduleConfig
from resnetlab.data.bundle import Split
from resnetlab.data.loader import BatchLoader
from resnetlab.errors import UserError, did_you_mean, shorten
from resnetlab.evaluation.inference import Outputs
from resnetlab.evaluation.metrics import classification_metrics
from resnetlab.evaluation.regression_metrics import regression_metrics
from resnetlab.models import create_model, load_pretrained, load_weights_file
from resnetlab.models.weights import LoadedWeights, WeightsMismatch
from resnetlab.training.device import (
    resolve_device,
    resolve_precision,
)
from resnetlab.training.distributed import DistInfo, gather_objects
from resnetlab.training.loop import StagePlan


@contextlib.contextmanager
def user_input() -> Iterator[None]:
    """The models' ValueError/TypeError about the values they were given, as the command line's one-line
    UserError: the model library knows no command line, the api is where its arguments came from."""
    try:
        yield
    except UserError:
        raise
    except (ValueError, TypeError) as exc:
        raise UserError(str(exc)) from None


def build_model(cfg: ModelConfig, *, num_outputs: int, in_channels: int, image_size: int,
                feature_dim: int = 0, log: Callable[[str], None] | None = None) -> nn.Module:
    """The adapter from config to the model factories' keyword arguments; their complaints as UserError."""
    with user_input():
        return _build_model(cfg, num_outputs=num_outputs, in_channels=in_channels, image_size=image_size,
                            feature_dim=feature_dim, log=log)


def _build_model(cfg: ModelConfig, *, num_outputs: int, in_channels: int, image_size: int,
                 feature_dim: int = 0, log: Callable[[str], None] | None = None) -> nn.Module:
    """The adapter from config to the model factories' keyword arguments.

    ``image_size`` is what the network sees (the patch size under patch sampling);
    ``feature_dim`` the number of side-feature columns a fusion model takes; ``log`` gets
    one line per set of weights loaded.
    """
    # ImageNet weights were learned with the 7x7 stem, so auto keeps it when they are loaded.
    small = image_size <= 64 and cfg.pretrained == "none" and not cfg.weights
    stem = cfg.stem if cfg.stem != "auto" else ("cifar" if small else "imagenet")
    kwargs: dict[str, Any] = {"num_classes": num_outputs, "in_channels": in_channels,
                              "zero_init_residual": cfg.zero_init_residual, "drop_rate": cfg.drop_rate,
                              "width": cfg.width}
    if not cfg.name.startswith("resnet") or cfg.name in ("resnet10", "resnet18", "resnet34", "resnet50",
                                                        "resnet101", "resnet152"):
        kwargs["stem"] = stem
    if cfg.attention == "blocks":
        kwargs["block_attention"] = True
    model = create_model(cfg.name, **kwargs)
    say = log or (lambda line: None)
    if cfg.pretrained == "imagenet":
        say(_config_terms(lambda: load_pretrained(model, arch=cfg.name), f"model.pretrained={cfg.pretrained}")
            .summary())
    if cfg.weights:
        say(_config_terms(lambda: load_weights_file(model, cfg.weights), f"model.weights={cfg.weights}").summary())
    if cfg.multiscale or cfg.attention == "fused":
        from resnetlab.models import with_multiscale

        model = with_multiscale(model, num_classes=num_outputs, project_dim=cfg.multiscale_dim,
                                attention=cfg.attention == "fused")
    if cfg.fusion != "none":
        from resnetlab.models import with_fusion

        model = with_fusion(model, num_classes=num_outputs, feature_dim=feature_dim, visual_dim=cfg.visual_dim,
                            fusion=cfg.fusion, drop_rate=cfg.drop_rate)
    return model


def _config_terms(load: Callable[[], LoadedWeights], setting: str) -> LoadedWeights:
    """Run ``load``; a first convolution that does not fit is reported with the settings that fix it."""
    try:
        return load()
    except WeightsMismatch as err:
        if not err.needs:
            raise
        fixes = [f"model.stem={err.needs['stem']}"] if "stem" in err.needs else []
        channels = err.needs.get("in_channels")
        if channels is not None:  # data.channels takes 1 or 3 only
            fixes.append(f"data.channels={channels}" if channels in (1, 3) else f"data with {channels} channels")
        raise UserError(f"{setting} does not fit the model: {err.first_conv}; use {' and '.join(fixes)}") from None


def setting_warnings(cfg: Config, *, channels: int) -> list[str]:
    """Settings that are valid but probably not meant: each a line for the run's log."""
    from resnetlab.training.monitor import infer_mode

    lines = random_freeze_warnings(cfg)
    a = cfg.augment
    if channels == 1 and a.enabled and a.color_jitter and (a.saturation or a.hue):
        lines.append("note: augment.saturation and augment.hue change nothing on 1-channel images")
    key, mode = monitor_key(cfg), cfg.train.monitor_mode
    if mode != "auto" and mode != infer_mode(key, "auto"):
        lines.append(f"warning: train.monitor_mode={mode} with {key}: the best epoch is the one with the "
                     f"{'highest' if mode == 'max' else 'lowest'} {key.rsplit('/', 1)[-1]}; "
                     "train.monitor_mode=auto picks the usual direction")
    return lines


def random_freeze_warnings(cfg: Config) -> list[str]:
    """A frozen part with no weights to start from stays random: legitimate as a baseline, rarely meant."""
    if cfg.model.pretrained != "none" or cfg.model.weights:
        return []
    return [f"warning: {key}={spec} with random weights: {_frozen_words(spec)}; "
            "set model.pretrained=imagenet or model.weights=PATH" for key, spec in freeze_specs(cfg) if spec != "none"]


def _frozen_words(spec: str) -> str:
    if spec == "backbone":
        return "only the head trains"
    stages = int(spec[len("stages:"):])
    return f"the stem and the first {stages} stage(s) stay random" if stages else "the stem stays random"



def input_size(cfg: Config, image_size: int) -> int:
    """The network's input size: the patch size when patches are cut, else the cached image size."""
    return cfg.patches.size or image_size



def for_eval(model: nn.Module, cfg: Config) -> nn.Module:
    """The model as evaluated: with patch sampling, the mean over ``patches.test_num`` patches per image."""
    if not cfg.patches.size:
        return model
    from resnetlab.data.patches import PatchAverage

    return PatchAverage(model, size=cfg.patches.size, count=cfg.patches.test_num, random=cfg.patches.test_random,
                        seed=cfg.train.seed)



def eval_batch_size(cfg: Config, batch_size: int) -> int:
    # Each image becomes test_num patches, so fewer images per batch keep the memory the same.
    return max(1, batch_size // cfg.patches.test_num) if cfg.patches.size else batch_size



def monitor_key(cfg: Config) -> str:
    # The schema's default monitor is a classification metric; regression ranks by SRCC (as IQA work does).
    if cfg.data.task == "regression" and cfg.train.monitor == "val/accuracy":
        return "val/srcc"
    return cfg.train.monitor



def data_kwargs(cfg: DataConfig) -> dict[str, Any]:
    """data.* as load_data's keyword arguments (the names are the same); allow_unseen_classes is
    training's own check (check_unseen_classes), not how data is loaded."""
    return {k: v for k, v in dataclasses.asdict(cfg).items() if k != "allow_unseen_classes"}



def augment_kwargs(cfg: AugmentConfig) -> dict[str, Any]:
    """augment.* as BatchAugment's keyword arguments (the names are the same)."""
    return dataclasses.asdict(cfg)



def baseline_data_config(overrides: Sequence[str] = ()) -> DataConfig:
    """The data config of a HOG+SVM baseline from `data.*` overrides; built-ins stay at their native
    size unless data.image_size is given."""
    from resnetlab.baselines.hog_svm import NATIVE_IMAGE_SIZE
    from resnetlab.config import build_config

    bad = [o for o in overrides if not o.strip().startswith("data.")]
    if bad:
        where = ("the run folder is --out DIR and --name NAME" if bad[0].strip().startswith("output.")
                 else "HOG and SVM settings are --options, e.g. --kernel linear --C 1")
        raise UserError(f"the baseline takes data.* overrides only; got '{bad[0]}' ({where}; see "
                        "resnetlab baseline hog-svm --help)")
    data = build_config(overrides).data
    if not any(o.strip().startswith("data.image_size=") for o in overrides):
        data.image_size = NATIVE_IMAGE_SIZE.get(data.source.strip(), data.image_size)
    return data



def optimizer_kwargs(cfg: OptimConfig) -> dict[str, Any]:
    """optim.* as build_optimizer's keyword arguments."""
    return {**dataclasses.asdict(cfg), "betas": tuple(cfg.betas)}



def schedule_kwargs(cfg: ScheduleConfig) -> dict[str, Any]:
    """schedule.* as LrSchedule's keyword arguments (the peak lr and length come from each stage)."""
    return dataclasses.asdict(cfg)



def stage_plans(cfg: Config) -> list[StagePlan]:
    if not cfg.train.stages:
        return [StagePlan(epochs=cfg.train.epochs, freeze=cfg.model.freeze, lr=cfg.optim.lr)]
    return [StagePlan(epochs=s.epochs, freeze=s.freeze, lr=s.lr if s.lr is not None else cfg.optim.lr)
            for s in cfg.train.stages]



def validate_config(cfg: Config) -> None:
    """Every check a config gets before a run: the cross-field ones (config/cross_checks.py), then the
    ones that need the model registry (names, weights, stage counts)."""
    check_cross_fields(cfg)
    validate_model_inputs(cfg)



def validate_model_inputs(cfg: Config) -> None:
    """What would otherwise fail only after the data is loaded: model name, weights, freeze specs."""
    from resnetlab.models import get_pretrained, is_model, list_models

    m = cfg.model
    if not is_model(m.name):
        hint = did_you_mean(m.name, list_models(), prefix=" (", suffix=")")
        raise UserError(f"model.name: unknown model {shorten(m.name)}{hint}; resnetlab summary --list shows all "
                        "(and model.name=hog-svm is the HOG+SVM baseline)")
    if m.pretrained != "none":
        with user_input():
            get_pretrained(m.name, m.pretrained)
    if m.weights and not Path(m.weights).expanduser().is_file():
        raise UserError(f"model.weights: {m.weights} not found; give a .pt/.pth file (a state dict or a run's best.pt)")
    if m.freeze != "none" and cfg.train.stages:
        raise UserError(f"model.freeze={m.freeze} is ignored when train.stages is set; give each stage its "
                        f"freeze, e.g. train.stages=[{{epochs: 1, freeze: {m.freeze}}}, {{epochs: 5}}]")
    specs = freeze_specs(cfg)
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

    def metric_names(self, targets: np.ndarray, groups: np.ndarray | None = None) -> list[str]:
        """The scalar names ``metrics`` reports for data with these targets (and clips), asked of the
        metrics code itself on constant placeholder outputs, so no list of names is kept twice."""
        import warnings

        outputs = np.zeros((len(targets), self.num_outputs), dtype=np.float32)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # constant outputs: undefined correlations are expected here
            scalars, _ = self.metrics(outputs, self.encode_targets(targets), groups)
        return sorted(k for k, v in scalars.items() if isinstance(v, (int, float)))

    def metrics(self, outputs: np.ndarray, targets: np.ndarray,
                groups: np.ndarray | None = None) -> tuple[dict[str, float], Any]:
        """Named scalars and the full report (classification) or scores (regression).

        With ``groups`` (the clip of each frame), clip-level ``clip_*`` scalars are added.
        """
        from resnetlab.evaluation.clips import clip_classification_metrics, clip_regression_metrics

        if self.kind == "classification":
            logits = torch.from_numpy(outputs)
            loss = float(nn.functional.cross_entropy(logits, torch.from_numpy(targets).long()))
            report = classification_metrics(outputs, targets, class_names=self.class_names, loss=loss)
            if groups is not None:
                report.scalars.update(clip_classification_metrics(outputs, targets, groups))
            return dict(report.scalars), report
        scores = self.decode_scores(outputs)
        truth = self.decode_scores(targets.astype(np.float64)) if self.target_stats else targets
        # float64: a barely trained model's float32 outputs can square past float32's range
        errors = outputs.reshape(-1).astype(np.float64) - targets.reshape(-1)
        loss = float(np.mean(errors**2))
        scalars = regression_metrics(scores, truth, loss=loss)
        if groups is not None:
            scalars.update(clip_regression_metrics(scores, truth, groups))
        return dict(scalars), scores



def make_loader(split: Split, task: Task, *, batch_size: int, device: torch.device, shuffle: bool, seed: int = 0,
            dist: DistInfo | None = None, sample_weights: np.ndarray | None = None, repeat: int = 1) -> BatchLoader:
    return BatchLoader(split.images, task.encode_targets(split.targets), batch_size=batch_size, device=device,
                       shuffle=shuffle, drop_last=False, seed=seed, features=split.features,
                       sample_weights=sample_weights, rank=dist.rank if dist else 0,
                       world_size=dist.world_size if dist else 1, repeat=repeat)



def clip_groups(split: Split, out: Outputs) -> np.ndarray | None:
    """The clip of each output row of a frame manifest's split, else None."""
    return None if split.groups is None else np.asarray(split.groups)[out.index]



def balanced_sample_weights(split: Split, num_classes: int) -> np.ndarray:
    counts = np.bincount(split.targets, minlength=num_classes).astype(np.float64)
    return 1.0 / np.maximum(counts, 1)[split.targets]



def balanced_class_weights(split: Split, num_classes: int, device: torch.device) -> torch.Tensor:
    counts = np.bincount(split.targets, minlength=num_classes).astype(np.float64)
    weights = len(split.targets) / (num_classes * np.maximum(counts, 1))
    return torch.tensor(weights, dtype=torch.float32, device=device)



def head_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters that are new for the task: everything outside a wrapped backbone, else the classifier."""
    backbone = getattr(model, "backbone", None)
    if isinstance(backbone, nn.Module):
        inside = {id(p) for p in backbone.parameters()}
        return [p for p in model.parameters() if id(p) not in inside]
    return list(model.get_classifier().parameters())



def frozen_bn_train_mode(model: nn.Module, frozen_bn: list[nn.Module]) -> None:
    model.train()
    for module in frozen_bn:
        module.eval()



def gather_outputs(out: Outputs, dist: DistInfo) -> Outputs:
    """Outputs of every process, back in sample order: each sample counted exactly once."""
    if not dist.enabled:
        return out
    parts = gather_objects((out.outputs, out.targets, out.index), dist)
    outputs = np.concatenate([p[0] for p in parts])
    targets = np.concatenate([p[1] for p in parts])
    index = np.concatenate([p[2] for p in parts])
    order = np.argsort(index, kind="stable")
    return Outputs(outputs=outputs[order], targets=targets[order], index=index[order])



def device_here(cfg: Config) -> tuple[torch.device, torch.dtype | None]:
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



def short_list(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return f"[{shown}{', ...' if len(names) > limit else ''}] ({len(names)})"

