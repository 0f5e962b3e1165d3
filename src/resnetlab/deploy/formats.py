"""Write a model in a deployable format with its :class:`ModelCard`, and read it back to check it.

- onnx: ONNX (torch.onnx's exporter), dynamic batch axis, the card in ``metadata_props``;
- torchscript: a traced ``torch.jit`` module, the card as the extra file ``resnetlab.json``;
- pt2: a ``torch.export`` program (dynamic batch), the card as the extra file ``resnetlab.json``;
- safetensors: the weights only, the card in the header's metadata and in ``<name>.json`` beside it.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from resnetlab.atomic_write import atomic_write_file
from resnetlab.deploy.card import ModelCard
from resnetlab.extras import require

FORMATS = {"onnx": ".onnx", "torchscript": ".torchscript.pt", "pt2": ".pt2", "safetensors": ".safetensors"}
CARD_FILE = "resnetlab.json"  # the extra file inside TorchScript and torch.export archives

Runner = Callable[[np.ndarray], np.ndarray]  # normalized float32 images -> outputs


def default_name(run_name: str, fmt: str) -> str:
    return f"{run_name}{FORMATS[fmt]}"


def write_model(model: nn.Module, card: ModelCard, path: Path, *, fmt: str) -> list[Path]:
    """Write ``model`` (in eval mode, on the CPU) to ``path``; return every file written."""
    example = torch.zeros(2, card.channels, card.input_size, card.input_size)
    writer = {"onnx": _write_onnx, "torchscript": _write_torchscript, "pt2": _write_pt2,
              "safetensors": _write_safetensors}[fmt]
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        return writer(model, example, card, path)


def load_runner(path: Path, *, fmt: str, model: nn.Module | None = None) -> Runner:
    """The written file as a function of normalized images, to compare with the model it came from.

    safetensors holds weights only: they are loaded into a copy of ``model``.
    """
    if fmt == "onnx":
        from resnetlab.deploy.onnx_model import OnnxModel

        return OnnxModel(path).run
    if fmt == "torchscript":
        module = _jit_load(path)
    elif fmt == "pt2":
        module = torch.export.load(str(path)).module()
    else:
        import copy

        safetensors_torch = require("safetensors.torch", extra="export", what="safetensors export")
        module = copy.deepcopy(model)
        module.load_state_dict(safetensors_torch.load_file(str(path)))
        module.eval()

    def run(images: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(images)).numpy()

    return run


def read_card(path: Path, *, fmt: str) -> ModelCard:
    """The card stored in (or beside) an exported file."""
    if fmt == "onnx":
        onnx = require("onnx", extra="export", what="reading an ONNX file")
        proto = onnx.load(str(path), load_external_data=False)
        return ModelCard.from_strings({p.key: p.value for p in proto.metadata_props}, source=str(path))
    if fmt == "safetensors":
        safetensors = require("safetensors", extra="export", what="reading a safetensors file")
        with safetensors.safe_open(str(path), framework="numpy") as handle:
            return ModelCard.from_strings(handle.metadata() or {}, source=str(path))
    import json

    extra = {CARD_FILE: ""}
    if fmt == "torchscript":
        _jit_load(path, extra_files=extra)
    else:
        torch.export.load(str(path), extra_files=extra)
    return ModelCard(**json.loads(extra[CARD_FILE]))


def _jit_load(path: Path, *, extra_files: dict[str, str] | None = None) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit's notice; the file format stays readable
        return torch.jit.load(str(path), map_location="cpu", _extra_files=extra_files or {})


def _dynamic_batch() -> tuple[dict[int, torch.export.Dim], ...]:
    return ({0: torch.export.Dim("batch", min=1, max=65536)},)


def _write_onnx(model: nn.Module, example: torch.Tensor, card: ModelCard, path: Path) -> list[Path]:
    onnx = require("onnx", extra="export", what="ONNX export")
    require("onnxscript", extra="export", what="ONNX export")  # torch.onnx's exporter is written with it
    # The exporter logs one line per torchvision operator it cannot register: noise here.
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # deprecations inside torch.export, not ours to fix
            program = torch.onnx.export(model, (example,), input_names=["images"], output_names=["outputs"],
                                        dynamic_shapes=_dynamic_batch(), dynamo=True, verbose=False)
    finally:
        registration.setLevel(level)
    proto = program.model_proto
    for key, value in card.to_strings().items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "resnetlab"
    atomic_write_file(path, lambda tmp: onnx.save(proto, str(tmp)))
    return [path]


def _write_torchscript(model: nn.Module, example: torch.Tensor, card: ModelCard, path: Path) -> list[Path]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's deprecation notice: the format still loads everywhere
        traced = torch.jit.trace(model, example, check_trace=False)
        atomic_write_file(path, lambda tmp: torch.jit.save(traced, str(tmp),
                                                           _extra_files={CARD_FILE: card.to_json()}))
    return [path]


def _write_pt2(model: nn.Module, example: torch.Tensor, card: ModelCard, path: Path) -> list[Path]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.export.export(model, (example,), dynamic_shapes=_dynamic_batch())
    atomic_write_file(path, lambda tmp: torch.export.save(program, str(tmp),
                                                          extra_files={CARD_FILE: card.to_json()}))
    return [path]


def _write_safetensors(model: nn.Module, example: torch.Tensor, card: ModelCard, path: Path) -> list[Path]:
    safetensors_torch = require("safetensors.torch", extra="export", what="safetensors export")
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    atomic_write_file(path, lambda tmp: safetensors_torch.save_file(tensors, str(tmp), metadata=card.to_strings()))
    beside = path.with_suffix(".json")
    atomic_write_file(beside, lambda tmp: Path(tmp).write_text(card.to_json()))
    return [path, beside]
