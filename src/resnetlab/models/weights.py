"""Pretrained weights as data, and loading any checkpoint into a resnetlab model.

The ImageNet weights are torchvision's IMAGENET1K_V1 files. Their file names end in the
first hex digits of the file's sha256, which ``torch.hub`` verifies after download.

Loading adapts a checkpoint to the model it goes into:
- classifier: kept when its shape matches; otherwise the checkpoint's is dropped and the
  model keeps the fresh classifier it was built with (a new class count, or none for
  ``num_classes=0`` and the backbone of a multi-scale model);
- first convolution: for ``in_channels=1`` the RGB filters are summed, which gives a
  grayscale image (R = G = B) exactly the response the RGB model gave; for other counts
  input channel i takes RGB filter i mod 3, scaled by 3/in_channels so that an input
  whose channels all carry the same signal gets about the RGB model's response (exactly
  when in_channels is a multiple of 3);
- squeeze-and-excitation layers the checkpoint lacks (``block_attention=True`` on
  ImageNet weights) keep their fresh initialisation;
- everything else must match exactly (strict loading), else a ``WeightsMismatch`` names it.

Both loaders return a ``LoadedWeights``: what was taken and what was adapted, for the
caller to report (this package prints nothing).
"""

from __future__ import annotations

import math
import os
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from resnetlab.errors import first_line
from resnetlab.models.attention import SqueezeExcite
from resnetlab.models.registry import create_model, is_model
from resnetlab.safe_load import load_tensors

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_TORCHVISION_RECIPE = "https://github.com/pytorch/vision/tree/main/references/classification#resnet"


@dataclass(frozen=True)
class PretrainedWeights:
    """Where a set of weights lives and how to evaluate with it."""

    arch: str
    source: str
    url: str
    num_params: int
    num_classes: int
    top1: float  # ImageNet-1k validation accuracy (%) at resize/crop below
    top5: float
    resize: int = 256
    crop: int = 224
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    recipe: str = _TORCHVISION_RECIPE


def _imagenet(arch: str, filename: str, num_params: int, top1: float, top5: float) -> PretrainedWeights:
    return PretrainedWeights(arch=arch, source="imagenet", url=f"https://download.pytorch.org/models/{filename}",
                             num_params=num_params, num_classes=1000, top1=top1, top5=top5)


PRETRAINED: dict[tuple[str, str], PretrainedWeights] = {
    (w.arch, w.source): w
    for w in (
        _imagenet("resnet18", "resnet18-f37072fd.pth", 11_689_512, 69.758, 89.078),
        _imagenet("resnet34", "resnet34-b627a593.pth", 21_797_672, 73.314, 91.420),
        _imagenet("resnet50", "resnet50-0676ba61.pth", 25_557_032, 76.130, 92.862),
        _imagenet("resnet101", "resnet101-63fe2227.pth", 44_549_160, 77.374, 93.546),
        _imagenet("resnet152", "resnet152-394f9c45.pth", 60_192_808, 78.312, 94.046),
    )
}


@dataclass(frozen=True)
class LoadedWeights:
    """What loading did: how many tensors came from the file and how the model's own parts were kept."""

    source: str
    tensors: int  # entries of the state dict taken from the file, buffers included
    classifier: str  # "kept" (the file's), "re-made" (the model's fresh one), "dropped" (model has none), "" if unknown
    num_classes: int
    first_conv: str = ""  # how the first convolution was adapted, if it was
    fresh: int = 0  # squeeze-and-excitation tensors the file lacks, left at their initialisation
    into: str = ""  # "backbone" when the file went into a wrapper's backbone

    def summary(self) -> str:
        """One line, e.g. "loaded 122 tensors from f.pth; classifier re-made for 10 classes"."""
        parts = [f"loaded {self.tensors} tensors from {self.source}" + (f" into the {self.into}" if self.into else "")]
        if self.classifier == "kept":
            parts.append(f"classifier kept ({self.num_classes} classes)")
        elif self.classifier == "re-made":
            parts.append(f"classifier re-made for {self.num_classes} classes")
        elif self.classifier == "dropped":
            parts.append("its classifier dropped")
        if self.first_conv:
            parts.append(self.first_conv)
        if self.fresh:
            parts.append(f"{self.fresh} squeeze-excitation tensors left fresh")
        return "; ".join(parts)


class WeightsMismatch(ValueError):
    """Weights that do not fit the model.

    When the first convolution is all that differs, ``first_conv`` says how (file vs model)
    and ``needs`` holds the model arguments that would make the file fit, e.g.
    ``{"stem": "cifar", "in_channels": 1}``, so that a caller can name its own settings.
    """

    def __init__(self, message: str, *, first_conv: str = "", needs: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.first_conv = first_conv
        self.needs = needs or {}


def get_pretrained(arch: str, source: str = "imagenet") -> PretrainedWeights:
    """Metadata of the pretrained weights for ``arch`` from ``source``."""
    weights = PRETRAINED.get((arch, source))
    if weights is None:
        available = sorted({f"{a} ({s})" for a, s in PRETRAINED})
        raise ValueError(f"no pretrained weights for model '{arch}' from source '{source}'; "
                        f"available: {', '.join(available)}")
    return weights


def load_pretrained(model: nn.Module, *, arch: str, source: str = "imagenet", url: str | None = None,
                    cache_dir: str | os.PathLike[str] | None = None, progress: bool = True) -> LoadedWeights:
    """Download (once, into torch.hub's cache or ``cache_dir``) and load pretrained weights into ``model``.

    ``url`` replaces the known URL (any scheme urllib opens, including file://); a hash
    prefix in its file name ("name-<sha256 prefix>.pth") is checked.
    """
    if url is None:
        url = get_pretrained(arch, source).url
    if is_model(arch):
        # a dry run against shape-only tensors catches a wrong arch before a 100 MB download
        with torch.device("meta"):
            reference = create_model(arch).state_dict()
        _fit(model, reference, where=url, arch=arch)
    try:
        state = torch.hub.load_state_dict_from_url(
            url, model_dir=None if cache_dir is None else str(cache_dir), map_location="cpu",
            progress=progress, check_hash=True, weights_only=True)
    except OSError as err:  # URLError is an OSError
        raise ValueError(f"could not download weights for '{arch}' from {url} ({first_line(err)}); "
                        "check the connection, or download it elsewhere and pass model.weights=PATH") from err
    except (RuntimeError, pickle.UnpicklingError, EOFError) as err:
        raise ValueError(f"weights for '{arch}' from {url} are unusable ({first_line(err)}); "
                        "if a cached copy is corrupt, delete it from torch.hub's checkpoints folder") from err
    return _load(model, _as_state_dict(state, where=url), where=url, arch=arch)


def load_weights_file(model: nn.Module, path: str | os.PathLike[str]) -> LoadedWeights:
    """Load a state dict into ``model``: torchvision format, a resnetlab checkpoint (key "model") or a
    wrapper with key "state_dict" (Lightning and many training scripts)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"weights file '{path}' does not exist; check the path")
    obj = load_tensors(path, what=f"weights file '{path}'",
                       advice="pass a state dict saved with torch.save or a run's best.pt")
    return _load(model, _as_state_dict(obj, where=str(path)), where=str(path), arch=None)


def _as_state_dict(obj: object, *, where: str) -> dict[str, Tensor]:
    wrapped_in = None
    if isinstance(obj, Mapping):
        wrapped_in = next((key for key in ("model", "state_dict") if isinstance(obj.get(key), Mapping)), None)
        obj = obj[wrapped_in] if wrapped_in else obj
    if not isinstance(obj, Mapping) or not obj or not all(
            isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()):
        raise ValueError(f"'{where}' holds no state dict (names to tensors) nor a checkpoint with key 'model' or "
                        "'state_dict'; save one with torch.save(model.state_dict(), path)")
    state = dict(obj)
    # a LightningModule keeps the network as an attribute, usually self.model, which prefixes every key
    if wrapped_in == "state_dict" and all(key.startswith("model.") for key in state):
        state = {key[len("model."):]: value for key, value in state.items()}
    # checkpoints saved from nn.DataParallel / DistributedDataParallel prefix every key
    if all(key.startswith("module.") for key in state):
        state = {key[len("module."):]: value for key, value in state.items()}
    return state


def _load(model: nn.Module, state: dict[str, Tensor], *, where: str, arch: str | None) -> LoadedWeights:
    target, state, loaded = _fit(model, state, where=where, arch=arch)
    target.load_state_dict(state, strict=True)
    return loaded


def _fit(model: nn.Module, state: dict[str, Tensor], *, where: str,
         arch: str | None) -> tuple[nn.Module, dict[str, Tensor], LoadedWeights]:
    """The module to load into, ``state`` adapted to it, and what the adaptation did.

    Reads the model but never changes it; raises ``WeightsMismatch`` if the weights do not fit.
    """
    target = model
    # torchvision-format weights go into a multi-scale model's backbone
    if hasattr(model, "backbone") and not any(key.startswith("backbone.") for key in state):
        target = model.backbone
    own = target.state_dict()
    state, classifier, own_keys = _fit_classifier(target, state, own)
    state, first_conv = _fit_first_conv(target, state, own)
    fresh = [key for key in _attention_keys(target, own) if key not in state]
    state = {**state, **{key: own[key] for key in fresh}}
    _check_fits(state, own, target=target, where=where, arch=arch)
    loaded = LoadedWeights(source=where, tensors=len(state) - len(own_keys) - len(fresh), classifier=classifier,
                           num_classes=int(getattr(target, "num_classes", 0) or 0), first_conv=first_conv,
                           fresh=len(fresh), into="backbone" if target is not model else "")
    return target, state, loaded


def _fit_classifier(target: nn.Module, state: dict[str, Tensor],
                    own: dict[str, Tensor]) -> tuple[dict[str, Tensor], str, set[str]]:
    """Keep the checkpoint's classifier if it has the model's shape, else keep the model's own.

    Returns the state, "kept", "re-made" or "dropped", and the keys that hold the model's own tensors.
    """
    if not hasattr(target, "get_classifier"):
        return state, "", set()
    prefix = _module_name(target, target.get_classifier()) + "."
    theirs = {k: v for k, v in state.items() if k.startswith(prefix)}
    mine = {k: v for k, v in own.items() if k.startswith(prefix)}
    if theirs.keys() == mine.keys() and all(v.shape == mine[k].shape for k, v in theirs.items()):
        return state, "kept", set()
    state = {**{k: v for k, v in state.items() if not k.startswith(prefix)}, **mine}
    return state, "re-made" if mine else "dropped", set(mine)


def _first_conv(target: nn.Module) -> str | None:
    return next((name for name, m in target.named_modules() if isinstance(m, nn.Conv2d)), None)


def _fit_first_conv(target: nn.Module, state: dict[str, Tensor],
                    own: dict[str, Tensor]) -> tuple[dict[str, Tensor], str]:
    """The state with RGB first-conv filters adapted to the model's input channels, and how (or "")."""
    conv_name = _first_conv(target)
    if conv_name is None or f"{conv_name}.weight" not in state:
        return state, ""
    key = f"{conv_name}.weight"
    theirs, mine = state[key], own[key]
    if theirs.dim() != 4 or theirs.shape[1] != 3 or mine.shape[1] == 3 or theirs.shape[2:] != mine.shape[2:]:
        return state, ""
    channels = mine.shape[1]
    if channels == 1:
        adapted = theirs.sum(dim=1, keepdim=True)
        how = f"{conv_name}'s RGB filters summed for 1 input channel"
    else:
        adapted = theirs.repeat(1, math.ceil(channels / 3), 1, 1)[:, :channels] * (3 / channels)
        how = f"{conv_name}'s RGB filters spread over {channels} input channels"
    return {**state, key: adapted}, how


def _attention_keys(target: nn.Module, own: dict[str, Tensor]) -> list[str]:
    prefixes = tuple(name + "." for name, m in target.named_modules() if isinstance(m, SqueezeExcite))
    return [key for key in own if prefixes and key.startswith(prefixes)]


def _check_fits(state: dict[str, Tensor], own: dict[str, Tensor], *, target: nn.Module, where: str,
                arch: str | None) -> None:
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and state[k].shape != own[k].shape]
    if not (missing or unexpected or wrong):
        return
    first_conv, needs = _first_conv_difference(state, own, target=target, wrong=wrong)
    if needs and wrong == [f"{_first_conv(target)}.weight"] and not (missing or unexpected):
        settings = ", ".join(f"{k}={v!r}" for k, v in needs.items())
        raise WeightsMismatch(f"weights from {where} do not fit {type(target).__name__}: {first_conv}; "
                              f"build the model with {settings}", first_conv=first_conv, needs=needs)
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
    if wrong:
        key = wrong[0]
        problems.append(f"{len(wrong)} of another shape (e.g. {key}: {tuple(state[key].shape)} in the weights, "
                        f"{tuple(own[key].shape)} in the model)")
    made_for = f"'{arch}'" if arch else "the architecture they were saved from"
    detail = f" ({first_conv})" if first_conv else ""
    raise WeightsMismatch(f"weights from {where} do not fit {type(target).__name__}: {'; '.join(problems)}{detail}; "
                          f"build the model as {made_for}", first_conv=first_conv)


def _first_conv_difference(state: dict[str, Tensor], own: dict[str, Tensor], *, target: nn.Module,
                           wrong: list[str]) -> tuple[str, dict[str, object]]:
    """How the first convolutions differ, e.g. "the file's conv1 is 3x3 with 1 input channel, the model's
    7x7 with 3", and the model arguments that would remove the difference (empty if none would)."""
    conv = _first_conv(target)
    key = f"{conv}.weight"
    if conv is None or key not in wrong or state[key].dim() != 4:
        return "", {}
    theirs, mine = state[key].shape, own[key].shape
    text = (f"the file's {conv} is {theirs[2]}x{theirs[3]} with {theirs[1]} input channel{'s' * (theirs[1] != 1)}, "
            f"the model's {mine[2]}x{mine[3]} with {mine[1]}")
    needs: dict[str, object] = {}
    if theirs[2:] != mine[2:]:
        stem = {(7, 7): "imagenet", (3, 3): "cifar"}.get(tuple(theirs[2:]))  # the two stems' first kernels
        if stem is None:
            return text, {}
        needs["stem"] = stem
    if theirs[1] != mine[1] and theirs[1] != 3:  # RGB filters adapt to any channel count, others do not
        needs["in_channels"] = theirs[1]
    if theirs[0] != mine[0]:  # another width: another architecture, which no argument fixes
        return text, {}
    return text, needs


def _module_name(root: nn.Module, module: nn.Module) -> str:
    for name, candidate in root.named_modules():
        if candidate is module:
            return name
    raise ValueError(f"{type(module).__name__} is not a submodule of {type(root).__name__}")
