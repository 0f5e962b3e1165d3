"""report.md for one run folder, built only from the files the trainer left there.

The run-folder contract (every file optional; sections without their file are left out):

    config.yaml         resolved config (sections model, data, augment, optim, ...)
    history.json        list of per-epoch dicts ("epoch", "train/loss", "val/...", "lr", ...)
    metrics.json        {"best_epoch", "monitor", "val", "test"?, "resources"}
    data_summary.json   {"class_names", "splits": {split: {"count", "per_class"}},
                         "skipped": [{"path", "reason"}], "data_hash"}
    provenance.json     {"resnetlab_version", "git_commit", "torch_version", ...}
    plots/*.png         figures, embedded with relative links

Because the report reads files only, it can be rebuilt at any time without the model.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from resnetlab.atomic_write import write_text
from resnetlab.errors import UserError
from resnetlab.evaluation.metrics import confused_pairs

RUN_FILES = ("config.yaml", "history.json", "metrics.json", "data_summary.json",
             "provenance.json")

CONFIG_HIGHLIGHTS = (
    ("model", "model.name"),
    ("data source", "data.source"),
    ("image size", "data.image_size"),
    ("epochs", "train.epochs"),
    ("batch size", "train.batch_size"),
    ("optimizer", "optim.name"),
    ("learning rate", "optim.lr"),
    ("weight decay", "optim.weight_decay"),
    ("schedule", "schedule.name"),
    ("augmentation", "augment.enabled"),
)

# Preferred row order of the metrics table; other scalars follow alphabetically.
METRIC_ORDER = (
    "loss", "accuracy", "top5", "mpca", "clip_accuracy", "clip_mpca",
    "precision_macro", "recall_macro", "f1_macro",
    "precision_weighted", "recall_weighted", "f1_weighted",
    "srcc", "plcc", "plcc_logistic", "krcc", "rmse", "clip_srcc", "clip_plcc", "clip_rmse",
)

PLOT_CAPTIONS = {
    "curves.png": "Training curves",
    "confusion_matrix.png": "Confusion matrix (counts)",
    "confusion_matrix_normalized.png": "Confusion matrix (normalized by true class)",
    "per_class_accuracy.png": "Per-class accuracy",
    "per_class_top_bottom.png": "Best and worst classes",
    "confused_pairs.png": "Most confused pairs",
    "misclassified.png": "Most confident mistakes",
    "gradcam.png": "Grad-CAM: where the model looked (confident right and wrong validation images)",
    "regression_scatter.png": "Predictions vs targets",
    "scatter.png": "Predictions vs targets",
    "residuals.png": "Residuals",
}

# Time spent in the stages of a run that has no epochs (the HOG+SVM baseline).
STAGE_TIMES = (("feature_seconds", "feature extraction"), ("fit_seconds", "fit"))

PER_CLASS_FOLD = 30  # longer per-class tables go inside <details> to keep the page short
SKIPPED_LIMIT = 50  # skipped files listed before "... and N more"


@dataclass
class RunRecord:
    """The parsed contents of one run folder; missing files leave their field empty."""

    path: Path
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    data_summary: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name

    def setting(self, dotted: str) -> Any:
        """A config value by dotted key ("optim.lr"), or None when absent."""
        node: Any = self.config
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node

    def split_scalars(self, split: str) -> dict[str, float]:
        section = self.metrics.get(split)
        return dict(section.get("scalars", {})) if isinstance(section, dict) else {}

    @property
    def monitor(self) -> str:
        return str(self.metrics.get("monitor", "val/accuracy"))


# --- reading -------------------------------------------------------------------------


def _load(path: Path, expected: type) -> Any:
    """Parse one run file; None when missing, UserError when unreadable or mis-shaped."""
    if not path.is_file():
        return None
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text) if path.suffix == ".yaml" else json.loads(text)
    except (json.JSONDecodeError, yaml.YAMLError, UnicodeDecodeError) as exc:
        detail = " ".join(str(exc).split())
        raise UserError(
            f"{path}: cannot parse ({detail}); fix the file or re-run training"
        ) from exc
    if data is None and expected is dict:
        return {}  # an empty YAML file
    if not isinstance(data, expected):
        raise UserError(
            f"{path}: expected a JSON/YAML {expected.__name__} at the top level, got "
            f"{type(data).__name__}; fix the file or re-run training"
        )
    return data


def read_run(run_dir: str | Path) -> RunRecord:
    """Load every known file of a run folder (see the module docstring)."""
    path = Path(run_dir)
    if not path.is_dir():
        raise UserError(
            f"run folder {path} does not exist or is not a folder; "
            "pass a folder written by training"
        )
    shapes = {"config.yaml": dict, "history.json": list, "metrics.json": dict,
              "data_summary.json": dict, "provenance.json": dict}
    loaded = {name: _load(path / name, shape) for name, shape in shapes.items()}
    present = [name for name, value in loaded.items() if value is not None]
    if not any(name in present for name in ("config.yaml", "history.json", "metrics.json")):
        raise UserError(
            f"{path} has none of config.yaml, history.json, metrics.json; "
            "pass the folder of a training run"
        )
    for name in ("val", "test"):
        section = (loaded["metrics.json"] or {}).get(name)
        if section is None:
            continue
        if not isinstance(section, dict) or not isinstance(section.get("scalars"), dict):
            raise UserError(
                f"{path / 'metrics.json'}: key '{name}' must hold a 'scalars' mapping; "
                "fix the file or re-run training"
            )
    return RunRecord(
        path=path,
        config=loaded["config.yaml"] or {},
        history=[row for row in loaded["history.json"] or [] if isinstance(row, dict)],
        metrics=loaded["metrics.json"] or {},
        data_summary=loaded["data_summary.json"] or {},
        provenance=loaded["provenance.json"] or {},
        missing=[name for name in RUN_FILES if name not in present],
    )


# --- formatting ----------------------------------------------------------------------


def cell(value: Any) -> str:
    """Markdown table cell text: pipes escaped, newlines flattened, None as a dash."""
    if value is None:
        return "—"
    return str(value).replace("|", "\\|").replace("\n", " ")


def fmt_value(value: Any) -> str:
    """Config-style values: booleans as yes/no, floats in short general form."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        # integer pairs are sizes ([224, 224] -> 224 × 224); anything else is a list
        joiner = " × " if all(isinstance(v, int) for v in value) else ", "
        return joiner.join(fmt_value(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={fmt_value(v)}" for k, v in value.items())
    return str(value)


def fmt_metric(value: Any) -> str:
    """Metric values with four decimals, None as a dash."""
    if value is None:
        return "—"
    return f"{float(value):.4f}"


def fmt_duration(seconds: Any) -> str:
    """95 -> "1m 35s"; under a minute keeps one decimal ("31.7s")."""
    if seconds is None:
        return "—"
    total = round(float(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{float(seconds):.1f}s"


def table(
    header: Sequence[str], rows: Sequence[Sequence[Any]], *, right: Sequence[int] = ()
) -> str:
    """A GitHub Markdown table; columns listed in `right` are right-aligned (numbers)."""
    align = ["---:" if i in right else "---" for i in range(len(header))]
    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def ordered_metric_names(*scalar_dicts: dict[str, float]) -> list[str]:
    names = {k for d in scalar_dicts for k in d}
    known = [k for k in METRIC_ORDER if k in names]
    return known + sorted(names - set(known))


# --- sections ------------------------------------------------------------------------


def _summary(run: RunRecord) -> list[str]:
    parts = []
    model = run.setting("model.name")
    if model is not None:
        parts.append(f"model **{cell(model)}**")
    best = run.metrics.get("best_epoch")
    if best is not None:
        epochs = len(run.history) or run.setting("train.epochs")
        value = next((row.get(run.monitor) for row in run.history
                      if row.get("epoch") == best), None)
        text = f"best epoch **{best}**" + (f" of {epochs}" if epochs else "")
        text += f" by `{run.monitor}`" + (f" = {fmt_metric(value)}" if value is not None else "")
        parts.append(text)
    test = run.split_scalars("test")
    if "accuracy" in test:
        parts.append(f"test accuracy **{fmt_metric(test['accuracy'])}**")
    elif "srcc" in test:
        parts.append(f"test SRCC **{fmt_metric(test['srcc'])}**")
    lines = [f"# Run report: {cell(run.name)}", ""]
    if parts:
        sentence = "; ".join(parts) + "."
        lines += [sentence[0].upper() + sentence[1:], ""]
    if run.missing:
        lines += [f"_Not in this run folder: {', '.join(run.missing)}._", ""]
    return lines


def _configuration(run: RunRecord) -> list[str]:
    if not run.config:
        return []
    rows = [[label, f"`{fmt_value(run.setting(key))}`"] for label, key in CONFIG_HIGHLIGHTS
            if run.setting(key) is not None]
    # A classical baseline (e.g. HOG+SVM) keeps its own settings in a `baseline:` section.
    baseline = run.config.get("baseline")
    if isinstance(baseline, dict):
        rows += [[key.replace("_", " "), f"`{fmt_value(value)}`"] for key, value in baseline.items()
                 if key != "method" and value is not None]
    lines = ["## Configuration", ""]
    if rows:
        lines += [table(["setting", "value"], rows), ""]
    lines += ["Full resolved configuration: [config.yaml](config.yaml)", ""]
    return lines


def _data(run: RunRecord) -> list[str]:
    summary = run.data_summary
    if not summary:
        return []
    lines = ["## Data", ""]
    splits = summary.get("splits") or {}
    split_names = [s for s in ("train", "val", "test") if s in splits]
    split_names += sorted(s for s in splits if s not in split_names)
    class_names = list(summary.get("class_names") or [])
    for split in split_names:  # classes seen only in per_class still get a row
        for name in (splits[split] or {}).get("per_class") or {}:
            if name not in class_names:
                class_names.append(name)
    if split_names:
        rows = []
        for name in class_names:
            rows.append([name] + [((splits[s] or {}).get("per_class") or {}).get(name, 0)
                                  for s in split_names])
        rows.append(["**total**"] + [f"**{(splits[s] or {}).get('count', '—')}**"
                                     for s in split_names])
        right = range(1, len(split_names) + 1)
        body = table(["class"] + split_names, rows, right=right)
        lines += _maybe_fold(body, len(class_names), "Images per class and split") + [""]
    if summary.get("data_hash"):
        lines += [f"Data hash: `{summary['data_hash']}`", ""]
    skipped = summary.get("skipped") or []
    if skipped:
        lines += [f"### Skipped files ({len(skipped)})", ""]
        rows = [[f"`{item.get('path', '?')}`", item.get("reason", "")]
                for item in skipped[:SKIPPED_LIMIT]]
        lines += [table(["file", "reason"], rows), ""]
        if len(skipped) > SKIPPED_LIMIT:
            lines += [(f"… and {len(skipped) - SKIPPED_LIMIT} more "
                      "(see data_summary.json)."), ""]
    else:
        lines += ["No files were skipped.", ""]
    return lines


def _maybe_fold(body: str, rows: int, summary: str) -> list[str]:
    if rows <= PER_CLASS_FOLD:
        return [body]
    return [f"<details><summary>{summary} ({rows} rows)</summary>", "", body, "", "</details>"]


def _metrics(run: RunRecord) -> list[str]:
    if not run.metrics:
        return []
    splits = [s for s in ("val", "test") if isinstance(run.metrics.get(s), dict)]
    lines = ["## Metrics", ""]
    if run.metrics.get("best_epoch") is not None:
        lines += [(f"Checkpoint from epoch **{run.metrics['best_epoch']}**, "
                  f"selected by `{run.monitor}`."), ""]
    if not splits:
        return lines
    scalars = {s: run.split_scalars(s) for s in splits}
    names = ordered_metric_names(*scalars.values())
    # With 5 classes or fewer top5 is absent; keep its row so the note is visible.
    if "top5" not in names and any(run.metrics[s].get("top5_note") for s in splits):
        names.insert(names.index("accuracy") + 1 if "accuracy" in names else 0, "top5")
    rows = []
    for name in names:
        row = [name]
        for split in splits:
            value = scalars[split].get(name)
            note = run.metrics[split].get("top5_note") if name == "top5" else None
            row.append(fmt_metric(value) if value is not None else (note or "—"))
        rows.append(row)
    lines += [table(["metric"] + splits, rows, right=range(1, len(splits) + 1)), ""]
    if "mpca" in names:
        lines += [("`mpca` is the mean per-class accuracy over the classes present in the "
                  "split; the macro averages count every class."), ""]
    if any(name.startswith("clip_") for name in names):
        lines += [("`clip_*` metrics score one prediction per clip: the mean of its frames' "
                  "probabilities (or scores)."), ""]

    first = splits[0]
    matrix = run.metrics[first].get("confusion_matrix")
    names = run.metrics[first].get("class_names")
    if matrix and names:
        pairs = confused_pairs(np.asarray(matrix), list(names), k=5)
        if pairs:
            lines += [f"### Most confused pairs ({first})", ""]
            lines += [table(["true", "predicted", "count"], pairs, right=[2]), ""]
    return lines


def _per_class(run: RunRecord) -> list[str]:
    splits = [s for s in ("val", "test")
              if isinstance(run.metrics.get(s), dict) and run.metrics[s].get("per_class")]
    if not splits:
        return []
    lines = ["## Per-class results", ""]
    titles = {"val": "Validation", "test": "Test"}
    for split in splits:
        per_class = run.metrics[split]["per_class"]
        lines += [f"### {titles[split]}", ""]
        lines += _maybe_fold(per_class_table(per_class), len(per_class), f"Per-class {titles[split].lower()} results")
        lines += [""]
    lines += [PER_CLASS_NOTE, ""]
    return lines


PER_CLASS_NOTE = "Accuracy is the recall of the class; — marks a class with no samples."


def per_class_table(per_class: list[dict[str, Any]]) -> str:
    """The per-class rows of metrics.json (support, accuracy, precision, F1, predicted) as a table."""
    rows = [[r.get("name"), r.get("support"), fmt_metric(r.get("accuracy")), fmt_metric(r.get("precision")),
             fmt_metric(r.get("f1")), r.get("predicted")] for r in per_class]
    return table(["class", "support", "accuracy", "precision", "F1", "predicted"], rows, right=[1, 2, 3, 4, 5])


def _plots(run: RunRecord) -> list[str]:
    return plots_section(run.path / "plots")


def plots_section(folder: Path) -> list[str]:
    """"## Plots" with every PNG in ``folder`` (a run's or an evaluation's plots/), captioned, known ones first."""
    if not folder.is_dir():
        return []
    present = {p.name for p in folder.glob("*.png")}
    ordered = [name for name in PLOT_CAPTIONS if name in present]
    ordered += sorted(present - set(ordered))
    if not ordered:
        return []
    lines = ["## Plots", ""]
    for name in ordered:
        caption = PLOT_CAPTIONS.get(name, Path(name).stem.replace("_", " ").capitalize())
        lines += [f"### {caption}", "", f"![{caption}](plots/{name})", ""]
    return lines


def _resources(run: RunRecord) -> list[str]:
    resources = run.metrics.get("resources") if isinstance(run.metrics.get("resources"),
                                                          dict) else {}
    seconds = [row["seconds"] for row in run.history if row.get("seconds") is not None]
    if not resources and not seconds:
        return []
    wall = resources.get("wall_seconds", sum(seconds) if seconds else None)
    per_epoch = resources.get("seconds_per_epoch",
                              float(np.mean(seconds)) if seconds else None)
    rows = [["wall time", fmt_duration(wall)]]
    if per_epoch is not None:
        rows.append(["time per epoch", fmt_duration(per_epoch)])
    rows += [[label, fmt_duration(resources[key])] for key, label in STAGE_TIMES if resources.get(key) is not None]
    if resources.get("images_per_s") is not None:
        rows.append(["throughput", f"{float(resources['images_per_s']):.1f} images/s"])
    if resources.get("peak_rss_mb") is not None:
        rows.append(["peak host memory (RSS)", f"{float(resources['peak_rss_mb']):.0f} MB"])
    if resources.get("peak_device_mb") is not None:
        rows.append(["peak device memory", f"{float(resources['peak_device_mb']):.0f} MB"])
    if resources.get("device") is not None:
        rows.append(["device", f"`{resources['device']}`"])
    return ["## Time and resources", "", table(["", "value"], rows), ""]


def _provenance(run: RunRecord) -> list[str]:
    if not run.provenance:
        return []
    order = ["resnetlab_version", "git_commit", "torch_version", "device", "python", "data_hash"]
    keys = [k for k in order if k in run.provenance]
    keys += sorted(k for k in run.provenance if k not in keys)
    rows = [[key, f"`{fmt_value(run.provenance[key])}`"] for key in keys]
    return ["## Provenance", "", table(["", "value"], rows), ""]


def write_report(run_dir: Path) -> Path:
    """Write run_dir/report.md from the files in the run folder and return its path."""
    run = read_run(run_dir)
    lines: list[str] = []
    for section in (_summary, _configuration, _data, _metrics, _per_class, _plots,
                    _resources, _provenance):
        lines += section(run)
    return write_text(run.path / "report.md", "\n".join(lines).rstrip() + "\n")
