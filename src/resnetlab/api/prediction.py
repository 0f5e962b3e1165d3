"""``predict`` images (folders, globs, CSVs of paths) into a CSV."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from resnetlab.api.assemble import device_here, eval_batch_size, for_eval
from resnetlab.api.trained import Trained, load_trained
from resnetlab.data.augment import normalize
from resnetlab.data.loader import BatchLoader
from resnetlab.errors import UserError
from resnetlab.evaluation.inference import run_model
from resnetlab.training.device import use_channels_last
from resnetlab.training.run_folder import refuse_run_outputs, writable_folder


@dataclass
class PredictResult:
    path: Path
    count: int
    skipped: list[Any]
    repeated: dict[str, list[Path]] = field(default_factory=dict)  # id -> its files, for ids given to several



def collect_images(inputs: Sequence[str | Path]) -> list[Path]:
    """Image paths from folders (recursively), globs, files, or CSVs of paths."""
    import csv
    import glob

    found: list[Path] = []
    for item in inputs:
        item = str(item)
        path = Path(item)
        if path.is_dir():
            # Every entry but folders: pipes, devices and dangling links are listed as skipped by the decoder.
            found += sorted(p for p in path.rglob("*") if not p.is_dir() and not p.name.startswith("."))
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
    refuse_run_outputs(path, option=option)
    if path.is_dir():
        raise UserError(f"{option} {path} is a folder; give a file name, e.g. {path / 'predictions.csv'}")
    writable_folder(path.parent, option=f"{option} {path}: its folder")



def predict(run_or_checkpoint: str | Path, inputs: Sequence[str | Path], *, out: str | Path = "predictions.csv",
            tta: bool = False, batch_size: int = 128, compile: bool = False) -> PredictResult:
    """Predict every readable image; write ``id,label,<class probabilities>`` (regression: ``id,score``).

    The model runs as in training's validation (the run's precision and memory layout);
    ``compile`` adds ``torch.compile``: slower to start, faster on many images. An exported ``.onnx``
    file (``resnetlab export``) runs in ONNX Runtime instead, preprocessed as its metadata says.
    """
    if Path(run_or_checkpoint).suffix.lower() == ".onnx":
        if compile:
            raise UserError(f"--compile applies to PyTorch runs; {run_or_checkpoint} runs in ONNX Runtime as it is")
        return _predict_onnx(Path(run_or_checkpoint), inputs, out=Path(out), tta=tta, batch_size=batch_size)
    trained = load_trained(run_or_checkpoint)
    device, amp_dtype = device_here(trained.config)
    _check_output_file(Path(out), option="--out")
    features = None
    if trained.uses_features:
        paths, features = _feature_inputs(trained, inputs)
    else:
        paths = collect_images(inputs)
    array, kept, rows, skipped = decode_images(paths, image_size=trained.image_size, channels=trained.channels)
    loader = BatchLoader(array, np.zeros(len(array), dtype=np.int64), device=device,
                         batch_size=eval_batch_size(trained.config, batch_size),
                         features=None if features is None else features[rows])
    result = run_model(for_eval(trained.model.to(device), trained.config), loader,
                       prepare=lambda x: normalize(x, trained.mean, trained.std), tta=tta,
                       uses_features=trained.uses_features, amp_dtype=amp_dtype, compile=compile,
                       channels_last=use_channels_last(trained.config.train.channels_last, amp_dtype, device))
    trained.check_finite(result.outputs, doing="predict with")  # before the CSV: no file of garbage
    task = trained.task
    _write_csv(Path(out), kept, result.outputs, kind=task.kind, class_names=task.class_names,
               decode_scores=task.decode_scores)
    return PredictResult(path=Path(out), count=len(kept), skipped=skipped, repeated=_repeated_ids(kept))


def _predict_onnx(path: Path, inputs: Sequence[str | Path], *, out: Path, tta: bool,
                  batch_size: int) -> PredictResult:
    """predict with an exported ONNX file in ONNX Runtime, its preprocessing read from its metadata."""
    from resnetlab.deploy.onnx_model import OnnxModel

    model = OnnxModel(path)
    card = model.card
    _check_output_file(out, option="--out")
    array, kept, _, skipped = decode_images(collect_images(inputs), image_size=card.input_size, channels=card.channels)
    outputs = []
    for start in range(0, len(array), batch_size):
        batch = model.prepare(array[start:start + batch_size])
        logits = model.run(batch)
        if tta:
            logits = (logits + model.run(np.ascontiguousarray(batch[..., ::-1]))) / 2
        outputs.append(logits)
    result = np.concatenate(outputs)
    if not np.isfinite(result).all():
        raise UserError(f"{path} gives NaN or infinite outputs: its weights are broken; export another run")
    _write_csv(out, kept, result, kind=card.task, class_names=card.class_names, decode_scores=card.decode_scores)
    return PredictResult(path=out, count=len(kept), skipped=skipped, repeated=_repeated_ids(kept))


def decode_images(paths: Sequence[Path], *, image_size: int,
                channels: int) -> tuple[np.ndarray, list[Path], list[int], list[Any]]:
    """The readable images as one uint8 array, their paths and input rows, and the files skipped."""
    from resnetlab.data.bundle import BadFile
    from resnetlab.data.decode import decode_image

    images, kept, rows, skipped = [], [], [], []
    for row, path in enumerate(paths):
        decoded = decode_image(path, image_size=image_size, channels=channels)
        if isinstance(decoded, BadFile):
            skipped.append(decoded)
        else:
            images.append(decoded)
            kept.append(path)
            rows.append(row)
    if not images:
        raise UserError(f"none of the {len(paths)} input file(s) is a readable image (first: {skipped[0].path}: "
                        f"{skipped[0].reason}); give image files")
    return np.stack(images), kept, rows, skipped


def _write_csv(out: Path, paths: Sequence[Path], outputs: np.ndarray, *, kind: str, class_names: Sequence[str],
               decode_scores: Any) -> None:
    """``id,label,prob_<class>...`` (classification) or ``id,score`` (regression); its folder exists."""
    import csv

    with open(out, "w", newline="") as handle:
        writer = csv.writer(handle)
        if kind == "classification":
            writer.writerow(["id", "label", *[f"prob_{name}" for name in class_names]])
            probs = torch.from_numpy(np.asarray(outputs, dtype=np.float32)).softmax(dim=1).numpy()
            for path, row in zip(paths, probs):
                writer.writerow([path.stem, class_names[int(row.argmax())], *[f"{p:.6f}" for p in row]])
        else:
            writer.writerow(["id", "score"])
            for path, score in zip(paths, decode_scores(outputs)):
                writer.writerow([path.stem, f"{score:.6f}"])


def _repeated_ids(paths: Sequence[Path]) -> dict[str, list[Path]]:
    """The ids (file stems) that more than one of ``paths`` share, each with its files."""
    by_id: dict[str, list[Path]] = {}
    for path in paths:
        by_id.setdefault(path.stem, []).append(path)
    return {stem: files for stem, files in by_id.items() if len(files) > 1}



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

