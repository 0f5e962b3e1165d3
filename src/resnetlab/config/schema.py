"""The one configuration schema: typed sections, each field with its accepted values.

Field metadata carries what validation needs (``choices``, ``min``, ``max``) and a one-line
``help`` that the command line and the README show. Everything below the command line
receives these dataclasses (or plain values taken from them), never a dict.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from resnetlab.errors import did_you_mean


def opt(default: Any, help: str, *, choices: tuple | None = None, min: float | None = None,
        max: float | None = None, check: Callable[[Any], str | None] | None = None, factory: bool = False) -> Any:
    """A dataclass field with validation metadata; ``factory`` for mutable defaults.

    ``check`` returns what is wrong with a value (e.g. "must be a plain folder name"), or None.
    """
    meta = {"help": help, "choices": choices, "min": min, "max": max, "check": check}
    if factory:
        return field(default_factory=default, metadata=meta)
    return field(default=default, metadata=meta)


class _Strict:
    """Assigning a key a section does not have is an error: from Python, ``cfg.optim.lrr = 0.1``
    would otherwise add an attribute nothing reads, and the run would train with the old value."""

    __slots__ = ()

    def __setattr__(self, name: str, value: Any) -> None:
        keys = self.__dataclass_fields__  # type: ignore[attr-defined]
        if name not in keys:
            hint = did_you_mean(name, keys) or f"; its keys: {', '.join(keys)}"
            raise AttributeError(f"{type(self).__name__} has no config key '{name}'{hint}")
        object.__setattr__(self, name, value)


def folder_name_problem(value: str | None) -> str | None:
    """What keeps ``value`` from being a run folder's name, or None: a separator or ".." would put
    the run outside output.dir (or in a sub-folder of it)."""
    if value is not None and ("/" in value or "\\" in value or value in (".", "..")):
        return f"must be a plain folder name, got {value!r}: no '/' or '\\', not '.' or '..'"
    return None


def path_problem(value: str | None) -> str | None:
    """An empty path would silently mean the current folder: refuse it (None keeps the default)."""
    if value is not None and not str(value).strip():
        return "is empty; give a path (or leave the key out for its default)"
    return None


# A run of more epochs than this is a typo (1e23), not a plan; raise it here if you mean it.
MAX_EPOCHS = 100_000


@dataclass
class ModelConfig(_Strict):
    name: str = opt("resnet18", "architecture: resnet10/18/34/50/101/152, resnet20/32/44/56/110")
    width: float = opt(1.0, "channel multiplier of every stage (Wide ResNet's k): 2 doubles, 0.5 halves", min=0.0)
    stem: str = opt("auto", "imagenet (7x7 s2 + max-pool), cifar (3x3 s1), auto: cifar when image_size <= 64",
                    choices=("auto", "imagenet", "cifar"))
    pretrained: str = opt("none", "start from ImageNet weights (downloaded through torch.hub)",
                          choices=("none", "imagenet"))
    weights: str | None = opt(None, "start from a local torchvision-format or resnetlab checkpoint",
                              check=path_problem)
    freeze: str = opt("none", "none, backbone (train the head only) or stages:N (stem + first N stages)")
    freeze_bn_stats: bool = opt(False, "keep frozen layers' BatchNorm statistics fixed too")
    zero_init_residual: bool = opt(False, "zero the last BN of each residual branch (arXiv:1706.02677; for long runs)")
    drop_rate: float = opt(0.0, "dropout before the classifier", min=0.0, max=1.0)
    multiscale: bool = opt(False, "fuse pooled features of every stage before the head")
    multiscale_dim: int | None = opt(None, "project each stage's features to this size before fusion", min=1)
    attention: str = opt("none", "channel attention: none, fused (SE on fused features), blocks (SE in every block)",
                         choices=("none", "fused", "blocks"))
    fusion: str = opt("none", "fuse side features (data.feature_columns) with the image: none, concat, bilinear, "
                      "add (add needs model.visual_dim = number of feature columns)",
                      choices=("none", "concat", "bilinear", "add"))
    visual_dim: int = opt(256, "fusion: pooled image features are projected to this size first", min=1)


@dataclass
class DataConfig(_Strict):
    source: str = opt("digits", "digits, fashion-mnist, cifar10, cifar100, an image folder or a CSV manifest",
                      check=path_problem)
    dir: str | None = opt(None, "where built-in datasets are looked up and downloaded (else $RESNETLAB_DATA)",
                          check=path_problem)
    download: bool = opt(True, "download a missing built-in dataset when online")
    task: str = opt("classification", "classification or regression (numeric target column)",
                    choices=("classification", "regression"))
    image_size: int = opt(32, "training resolution (images are cached at this size)", min=8, max=1024)
    channels: int | None = opt(None, "1 (grayscale) or 3 (RGB); default: what the source holds", choices=(None, 1, 3))
    val_ratio: float = opt(0.1, "share of training images held out for validation when no val split exists",
                           min=0.0, max=0.9)
    test_ratio: float = opt(0.1, "share held out for testing when the source has no test split",
                            min=0.0, max=0.9)
    split_seed: int = opt(0, "seed of the train/val/test split (independent of train.seed)", min=0)
    subset: int | None = opt(None, "use at most this many training images (seeded), for quick runs", min=1)
    image_column: str = opt("image", "CSV column holding image paths (relative to data.image_root)")
    image_root: str | None = opt(None, "folder a manifest's relative image paths are resolved against "
                                 "(default: the CSV's folder), e.g. KonIQ-10k's 1024x768/")
    label_column: str = opt("label", "CSV column holding the class label or the numeric target")
    split_column: str | None = opt(None, "CSV column holding train/val/test per row")
    feature_columns: list[str] = opt(list, "CSV columns used as a side-feature vector", factory=True)
    group_column: str | None = opt(None, "CSV column naming the clip a frame belongs to")
    order_column: str | None = opt(None, "CSV column giving the frame order within a clip")
    frame_interval: int = opt(1, "keep every k-th frame of each clip", min=1)
    normalize_target: bool = opt(True, "standardize regression targets with training statistics")
    on_bad_file: str = opt("skip", "what to do with a corrupt or unreadable image: skip (and report) or error",
                           choices=("skip", "error"))
    cache: str = opt("auto", "decoded-image cache: memory, disk (memory-mapped) or auto (disk above 2 GiB)",
                     choices=("auto", "memory", "disk"))
    cache_dir: str | None = opt(None, "disk cache folder (default: ~/.cache/resnetlab)", check=path_problem)
    allow_unseen_classes: bool = opt(False, "let val/test hold classes with no training image (an error "
                                            "otherwise: the model cannot predict them)")
    mean: list[float] | None = opt(None, "per-channel mean in [0, 1]; default: computed from the training data")
    std: list[float] | None = opt(None, "per-channel std in [0, 1]; default: computed from the training data")
    workers: int = opt(0, "threads decoding images on the first pass (0: one per core)", min=0)


@dataclass
class AugmentConfig(_Strict):
    enabled: bool = opt(True, "the master switch: false turns every augmentation off")
    hflip: float = opt(0.0, "probability of a horizontal flip", min=0.0, max=1.0)
    vflip: float = opt(0.0, "probability of a vertical flip", min=0.0, max=1.0)
    crop_padding: int = opt(0, "random crop after padding by this many pixels (0: off)", min=0)
    resized_crop: bool = opt(False, "random resized crop (scale and ratio below)")
    resized_crop_scale: list[float] = opt(lambda: [0.08, 1.0], "area range of the resized crop", factory=True)
    resized_crop_ratio: list[float] = opt(lambda: [0.75, 1.3333], "aspect range of the resized crop", factory=True)
    rotation: float = opt(0.0, "maximum rotation in degrees", min=0.0, max=180.0)
    translate: float = opt(0.0, "maximum translation as a fraction of the size", min=0.0, max=0.5)
    scale: list[float] = opt(lambda: [1.0, 1.0], "zoom range of the affine transform", factory=True)
    brightness: float = opt(0.0, "colour jitter: brightness factor range 1±x", min=0.0, max=1.0)
    contrast: float = opt(0.0, "colour jitter: contrast factor range 1±x", min=0.0, max=1.0)
    saturation: float = opt(0.0, "colour jitter: saturation factor range 1±x", min=0.0, max=1.0)
    hue: float = opt(0.0, "colour jitter: hue shift range ±x (fraction of a turn)", min=0.0, max=0.5)
    color_jitter: bool = opt(True, "switch for the four colour-jitter settings above (false: off, values kept)")
    erasing: float = opt(0.0, "probability of random erasing", min=0.0, max=1.0)
    mixup: float = opt(0.0, "mixup alpha (0: off)", min=0.0)
    cutmix: float = opt(0.0, "cutmix alpha (0: off)", min=0.0)


@dataclass
class PatchConfig(_Strict):
    size: int = opt(0, "train and evaluate on square patches of this size cut from the cached images (0: off)",
                    min=0)
    train_num: int = opt(1, "random patches per image per epoch (the training set is repeated this often)", min=1)
    test_num: int = opt(1, "patches per image at evaluation, evenly spread; the prediction is their mean", min=1)
    test_random: bool = opt(False, "random (seeded) instead of evenly spread evaluation patches")


@dataclass
class OptimConfig(_Strict):
    name: str = opt("sgd", "optimizer", choices=("sgd", "adam", "adamw"))
    lr: float | None = opt(None, "peak learning rate (default: scaled with the batch: SGD 0.1 per 256 images, "
                                 "Adam/AdamW 1e-3 at 256 times the square root of batch/256)", min=0.0)
    momentum: float = opt(0.9, "SGD momentum", min=0.0, max=1.0)
    nesterov: bool = opt(False, "Nesterov momentum for SGD")
    betas: list[float] = opt(lambda: [0.9, 0.999], "Adam/AdamW betas", factory=True)
    weight_decay: float = opt(5e-4, "weight decay", min=0.0)
    decay_norm_and_bias: bool = opt(False, "also apply weight decay to norm weights and biases")
    backbone_lr_scale: float = opt(1.0, "backbone learning rate as a fraction of lr (head keeps lr)", min=0.0)


@dataclass
class ScheduleConfig(_Strict):
    name: str = opt("cosine", "learning-rate schedule", choices=("cosine", "plateau", "step", "onecycle", "none"))
    warmup_epochs: float = opt(0.0, "linear warmup length in epochs", min=0.0)
    warmup_start: float = opt(0.01, "warmup starts at lr times this", min=0.0, max=1.0)
    min_lr: float = opt(0.0, "floor of cosine and onecycle", min=0.0)
    step_epochs: int = opt(30, "step schedule: decay every N epochs", min=1)
    gamma: float = opt(0.1, "step and plateau decay factor", min=0.0, max=1.0)
    plateau_patience: int = opt(5, "plateau: epochs without improvement before decaying", min=0)


@dataclass
class StageConfig(_Strict):
    epochs: int = opt(1, "epochs of this stage", min=1, max=MAX_EPOCHS)
    freeze: str = opt("none", "what is frozen during this stage (as model.freeze)")
    lr: float | None = opt(None, "peak learning rate of this stage (default optim.lr)", min=0.0)


@dataclass
class TrainConfig(_Strict):
    epochs: int = opt(10, "number of epochs", min=1, max=MAX_EPOCHS)
    batch_size: int = opt(128, "images per optimizer step (before accumulation)", min=1)
    accumulate: int = opt(1, "gradient accumulation steps", min=1)
    loss: str = opt("auto", "cross_entropy (classification), mse/l1/smooth_l1 (regression), auto",
                    choices=("auto", "cross_entropy", "mse", "l1", "smooth_l1"))
    label_smoothing: float = opt(0.0, "label smoothing of the cross-entropy", min=0.0, max=1.0)
    class_weights: str = opt("none", "cross-entropy class weights: none or balanced (from training counts)",
                             choices=("none", "balanced"))
    balanced_sampler: bool = opt(False, "sample classes uniformly instead of by frequency")
    mpca_loss: float = opt(0.0, "weight of the soft mean-per-class-accuracy term added to the loss", min=0.0)
    accuracy_loss: float = opt(0.0, "weight of the soft accuracy term added to the loss", min=0.0)
    grad_clip: float | None = opt(None, "clip the gradient norm to this value (0: off; default: 1.0 for "
                                        "regression, off for classification)", min=0.0)
    monitor: str = opt("val/accuracy", "metric that picks the best checkpoint and drives early stopping")
    monitor_mode: str = opt("auto", "max, min, or auto (min for losses, errors, rmse)", choices=("auto", "max", "min"))
    early_stopping: int = opt(0, "stop after this many epochs without improvement (0: off)", min=0)
    stages: list[StageConfig] = opt(list, "consecutive stages, e.g. head-only then full fine-tuning", factory=True)
    device: str = opt("auto", "auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps")
    precision: str = opt("auto", "auto (bf16 on CPU/CUDA where supported), fp32, bf16, fp16",
                         choices=("auto", "fp32", "bf16", "fp16"))
    channels_last: str = opt("auto", "memory format: auto (on with mixed precision), true, false",
                             choices=("auto", "true", "false"))
    compile: bool = opt(False, "torch.compile the model (slow to start; helps on GPUs)")
    threads: int = opt(0, "CPU threads (0: one per physical core)", min=0)
    seed: int = opt(0, "seed for everything (weights, shuffling, augmentation)", min=0)
    deterministic: bool = opt(False, "deterministic kernels: bit-identical reruns, slower")
    resume: str | None = opt(None, "auto (last.pt in the run folder) or a run folder / checkpoint path")
    checkpoint_steps: int = opt(0, "also write last.pt every N optimizer steps (0: end of epoch only)", min=0)
    eval_batch_size: int = opt(0, "evaluation batch size (0: twice batch_size)", min=0)
    tta: bool = opt(False, "average predictions over flips at evaluation")
    resize_from: int = opt(0, "progressive resizing: train the first epoch at this image side (px), growing "
                              "linearly to the full size (0: off)", min=0)
    resize_until: float = opt(0.75, "progressive resizing: the share of the epochs by which the side reaches the "
                                    "full size (the rest train at it)", min=0.0, max=1.0)
    ema: float = opt(0.0, "keep an exponential moving average of the weights with this decay per step, e.g. "
                          "0.999, and validate, test and save the average (0: off)", min=0.0, max=0.99999)
    auto_batch: bool = opt(False, "on device out-of-memory, halve the batch size and retry")
    log_every: int = opt(0, "print a line every N batches besides the live bar (0: off)", min=0)
    sync_bn: bool = opt(False, "SyncBatchNorm under distributed training")


@dataclass
class OutputConfig(_Strict):
    dir: str = opt("runs", "folder that holds run folders", check=path_problem)
    name: str | None = opt(None, "run folder name inside output.dir (default: model_bs<B>_lr<LR>_<timestamp>)",
                           check=folder_name_problem)
    tensorboard: bool = opt(True, "write TensorBoard events: scalars, HParams, the confusion matrix")
    histograms: bool = opt(False, "TensorBoard: every layer's weight and gradient histograms each epoch (124 tags "
                                  "for a ResNet-18; off keeps event files small)")
    log_steps: int = opt(50, "TensorBoard: train loss and lr every N optimizer steps besides each epoch (0: off)",
                         min=0)
    mlflow: str | None = opt(None, "MLflow tracking URI (sqlite:///mlflow.db, file:./mlruns, http://host:5000): "
                                   "params, metrics and the run folder (needs resnetlab[mlflow])")
    plots: bool = opt(True, "draw plots at the end of the run")
    progress: bool = opt(True, "print the run on screen: banner, live bars, epoch lines, final line (false: "
                               "silent; train.log in the run folder still gets every line)")


@dataclass
class Config(_Strict):
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    patches: PatchConfig = field(default_factory=PatchConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    output: OutputConfig = field(default_factory=OutputConfig)


SECTIONS = ("model", "data", "augment", "patches", "optim", "schedule", "train", "output")
