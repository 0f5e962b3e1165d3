"""``evaluate`` a trained model on any split or new data, and ``summary`` of a model."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from resnetlab.api.assemble import (
    build_model,
    data_kwargs,
    device_here,
    eval_batch_size,
    for_eval,
    input_size,
    make_loader,
    short_list,
    user_input,
)
from resnetlab.api.evaluator import Evaluator, SplitResult
from resnetlab.api.outputs import write_plots
from resnetlab.api.trained import Trained, load_trained
from resnetlab.atomic_write import write_text
from resnetlab.config import Config, build_config, parse_overrides, to_dict
from resnetlab.config.schema import ModelConfig
from resnetlab.data.augment import normalize
from resnetlab.data.bundle import Split
from resnetlab.data.sources import load_data
from resnetlab.errors import UserError
from resnetlab.training.allocator import keep_freed_memory
from resnetlab.training.device import set_threads, use_channels_last
from resnetlab.training.run_folder import (
    checkpoint_line,
    refuse_run_outputs,
    writable_folder,
    write_json,
)


@dataclass
class EvalResult:
    split: str
    scalars: dict[str, float]
    out_dir: Path
    count: int
    checkpoint: Path | None = None

    def format(self) -> str:
        lines = [f"{self.split}: {self.count} images"]
        if self.checkpoint is not None:
            lines.insert(0, checkpoint_line(self.checkpoint))
        lines += [f"  {k:20} {v:.4f}" for k, v in self.scalars.items() if isinstance(v, float)]
        lines.append(f"metrics, plots and report in {self.out_dir}")
        return "\n".join(lines)



SPLITS = ("val", "test", "train", "all")


def evaluate(run_or_checkpoint: str | Path, *, overrides: Sequence[str] = (), split: str | None = None,
             tta: bool = False, out_dir: str | Path | None = None, compile: bool = False) -> EvalResult:
    """Every metric and plot of a trained model, on any split of its data or of new data with its classes.

    ``split`` is val, test, train or all (the three joined). By default it is val for the run's own
    data and all for another ``data.source``, whose results go to ``eval-<source name>-<split>`` so the
    run's own evaluations stay. ``compile`` runs the model through ``torch.compile``: slower to start,
    faster on many images.
    """
    bad = [o for o in overrides if not o.startswith("data.")]
    if bad:
        raise UserError(f"eval takes data.* overrides only, got {bad[0]}: the model is already trained; "
                        "to change other settings train a new run")
    if out_dir is not None and Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise UserError(f"--out {out_dir} is a file; give a folder for the metrics and plots")
    if out_dir is not None:
        refuse_run_outputs(out_dir, folder=True)
    if split is not None and split not in SPLITS:
        raise UserError(f"--split {split}: choose one of {', '.join(SPLITS)}")
    trained = load_trained(run_or_checkpoint)
    asked = parse_overrides(overrides).get("data", {})
    _check_fixed_input(trained, asked)
    new_source = "source" in asked and not _same_source(str(asked["source"]), trained.config.data.source)
    split = split or ("all" if new_source else "val")
    # "all" means every image: the run's training subset (data.subset) would leave most of train out.
    keep_subset = "subset" in asked or split != "all"
    cfg = build_config([*overrides, f"data.image_size={trained.image_size}", f"data.channels={trained.channels}",
                        *([] if keep_subset else ["data.subset=null"])], base=to_dict(trained.config))
    default_name = f"eval-{_folder_name(cfg.data.source)}-{split}" if new_source else f"eval-{split}"
    folder = writable_folder(out_dir or trained.run_dir / default_name, option="--out" if out_dir else "eval into",
                             create=False)
    device, amp_dtype = device_here(cfg)
    set_threads(cfg.train.threads)
    keep_freed_memory()
    chosen = _chosen_split(trained, cfg, split)
    task = trained.task
    model = for_eval(trained.model.to(device), trained.config)
    keep = hasattr(model, "get_classifier") and task.kind == "classification"
    evaluator = Evaluator(
        model=lambda: model, split=chosen, task=task,
        loader=make_loader(chosen, task, batch_size=eval_batch_size(trained.config, 256), device=device,
                           shuffle=False),
        prepare=lambda images: normalize(images, trained.mean, trained.std), amp_dtype=amp_dtype,
        channels_last=use_channels_last(cfg.train.channels_last, amp_dtype, device),
        uses_features=trained.uses_features, tta=tta, keep_features=keep, compile=compile)
    out = evaluator.outputs()
    trained.check_finite(out.outputs, doing="evaluate", of=f" of {cfg.data.source}")
    result = evaluator.scores(out)
    if out.features is not None:
        # How sparse the network's features are, to compare with HOG's (the baseline reports the same share).
        result.scalars["feature_zero_share"] = float(np.mean(out.features == 0))
    folder.mkdir(parents=True, exist_ok=True)
    _write_eval_outputs(folder, trained, result, chosen, split=split, source=cfg.data.source, tta=tta)
    return EvalResult(split=split, scalars=result.scalars, out_dir=folder, count=len(out.targets),
                      checkpoint=trained.checkpoint)


def _chosen_split(trained: Trained, cfg: Config, split: str) -> Split:
    """The asked split of the data, with side features scaled as the model learned them."""
    bundle = load_data(**data_kwargs(cfg.data), log=lambda line: None)
    if trained.task.kind == "classification" and bundle.class_names != trained.class_names:
        raise UserError(f"{trained.checkpoint} was trained on classes {short_list(trained.class_names)} but "
                        f"{cfg.data.source} has {short_list(bundle.class_names)}; evaluate on data with the "
                        "same classes")
    if split == "all":
        chosen = _join([part for part in (bundle.train, bundle.val, bundle.test) if part is not None])
    else:
        chosen = {"train": bundle.train, "val": bundle.val, "test": bundle.test}[split]
    if chosen is None or len(chosen) == 0:
        raise UserError(f"--split {split}: {cfg.data.source} has no {split} split; use --split val")
    if chosen.features is not None and bundle.feature_stats is not None:
        # load_data scaled the features with this data's training split; the model knows its own statistics.
        raw = chosen.features * bundle.feature_stats[1] + bundle.feature_stats[0]
        chosen = dataclasses.replace(chosen, features=trained.standardize_features(raw))
    return chosen


def _write_eval_outputs(folder: Path, trained: Trained, result: SplitResult, chosen: Split, *, split: str,
                        source: str, tta: bool) -> None:
    """metrics.json, plots and report.md of one evaluation (the plots as a training run draws them)."""
    record = {"split": split, "source": source, "checkpoint": str(trained.checkpoint), "tta": tta,
              "scalars": result.scalars}
    history: list[dict] = []
    if trained.task.kind == "classification":
        record.update({**result.detail.to_dict(), "scalars": result.scalars})  # plus the extra feature share
        history_file = trained.run_dir / "history.json"
        history = json.loads(history_file.read_text()) if history_file.is_file() else []
    write_plots(result, chosen, trained.task, plots_dir=folder / "plots", history=history,
                monitor=trained.config.train.monitor)
    write_json(folder / "metrics.json", record)
    _write_eval_report(folder, record, run_name=trained.run_dir.name, count=len(result.out.targets))


def _folder_name(source: str) -> str:
    """A data source as part of a folder name: built-ins as they are, paths by their file or folder stem."""
    name = Path(source).stem or "data"
    return re.sub(r"[^\w.-]+", "_", name)  # nothing from a path that a folder name should not hold


def _same_source(asked: str, own: str) -> bool:
    if asked == own:
        return True
    try:
        return Path(asked).exists() and Path(asked).resolve() == Path(own).resolve()
    except OSError:
        return False


def _check_fixed_input(trained: Trained, asked: dict) -> None:
    """Training fixed the network's input size and channels: refuse other values rather than replace them."""
    fixed = {"image_size": (trained.image_size, f"{trained.image_size} px", "resizes"),
             "channels": (trained.channels, f"{trained.channels}-channel", "converts")}
    for key, (value, text, verb) in fixed.items():
        if key in asked and asked[key] is not None and asked[key] != value:
            raise UserError(f"data.{key}={asked[key]}: {trained.checkpoint} was trained on {text} images and takes "
                            f"only those; drop data.{key} (eval {verb} any data to {text} images)")


def _join(parts: list[Split]) -> Split:
    """One split holding every image of ``parts``, in order."""
    if len(parts) == 1:
        return parts[0]

    def stacked(name: str) -> np.ndarray | None:
        values = [getattr(part, name) for part in parts]
        return None if any(v is None for v in values) else np.concatenate([np.asarray(v) for v in values])

    return Split(images=stacked("images"), targets=stacked("targets"), ids=[i for part in parts for i in part.ids],
                 features=stacked("features"), groups=stacked("groups"))


def _write_eval_report(folder: Path, result: dict, *, run_name: str, count: int) -> Path:
    """report.md beside an evaluation's metrics.json: metrics, per-class results, plots."""
    from resnetlab.evaluation.compare import data_name
    from resnetlab.evaluation.report import (
        PER_CLASS_NOTE,
        fmt_metric,
        ordered_metric_names,
        per_class_table,
        plots_section,
        table,
    )

    split, scalars = result["split"], result["scalars"]
    lines = [f"# Evaluation of {run_name}: {data_name(result['source'])}, {split} ({count} images)", "",
             f"Checkpoint `{result['checkpoint']}`" + ("; predictions averaged over flips (TTA)." if result["tta"]
                                                         else "."), "",
             "## Metrics", ""]
    rows = [[name, fmt_metric(scalars[name])] for name in ordered_metric_names(scalars)]
    lines += [table(["metric", split], rows, right=[1]), ""]
    if result.get("top5_note"):
        lines += [f"top5: {result['top5_note']}", ""]
    if result.get("per_class"):
        lines += ["## Per-class results", "", per_class_table(result["per_class"]), "", PER_CLASS_NOTE, ""]
    lines += plots_section(folder / "plots")
    out = folder / "report.md"
    write_text(out, "\n".join(lines).rstrip() + "\n")
    return out



def summary(model: str, *, image_size: int = 224, in_channels: int = 3, num_classes: int = 1000,
            stem: str | None = None, width: float = 1.0, multiscale: bool = False, attention: str = "none",
            memory: bool = False):
    """Layer table, parameters, FLOPs and MACs of a registered model or of a run's model; with
    ``memory``, also its training memory and the batch that fits common GPUs."""
    from resnetlab.models import summarize
    from resnetlab.models.memory import training_memory

    if Path(model).exists():
        trained = load_trained(model)
        size = input_size(trained.config, trained.image_size)
        net, shape, features = trained.model, (trained.channels, size, size), trained.feature_dim
    else:
        cfg = ModelConfig(name=model, stem=stem or "imagenet", width=width, multiscale=multiscale,
                          attention=attention, zero_init_residual=False)
        net = build_model(cfg, num_outputs=num_classes, in_channels=in_channels, image_size=image_size)
        shape, features = (in_channels, image_size, image_size), 0
    with user_input():
        result = summarize(net, input_size=shape, feature_dim=features)
        if memory:
            result.memory = training_memory(net, input_size=shape, feature_dim=features)
    return result

