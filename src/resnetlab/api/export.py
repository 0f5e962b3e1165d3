"""``export`` a run's best weights to a deployable file and check it against the PyTorch model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from resnetlab.api.assemble import data_kwargs, for_eval
from resnetlab.api.trained import Trained, load_trained
from resnetlab.deploy import FORMATS, ModelCard, default_name, write_model
from resnetlab.deploy.formats import load_runner
from resnetlab.errors import UserError

CHECK_IMAGES = 32  # validation images run through both models: enough to see a layout or op error


@dataclass
class ExportResult:
    path: Path
    files: list[Path]
    format: str
    card: ModelCard
    checked: int  # images run through the file and the PyTorch model
    images_from: str  # where they came from
    max_abs_diff: float
    labels_agree: int | None  # images whose predicted class is the same (classification)

    def format_lines(self) -> str:
        agree = f", predicted labels agree on {self.labels_agree}/{self.checked}" if self.labels_agree is not None \
            else ""
        check = (f"checked on {self.checked} {self.images_from}: max |{self.format} - pytorch| = "
                 f"{self.max_abs_diff:.3g}{agree}")
        return f"wrote {', '.join(map(str, self.files))}\n{check}"


def export(run_or_checkpoint: str | Path, *, format: str = "onnx", out: str | Path | None = None,
           check_images: int = CHECK_IMAGES) -> ExportResult:
    """Write the run's best weights as ``format`` (onnx, torchscript, pt2, safetensors) with a :class:`ModelCard`
    (class names, input size, channels, mean/std, task) inside it or, for safetensors, also beside it.

    The default file is ``RUN/export/<run name><suffix>``; nothing of the run's own is ever overwritten. The
    written file is read back and run on up to ``check_images`` images of the run's validation split next to
    the PyTorch model; the result holds the largest absolute output difference.
    """
    if format not in FORMATS:
        raise UserError(f"--format {format}: choose one of {', '.join(FORMATS)}")
    trained = load_trained(run_or_checkpoint)
    model = _exportable(trained)
    path = _output_path(trained, format, out)
    card = ModelCard(task=trained.task.kind, class_names=list(trained.class_names), input_size=trained.image_size,
                     channels=trained.channels, mean=[float(m) for m in trained.mean],
                     std=[float(s) for s in trained.std], model=trained.config.model.name,
                     target_stats=list(trained.task.target_stats) if trained.task.target_stats else None,
                     resnetlab_version=_version())
    files = write_model(model, card, path, fmt=format)
    images, images_from = _check_images(trained, check_images)
    inputs = _normalize(images, trained)
    with torch.no_grad():
        reference = model(torch.from_numpy(inputs)).numpy()
    outputs = load_runner(path, fmt=format, model=model)(inputs)
    agree = int((outputs.argmax(1) == reference.argmax(1)).sum()) if trained.task.kind == "classification" else None
    return ExportResult(path=path, files=files, format=format, card=card, checked=len(images),
                        images_from=images_from, max_abs_diff=float(np.abs(outputs - reference).max()),
                        labels_agree=agree)


def _exportable(trained: Trained) -> torch.nn.Module:
    """The model as predict runs it, on the CPU in fp32, or a one-line reason why it cannot leave PyTorch."""
    cfg = trained.config
    if trained.uses_features:
        raise UserError(f"{trained.checkpoint}: a fusion model (model.fusion={cfg.model.fusion}) takes side "
                        "features beside each image, which the export formats' single image input cannot carry; "
                        "export a run trained with model.fusion=none")
    if cfg.patches.size and cfg.patches.test_random:
        raise UserError(f"{trained.checkpoint}: its evaluation averages random patches (patches.test_random=true), "
                        "which a deployed file cannot repeat; export a run with patches.test_random=false")
    return for_eval(trained.model.float().cpu(), cfg).eval()  # patches: the grid average predict uses


def _output_path(trained: Trained, fmt: str, out: str | Path | None) -> Path:
    run_dir = trained.run_dir.resolve()
    name = default_name(run_dir.name, fmt)
    if out is None:
        return run_dir / "export" / name
    path = Path(out)
    if path.is_dir() or str(out).endswith(("/", "\\")):
        path = path / name
    resolved = path.resolve()
    if resolved.exists() and run_dir in resolved.parents and run_dir / "export" not in resolved.parents:
        raise UserError(f"--out {out} is a file of the run itself; give a new file name or leave --out out "
                        f"(default {run_dir / 'export' / name})")
    if resolved.is_dir():
        raise UserError(f"--out {out} is a folder; give a file name")
    return path


def _check_images(trained: Trained, count: int) -> tuple[np.ndarray, str]:
    """Up to ``count`` uint8 images of the run's validation split; random pixels when its data is gone."""
    from resnetlab.config import build_config, to_dict
    from resnetlab.data.sources import load_data

    try:
        cfg = build_config([f"data.image_size={trained.image_size}", f"data.channels={trained.channels}"],
                           base=to_dict(trained.config))
        bundle = load_data(**data_kwargs(cfg.data), log=lambda line: None)
        images = np.asarray(bundle.val.images[:count])
        if len(images):
            return images, f"validation images of {cfg.data.source}"
    except (UserError, OSError):
        pass  # data moved or deleted since training: the file is still worth checking
    generator = np.random.default_rng(0)
    shape = (max(2, min(count, 8)), trained.channels, trained.image_size, trained.image_size)
    return generator.integers(0, 256, shape, dtype=np.uint8), "random images (the run's data was not found)"


def _normalize(images: np.ndarray, trained: Trained) -> np.ndarray:
    from resnetlab.data.augment import normalize

    return normalize(torch.from_numpy(np.ascontiguousarray(images)), trained.mean, trained.std).numpy()


def _version() -> str:
    from resnetlab import __version__

    return __version__
