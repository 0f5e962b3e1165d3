"""comparison.md and comparison_curves.png for several run folders, side by side.

Like the single-run report, this reads only the files in each run folder (see
`resnetlab.evaluation.report`), so runs can be compared long after training.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

from resnetlab.atomic_write import write_text
from resnetlab.errors import UserError
from resnetlab.evaluation.plots import plot_run_comparison
from resnetlab.evaluation.report import (
    RunRecord,
    fmt_duration,
    fmt_metric,
    fmt_value,
    read_run,
    table,
)
from resnetlab.metric_direction import lower_is_better

# (column header, split, scalar key); the best value in each gets bold when runs > 1.
CLASSIFICATION_COLUMNS = (
    ("val acc", "val", "accuracy"),
    ("test acc", "test", "accuracy"),
    ("top5 (val)", "val", "top5"),
    ("mpca (val)", "val", "mpca"),
    ("F1 macro (val)", "val", "f1_macro"),
)
REGRESSION_COLUMNS = (
    ("SRCC (val)", "val", "srcc"),
    ("PLCC (val)", "val", "plcc"),
    ("RMSE (val)", "val", "rmse"),
)


def _unique_names(runs: list[RunRecord]) -> list[str]:
    """Folder names, widened to parent/name where two runs share a folder name."""
    counts = Counter(run.name for run in runs)
    return [f"{run.path.parent.name}/{run.name}" if counts[run.name] > 1 else run.name
            for run in runs]


def _best_indices(values: list[float | None], *, lower: bool) -> set[int]:
    """Rows holding the best value (all of them on a tie); none for a lone value."""
    present = [v for v in values if v is not None]
    if len(present) < 2:  # a single value is not "best" of anything
        return set()
    best = min(present) if lower else max(present)
    return {i for i, v in enumerate(values) if v is not None and v == best}


def data_name(source: Any) -> str:
    """data.source as it reads in a table: built-ins as they are, paths by their file or folder name."""
    if source is None:
        return "—"
    path = Path(str(source))
    return path.name or str(source)


def _wall_seconds(run: RunRecord) -> float | None:
    resources = run.metrics.get("resources")
    if isinstance(resources, dict) and resources.get("wall_seconds") is not None:
        return float(resources["wall_seconds"])
    seconds = [row["seconds"] for row in run.history if row.get("seconds") is not None]
    return float(sum(seconds)) if seconds else None


def write_comparison(run_dirs: list[Path], out_dir: Path) -> Path:
    """Write out_dir/comparison.md (one row per run) and out_dir/comparison_curves.png
    (validation monitored metric and loss per epoch, all runs overlaid)."""
    if not run_dirs:
        raise UserError("no run folders to compare; pass one or more run folders")
    runs = [read_run(d) for d in run_dirs]
    names = _unique_names(runs)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    columns = list(CLASSIFICATION_COLUMNS)
    if any("srcc" in run.split_scalars("val") for run in runs):
        columns += REGRESSION_COLUMNS
    metric_values = {
        header: [run.split_scalars(split).get(key) for run in runs]
        for header, split, key in columns
    }
    best = {
        header: _best_indices(metric_values[header], lower=lower_is_better(key))
        for header, _, key in columns
    }

    rows: list[list[Any]] = []
    for i, (run, name) in enumerate(zip(runs, names)):
        report = run.path / "report.md"
        link = os.path.relpath(report, out_dir) if report.is_file() else None
        label = f"[{name}]({Path(link).as_posix()})" if link else name
        row: list[Any] = [
            label,
            fmt_value(run.setting("model.name")),
            data_name(run.setting("data.source")),
            fmt_value(run.setting("optim.name")),
            fmt_value(run.setting("optim.lr")),
            fmt_value(run.setting("train.batch_size")),
            fmt_value(run.setting("data.image_size")),
            fmt_value(run.setting("augment.enabled")),
            fmt_value(run.metrics.get("best_epoch")),
        ]
        for header, _, _ in columns:
            text = fmt_metric(metric_values[header][i])
            row.append(f"**{text}**" if i in best[header] else text)
        row.append(fmt_duration(_wall_seconds(run)))
        rows.append(row)

    header = ["run", "model", "data", "optimizer", "lr", "batch", "image size", "augmentation",
              "best epoch"] + [h for h, _, _ in columns] + ["time"]
    right = [4, 5, 8] + list(range(9, 9 + len(columns) + 1))

    curves = plot_run_comparison(
        {name: run.history for name, run in zip(names, runs)},
        monitors={name: run.monitor for name, run in zip(names, runs)},
        path=out_dir / "comparison_curves.png",
    )
    lines = [
        f"# Comparison of {len(runs)} run{'s' if len(runs) != 1 else ''}",
        "",
        table(header, rows, right=right),
        "",
        ("Bold marks the best value in each metric column. top5, mpca and F1 are on the "
        "validation split; time is the training wall-clock time."),
        "",
        "## Validation curves",
        "",
        f"![Validation curves]({curves.name})",
        "",
    ]
    return write_text(out_dir / "comparison.md", "\n".join(lines))
