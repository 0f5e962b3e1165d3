"""A trained model loaded back with what it needs to see images as it saw them in training."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from resnetlab.api.assemble import Task, build_model, input_size
from resnetlab.config import Config, to_dict
from resnetlab.config.schema import ModelConfig
from resnetlab.errors import UserError
from resnetlab.training.checkpoint import load_checkpoint


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

    def check_finite(self, outputs: np.ndarray, *, doing: str, of: str = "") -> None:
        """Refuse NaN or infinite outputs (the weights of a diverged run) in one line, before they are used."""
        finite = np.isfinite(outputs.reshape(len(outputs), -1)).all(axis=1)
        if not finite.all():
            raise UserError(f"{self.checkpoint} gives NaN or infinite outputs for {int((~finite).sum())} of "
                            f"{len(finite)} images{of}: its weights are broken (a diverged run?); {doing} "
                            "another checkpoint (best.pt or last.pt) or train again")

    def standardize_features(self, raw: np.ndarray) -> np.ndarray:
        if self.feature_stats is None:
            return raw.astype(np.float32)
        mean, std = self.feature_stats
        return ((raw - mean) / std).astype(np.float32)



def load_trained(run_or_checkpoint: str | Path, *, device: torch.device | str = "cpu") -> Trained:
    """A trained model and what it needs to see images as it saw them in training."""
    from resnetlab.config import from_dict

    path = Path(run_or_checkpoint)
    if path.is_dir() and _is_baseline_run(path):
        raise UserError(f"{path} is a HOG+SVM baseline run: it keeps no model to load; its val and test results "
                        f"are in {path / 'metrics.json'} and report.md (fit it on other data with "
                        "resnetlab baseline hog-svm data.source=...)")
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
                        image_size=input_size(cfg, int(ckpt["image_size"])), feature_dim=feature_dim)
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


def _is_baseline_run(folder: Path) -> bool:
    """A run folder written by a classical baseline (config.yaml with a `baseline:` section)."""
    import yaml

    config = folder / "config.yaml"
    try:
        return config.is_file() and "baseline" in (yaml.safe_load(config.read_text()) or {})
    except (OSError, yaml.YAMLError, TypeError):
        return False

