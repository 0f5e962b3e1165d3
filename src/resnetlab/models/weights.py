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
- everything else must match exactly (strict loading), else a ``UserError`` names it.
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

from resnetlab.errors import UserError
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


def get_pretrained(arch: str, source: str = "imagenet") -> PretrainedWeights:
    """Metadata of the pretrained weights for ``arch`` from ``source``."""
    weights = PRETRAINED.get((arch, source))
    if weights is None:
        available = sorted({f"{a} ({s})" for a, s in PRETRAINED})
        raise UserError(f"no pretrained weights for model '{arch}' from source '{source}'; "
                        f"available: {', '.join(available)}")
    return weights


def load_pretrained(model: nn.Module, *, arch: str, source: str = "imagenet", url: str | None = None,
                    cache_dir: str | os.PathLike[str] | None = None, progress: bool = True) -> nn.Module:
    """Download (once, into torch.hub's cache or ``cache_dir``) and load pretrained weights.

    ``url`` replaces the known URL (any scheme urllib opens, including file://); a hash
    prefix in its file name ("name-<sha256 prefix>.pth") is checked. Returns ``model``.
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
        raise UserError(f"could not download weights for '{arch}' from {url} ({_first_line(err)}); "
                        "check the connection, or download the file elsewhere and load it as model weights") from err
    except (RuntimeError, pickle.UnpicklingError, EOFError) as err:
        raise UserError(f"weights for '{arch}' from {url} are unusable ({_first_line(err)}); "
                        "if a cached copy is corrupt, delete it from torch.hub's checkpoints folder") from err
    _load(model, _as_state_dict(state, where=url), where=url, arch=arch)
    return model


def load_weights_file(model: nn.Module, path: str | os.PathLike[str]) -> nn.Module:
    """Load a torchvision-format state dict or a resnetlab checkpoint (key "model"). Returns ``model``."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file '{path}' does not exist; check the path")
    obj = load_tensors(path, what=f"weights file '{path}'",
                       advice="pass a state dict saved with torch.save or a run's best.pt")
    _load(model, _as_state_dict(obj, where=str(path)), where=str(path), arch=None)
    return model


def _as_state_dict(obj: object, *, where: str) -> dict[str, Tensor]:
    if isinstance(obj, Mapping) and isinstance(obj.get("model"), Mapping):
        obj = obj["model"]
    if not isinstance(obj, Mapping) or not obj or not all(
            isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()):
        raise UserError(f"'{where}' holds no state dict (names to tensors) nor a checkpoint with key 'model'; "
                        "save one with torch.save(model.state_dict(), path)")
    state = dict(obj)
    # checkpoints saved from nn.DataParallel / DistributedDataParallel prefix every key
    if all(key.startswith("module.") for key in state):
        state = {key[len("module."):]: value for key, value in state.items()}
    return state


def _load(model: nn.Module, state: dict[str, Tensor], *, where: str, arch: str | None) -> None:
    target, state = _fit(model, state, where=where, arch=arch)
    target.load_state_dict(state, strict=True)


def _fit(model: nn.Module, state: dict[str, Tensor], *, where: str,
         arch: str | None) -> tuple[nn.Module, dict[str, Tensor]]:
    """The module to load into and ``state`` adapted to it.

    Reads the model but never changes it; raises ``UserError`` if the weights do not fit.
    """
    target = model
    # torchvision-format weights go into a multi-scale model's backbone
    if hasattr(model, "backbone") and not any(key.startswith("backbone.") for key in state):
        target = model.backbone
    own = target.state_dict()
    state = _fit_classifier(target, state, own)
    state = _fit_first_conv(target, state, own)
    for key in _attention_keys(target, own):
        state.setdefault(key, own[key])
    _check_fits(state, own, target=target, where=where, arch=arch)
    return target, state


def _fit_classifier(target: nn.Module, state: dict[str, Tensor], own: dict[str, Tensor]) -> dict[str, Tensor]:
    """Keep the checkpoint's classifier if it has the model's shape, else keep the model's own."""
    if not hasattr(target, "get_classifier"):
        return state
    prefix = _module_name(target, target.get_classifier()) + "."
    theirs = {k: v for k, v in state.items() if k.startswith(prefix)}
    mine = {k: v for k, v in own.items() if k.startswith(prefix)}
    if theirs.keys() == mine.keys() and all(v.shape == mine[k].shape for k, v in theirs.items()):
        return state
    return {**{k: v for k, v in state.items() if not k.startswith(prefix)}, **mine}


def _fit_first_conv(target: nn.Module, state: dict[str, Tensor], own: dict[str, Tensor]) -> dict[str, Tensor]:
    conv_name = next((name for name, m in target.named_modules() if isinstance(m, nn.Conv2d)), None)
    if conv_name is None or f"{conv_name}.weight" not in state:
        return state
    key = f"{conv_name}.weight"
    theirs, mine = state[key], own[key]
    if theirs.dim() != 4 or theirs.shape[1] != 3 or mine.shape[1] == 3 or theirs.shape[2:] != mine.shape[2:]:
        return state
    channels = mine.shape[1]
    if channels == 1:
        adapted = theirs.sum(dim=1, keepdim=True)
    else:
        adapted = theirs.repeat(1, math.ceil(channels / 3), 1, 1)[:, :channels] * (3 / channels)
    return {**state, key: adapted}


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
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
    if wrong:
        key = wrong[0]
        problems.append(f"{len(wrong)} of another shape (e.g. {key}: {tuple(state[key].shape)} in the weights, "
                        f"{tuple(own[key].shape)} in the model)")
    stem_differs = "conv1.weight" in wrong and state["conv1.weight"].shape[2:] != own["conv1.weight"].shape[2:]
    stem_hint = " (conv1 kernels differ: ImageNet weights need stem='imagenet')" if stem_differs else ""
    made_for = f"'{arch}'" if arch else "the architecture they were saved from"
    raise UserError(f"weights from {where} do not fit {type(target).__name__}: {'; '.join(problems)}{stem_hint}; "
                    f"build the model as {made_for}")


def _module_name(root: nn.Module, module: nn.Module) -> str:
    for name, candidate in root.named_modules():
        if candidate is module:
            return name
    raise ValueError(f"{type(module).__name__} is not a submodule of {type(root).__name__}")


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
