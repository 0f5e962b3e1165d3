"""``evaluate`` a trained model on any split or new data, and ``summary`` of a model."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from resnetlab.api.assemble import (
    build_model,
    clip_groups,
    device_here,
    eval_batch_size,
    for_eval,
    input_size,
    make_loader,
    short_list,
)
from resnetlab.api.trained import load_trained
from resnetlab.config import build_config, to_dict
from resnetlab.config.schema import ModelConfig
from resnetlab.data.augment import normalize
from resnetlab.data.sources import load_data
from resnetlab.errors import UserError
from resnetlab.evaluate.inference import run_model
from resnetlab.train.device import set_threads, use_channels_last
from resnetlab.train.run_folder import (
    write_json,
)


@dataclass
class EvalResult:
    split: str
    scalars: dict[str, float]
    out_dir: Path
    count: int

    def format(self) -> str:
        lines = [f"{self.split}: {self.count} images"]
        lines += [f"  {k:20} {v:.4f}" for k, v in self.scalars.items() if isinstance(v, float)]
        lines.append(f"metrics, plots and report in {self.out_dir}")
        return "\n".join(lines)



def evaluate(run_or_checkpoint: str | Path, *, overrides: Sequence[str] = (), split: str = "val",
             tta: bool = False, out_dir: str | Path | None = None, compile: bool = False) -> EvalResult:
    """Every metric and plot of a trained model, on any split of its data or of new data with its classes.

    ``compile`` runs the model through ``torch.compile``: slower to start, faster on many images.
    """
    bad = [o for o in overrides if not o.startswith("data.")]
    if bad:
        raise UserError(f"eval takes data.* overrides only, got {bad[0]}: the model is already trained; "
                        "to change other settings train a new run")
    if out_dir is not None and Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise UserError(f"--out {out_dir} is a file; give a folder for the metrics and plots")
    trained = load_trained(run_or_checkpoint)
    cfg = build_config([*overrides, f"data.image_size={trained.image_size}", f"data.channels={trained.channels}"],
                       base=to_dict(trained.config))
    device, amp_dtype = device_here(cfg)
    set_threads(cfg.train.threads)
    bundle = load_data(cfg.data, log=lambda line: None)
    if trained.task.kind == "classification" and bundle.class_names != trained.class_names:
        raise UserError(f"{trained.checkpoint} was trained on classes {short_list(trained.class_names)} but "
                        f"{cfg.data.source} has {short_list(bundle.class_names)}; evaluate on data with the "
                        "same classes")
    chosen = {"train": bundle.train, "val": bundle.val, "test": bundle.test}[split]
    if chosen is None or len(chosen) == 0:
        raise UserError(f"--split {split}: {cfg.data.source} has no {split} split; use --split val")
    task = trained.task
    if chosen.features is not None and bundle.feature_stats is not None:
        # load_data scaled the features with this data's training split; the model knows its own statistics.
        raw = chosen.features * bundle.feature_stats[1] + bundle.feature_stats[0]
        chosen = dataclasses.replace(chosen, features=trained.standardize_features(raw))
    model = for_eval(trained.model.to(device), trained.config)
    loader = make_loader(chosen, task, batch_size=eval_batch_size(trained.config, 256), device=device, shuffle=False)
    prepare = lambda images: normalize(images, trained.mean, trained.std)  # noqa: E731
    keep = hasattr(model, "get_classifier") and task.kind == "classification"
    out = run_model(model, loader, prepare=prepare, amp_dtype=amp_dtype, tta=tta, keep_features=keep,
                    uses_features=trained.uses_features, compile=compile,
                    channels_last=use_channels_last(cfg.train.channels_last, amp_dtype, device))
    scalars, detail = task.metrics(out.outputs, out.targets, clip_groups(chosen, out))
    if out.features is not None:
        # Seed 001 compares how sparse HOG and network features are.
        scalars["feature_zero_share"] = float(np.mean(out.features == 0))
    folder = Path(out_dir) if out_dir else trained.run_dir / f"eval-{split}"
    folder.mkdir(parents=True, exist_ok=True)
    result = {"split": split, "source": cfg.data.source, "checkpoint": str(trained.checkpoint), "tta": tta,
              "scalars": scalars}
    if task.kind == "classification":
        result.update({**detail.to_dict(), "scalars": scalars})  # scalars plus the extra feature share
        from resnetlab.evaluate import plots

        probs = torch.from_numpy(out.outputs).softmax(dim=1).numpy()
        history_file = trained.run_dir / "history.json"
        import json

        history = json.loads(history_file.read_text()) if history_file.is_file() else []
        plots.write_classification_plots(detail, history, monitor=trained.config.train.monitor,
                                         plots_dir=folder / "plots", images=np.asarray(chosen.images[out.index]),
                                         probs=probs, targets=out.targets)
    else:
        from resnetlab.evaluate import plots

        plots.write_regression_plots([], monitor=trained.config.train.monitor, plots_dir=folder / "plots",
                                     pred=detail, target=np.asarray(chosen.targets)[out.index])
    write_json(folder / "metrics.json", result)
    return EvalResult(split=split, scalars=scalars, out_dir=folder, count=len(out.targets))



def summary(model: str, *, image_size: int = 224, in_channels: int = 3, num_classes: int = 1000,
            stem: str | None = None, multiscale: bool = False, attention: str = "none"):
    """Layer table, parameters, FLOPs and MACs of a registered model or of a run's model."""
    from resnetlab.models import summarize

    if Path(model).exists():
        trained = load_trained(model)
        size = input_size(trained.config, trained.image_size)
        return summarize(trained.model, input_size=(trained.channels, size, size), feature_dim=trained.feature_dim)
    cfg = ModelConfig(name=model, stem=stem or "imagenet", multiscale=multiscale, attention=attention,
                      zero_init_residual=False)
    net = build_model(cfg, num_outputs=num_classes, in_channels=in_channels, image_size=image_size)
    return summarize(net, input_size=(in_channels, image_size, image_size))

