"""Grad-CAM (Selvaraju et al., arXiv:1610.02391): where in the image a stage's features pushed the prediction.

A forward hook keeps the chosen stage's output map A (N, K, h, w); the gradient of the explained output
with respect to A, averaged over the map, weights each of the K channels; the weighted sum, through a
ReLU (only evidence *for* the output), upsampled to the input and scaled to [0, 1] per image, is the map.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from resnetlab.errors import UserError


@dataclass
class CamResult:
    maps: np.ndarray  # (N, H, W) in [0, 1], at the input's size
    outputs: np.ndarray  # the model's outputs (N, K) logits or (N,) / (N, 1) scores
    explained: np.ndarray  # (N,) the output index each map explains (the predicted class by default)
    map_size: tuple[int, int]  # the stage's (h, w) before upsampling


def stage_names(model: nn.Module) -> list[str]:
    """The names ``layer`` may take: the stages of the model's backbone, shallow to deep."""
    core = getattr(model, "backbone", model)
    return list(getattr(core, "stage_names", []))


def find_layer(model: nn.Module, name: str | None) -> tuple[str, nn.Module]:
    """The module called ``name`` (a stage such as layer4, or any dotted module name); None is the last stage."""
    stages = stage_names(model)
    name = name or (stages[-1] if stages else None)
    modules = dict(model.named_modules())
    for candidate in (name, f"backbone.{name}"):
        if candidate in modules and candidate:
            return str(name), modules[candidate]
    raise UserError(f"--layer {name}: the model has no such layer; use one of its stages: "
                    f"{', '.join(stages) or 'none found'}")


def grad_cam(model: nn.Module, images: Tensor, *, layer: str | None = None,
             targets: Tensor | np.ndarray | None = None, extra: tuple[Tensor, ...] = ()) -> CamResult:
    """Grad-CAM maps of normalized ``images`` (N, C, H, W) for output ``targets`` (default: the predicted class;
    for one-output regression models, the score); ``extra`` are further model inputs (side features).
    The model is left as it was."""
    name, module = find_layer(model, layer)
    kept: list[Tensor] = []
    handle = module.register_forward_hook(lambda _m, _inputs, output: kept.append(output))
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            outputs = model(images.detach().requires_grad_(True), *extra)  # grads reach the map even if weights are frozen
            activation = kept[-1]
            if activation.dim() != 4:
                raise UserError(f"--layer {name} gives vectors of shape {tuple(activation.shape)}, not a spatial "
                                "map; choose a stage such as layer4")
            flat = outputs.reshape(len(outputs), -1)
            if flat.shape[1] == 1:  # a regression score
                chosen = torch.zeros(len(flat), dtype=torch.long, device=flat.device)
            elif targets is None:
                chosen = flat.argmax(1)
            else:
                chosen = torch.as_tensor(np.asarray(targets), device=flat.device).long()
            score = flat.gather(1, chosen[:, None]).sum()
            (grads,) = torch.autograd.grad(score, activation)
    finally:
        handle.remove()
        model.train(was_training)
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * activation).sum(dim=1, keepdim=True)).detach()
    cam = F.interpolate(cam, size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    peak = cam.flatten(1).max(dim=1).values.clamp_min(1e-12)[:, None, None]
    return CamResult(maps=(cam / peak).cpu().numpy(), outputs=outputs.detach().float().cpu().numpy(),
                     explained=chosen.cpu().numpy(), map_size=tuple(activation.shape[-2:]))


def report_examples(model: nn.Module, images: np.ndarray, targets: np.ndarray, outputs: np.ndarray,
                    class_names: list[str], *, mean: tuple[float, ...], std: tuple[float, ...], path: Path,
                    features: np.ndarray | None = None, per_kind: int = 4) -> Path:
    """plots/gradcam.png of a run's report: the ``per_kind`` most confident correct and mistaken validation
    images with their maps (a handful of forward/backward passes: well under a second on a CPU)."""
    from resnetlab.data.augment import normalize
    from resnetlab.evaluation.plots import plot_gradcam_grid, plot_message

    predicted = outputs.argmax(1)
    confidence = torch.from_numpy(outputs).float().softmax(1).numpy().max(1)
    order = np.argsort(-confidence, kind="stable")
    right = [i for i in order if predicted[i] == targets[i]][:per_kind]
    wrong = [i for i in order if predicted[i] != targets[i]][:per_kind]
    chosen = np.array(right + wrong, dtype=np.int64)
    device = next(model.parameters()).device
    batch = normalize(torch.from_numpy(np.ascontiguousarray(images[chosen])).to(device), mean, std)
    extra = () if features is None else (torch.from_numpy(features[chosen]).to(device),)
    result = grad_cam(model, batch, extra=extra)
    if result.map_size == (1, 1):
        return plot_message(f"no spatial map to explain: {stage_names(model)[-1]} is 1x1 at this input size",
                            title="Grad-CAM", path=path)
    titles = [f"{class_names[predicted[i]]} (p={confidence[i]:.2f})\ntrue {class_names[targets[i]]}" for i in chosen]
    return plot_gradcam_grid(images[chosen], result.maps, titles, path=path,
                             correct=[bool(predicted[i] == targets[i]) for i in chosen],
                             title=f"Grad-CAM: {len(right)} confident right, {len(wrong)} confident wrong "
                                   "(red: mistakes)")
