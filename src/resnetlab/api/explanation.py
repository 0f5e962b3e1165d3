"""``explain`` predictions with Grad-CAM maps laid over the images: one PNG per image and a grid."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from resnetlab.api.prediction import collect_images, decode_images
from resnetlab.api.trained import Trained, load_trained
from resnetlab.data.augment import normalize
from resnetlab.errors import UserError
from resnetlab.evaluation.gradcam import CamResult, find_layer, grad_cam

VAL_IMAGES = 8  # validation images explained when no images are given


@dataclass
class Explained:
    id: str
    predicted: str
    confidence: float | None  # softmax probability of the predicted class; None for regression
    true: str | None  # known from the folder name or the run's own labels
    file: Path


@dataclass
class ExplainResult:
    out_dir: Path
    grid: Path
    layer: str
    images: list[Explained]

    def format_lines(self) -> str:
        lines = [f"{e.id}: predicted {e.predicted}" + (f" (p={e.confidence:.2f})" if e.confidence is not None else "")
                 + (f", true {e.true}" if e.true is not None else "") for e in self.images]
        last = f"Grad-CAM of {self.layer}: {len(self.images)} images and {self.grid.name} in {self.out_dir}"
        return "\n".join([*lines, last])


def explain(run_or_checkpoint: str | Path, images: Sequence[str | Path] = (), *, layer: str | None = None,
            out: str | Path | None = None, count: int = VAL_IMAGES) -> ExplainResult:
    """Grad-CAM of the predicted class for each image (files, folders, globs, CSVs of paths), or, with no
    images, for the first ``count`` validation images of the run's data.

    ``layer`` is the stage whose map is explained (default the last: layer4 of ImageNet-style ResNets,
    layer3 of CIFAR ones). The true class is shown when known: from the run's labels, or when an image's
    folder is named like a class. Writes ``<id>_gradcam.png`` per image and ``gradcam_grid.png`` into
    ``out`` (default RUN/explain).
    """
    if not images and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise UserError(f"--count {count}: give how many validation images to explain, a whole number >= 1")
    trained = load_trained(run_or_checkpoint)
    layer, _ = find_layer(trained.model, layer)
    if trained.config.patches.size:
        raise UserError(f"{trained.checkpoint} was trained on {trained.config.patches.size}px patches; explain takes "
                        "whole-image models (its maps would show patches averaged, not one view)")
    if images:
        if trained.uses_features:
            raise UserError(f"{trained.checkpoint} also takes side features per image; run explain without "
                            "images to explain its own validation images, whose features it knows")
        paths = collect_images(images)
        array, kept, _, _ = decode_images(paths, image_size=trained.image_size, channels=trained.channels)
        ids = [p.stem for p in kept]
        names = set(trained.class_names)
        true = [p.parent.name if p.parent.name in names else None for p in kept]
        features = None
    else:
        array, ids, true, features = _validation_images(trained, count)
    folder = Path(out) if out is not None else trained.run_dir / "explain"
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--out {out} is a file; give a folder for the images")
    folder.mkdir(parents=True, exist_ok=True)
    batch = normalize(torch.from_numpy(np.ascontiguousarray(array)), trained.mean, trained.std)
    extra = () if features is None else (torch.from_numpy(features),)
    result = grad_cam(trained.model.float().cpu(), batch, layer=layer, extra=extra)
    return _draw(trained, array, result, ids, true, folder, layer)


def _validation_images(trained: Trained, count: int) -> tuple[np.ndarray, list[str], list[str | None],
                                                               np.ndarray | None]:
    from resnetlab.api.assemble import data_kwargs
    from resnetlab.config import build_config, to_dict
    from resnetlab.data.sources import load_data

    cfg = build_config([f"data.image_size={trained.image_size}", f"data.channels={trained.channels}"],
                       base=to_dict(trained.config))
    val = load_data(**data_kwargs(cfg.data), log=lambda line: None).val
    if len(val) == 0:
        raise UserError(f"{cfg.data.source} has no validation images; give image files to explain")
    take = slice(0, min(count, len(val)))
    targets = np.asarray(val.targets[take])
    true = [trained.class_names[int(t)] if trained.task.kind == "classification" else f"{float(t):.3g}"
            for t in targets]
    features = None
    if val.features is not None:
        features = np.asarray(val.features[take], dtype=np.float32)
    return np.asarray(val.images[take]), [Path(i).stem for i in val.ids[take]], list(true), features


def _draw(trained: Trained, array: np.ndarray, result: CamResult, ids: list[str], true: list[str | None], folder: Path,
          layer: str) -> ExplainResult:
    from resnetlab.evaluation.plots import plot_gradcam_grid

    if trained.task.kind == "classification":
        probs = torch.from_numpy(result.outputs).softmax(1).numpy()
        predicted = [trained.class_names[int(i)] for i in probs.argmax(1)]
        confidence: list[float | None] = [float(p) for p in probs.max(1)]
    else:
        predicted = [f"{s:.3g}" for s in trained.task.decode_scores(result.outputs)]
        confidence = [None] * len(ids)
    correct = [None if t is None or trained.task.kind != "classification" else t == p
               for t, p in zip(true, predicted)]
    titles = [f"{p}" + (f" (p={c:.2f})" if c is not None else "") + (f"\ntrue {t}" if t is not None else "")
              for p, c, t in zip(predicted, confidence, true)]
    explained = []
    seen: set[str] = set()
    for i, image_id in enumerate(ids):
        image_id = image_id if image_id not in seen else f"{image_id}_{i}"  # files of one name in two folders
        seen.add(image_id)
        file = plot_gradcam_grid(array[i:i + 1], result.maps[i:i + 1], [titles[i]], correct=correct[i:i + 1],
                                 path=folder / f"{image_id}_gradcam.png")
        explained.append(Explained(image_id, predicted[i], confidence[i], true[i], file))
    grid = plot_gradcam_grid(array, result.maps, titles, correct=correct, path=folder / "gradcam_grid.png",
                             title=f"Grad-CAM of {layer} ({trained.run_dir.name})")
    return ExplainResult(out_dir=folder, grid=grid, layer=layer, images=explained)
