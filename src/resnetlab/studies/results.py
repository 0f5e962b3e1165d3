"""A study's results, read from its folder: all_results.json, results.csv, mean ± std and deltas.

Everything here reads files only (``study.yaml`` and the run folders), so the results and
the report can be rebuilt at any time, also while a study is still running elsewhere.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from resnetlab.atomic_write import write_json, write_text
from resnetlab.errors import UserError
from resnetlab.metric_direction import lower_is_better
from resnetlab.studies.run_state import METRICS_FILE, STUDY_FILE, read_error, run_status
from resnetlab.studies.spec import flatten

# The settings columns of the study table: what a reader compares experiments by.
SETTING_KEYS = ("model.name", "optim.name", "optim.lr", "train.batch_size", "data.image_size", "augment.enabled")
CLASSIFICATION_METRICS = ("accuracy", "top5", "f1_macro", "mpca", "loss")
REGRESSION_METRICS = ("srcc", "plcc", "rmse", "loss")


@dataclass
class StudyResults:
    root: Path
    plan: dict[str, Any]
    metric: str
    regression: bool
    metric_columns: list[str]  # "val/accuracy", ..., "test/loss"
    rows: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    notes: list[str]

    @property
    def name(self) -> str:
        return str(self.plan["name"])

    @property
    def baseline(self) -> str:
        return str(self.plan["baseline"])

    @property
    def factors(self) -> list[str]:
        return list(self.plan.get("factors") or [])


def mean_std(values: Sequence[float | None]) -> dict[str, float | int | None]:
    """Mean and sample standard deviation (n - 1) of the values present; std needs two."""
    present = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    n = len(present)
    mean = float(np.mean(present)) if n else None
    std = float(np.std(present, ddof=1)) if n >= 2 else None
    return {"mean": mean, "std": std, "n": n}


def load_results(root: str | Path) -> StudyResults:
    root = Path(root)
    plan_file = root / STUDY_FILE
    if not plan_file.is_file():
        raise UserError(f"{root} holds no {STUDY_FILE}; give the folder of a study (runs/<study>)")
    plan = yaml.safe_load(plan_file.read_text()) or {}
    entries = plan.get("runs") or []
    regression = any((e.get("settings") or {}).get("data.task") == "regression" for e in entries)
    metric = plan.get("metric") or ("val/srcc" if regression else "val/accuracy")
    keys = list(REGRESSION_METRICS if regression else CLASSIFICATION_METRICS)
    metric_key = metric.split("/", 1)[1]
    if metric_key not in keys:
        keys.append(metric_key)
    columns = [f"{split}/{key}" for split in ("val", "test") for key in keys]
    rows = [_row(plan, entry, root, columns) for entry in entries]
    summary = summarize(rows, variants=[v["name"] for v in plan.get("variants") or []], metric=metric,
                        baseline=str(plan["baseline"]), columns=columns)
    notes = []
    done = [r for r in rows if r["status"] == "done"]
    if done and all(r[metric] is None for r in done):
        split = metric.split("/", 1)[0]
        available = sorted((_read_json(Path(done[0]["run_dir"]) / METRICS_FILE).get(split) or {})
                           .get("scalars", {}))
        notes.append(f"No finished run has `{metric}`; set metric: to one of "
                     f"{', '.join(f'{split}/{k}' for k in available) or 'the metrics in metrics.json'}.")
    return StudyResults(root=root, plan=plan, metric=metric, regression=regression, metric_columns=columns,
                        rows=rows, summary=summary, notes=notes)


def _row(plan: dict[str, Any], entry: dict[str, Any], root: Path, columns: list[str]) -> dict[str, Any]:
    run_dir = root / entry["name"]
    status = "failed" if entry.get("error") else run_status(run_dir)
    config_file = run_dir / "config.yaml"
    settings = dict(entry.get("settings") or {})
    if config_file.is_file():
        # What the run really used; alone, since a baseline's config has no optimizer or epochs to show.
        settings = {"model.name": settings.get("model.name"),
                    **flatten(yaml.safe_load(config_file.read_text()) or {})}
    metrics = _read_json(run_dir / METRICS_FILE) if status == "done" else {}
    seed = entry.get("seed")
    row: dict[str, Any] = {"study": plan["name"], "variant": entry["variant"],
                           "seed": seed if seed is not None else settings.get("train.seed"), "status": status}
    for key in dict.fromkeys([*(plan.get("factors") or []), *SETTING_KEYS]):
        row[key] = settings.get(key)
    for column in columns:
        split, key = column.split("/", 1)
        section = metrics.get(split)
        value = section.get("scalars", {}).get(key) if isinstance(section, dict) else None
        row[column] = float(value) if isinstance(value, (int, float)) else None
    resources = metrics.get("resources") or {}
    row.update({"best_epoch": metrics.get("best_epoch"), "wall_seconds": resources.get("wall_seconds"),
                "num_params": resources.get("num_params"), "run_dir": str(run_dir),
                "error": (entry.get("error") or read_error(run_dir)) if status == "failed" else None})
    return row


def summarize(rows: list[dict[str, Any]], *, variants: list[str], metric: str, baseline: str,
              columns: list[str]) -> list[dict[str, Any]]:
    """Per variant, in study order: counts, mean ± std of every metric and the delta to the baseline."""
    summary = []
    for variant in variants:
        own = [r for r in rows if r["variant"] == variant]
        done = [r for r in own if r["status"] == "done"]
        first = own[0] if own else {}
        summary.append({
            "variant": variant, "baseline": variant == baseline, "runs": len(own), "done": len(done),
            "failed": sum(r["status"] == "failed" for r in own),
            "settings": {k: v for k, v in first.items() if "." in k and "/" not in k},  # config keys only
            "metrics": {c: mean_std([r[c] for r in done]) for c in columns},
            "wall_seconds": mean_std([r["wall_seconds"] for r in done]),
        })
    reference = next((s["metrics"][metric]["mean"] for s in summary if s["variant"] == baseline), None)
    for item in summary:
        mean = item["metrics"][metric]["mean"]
        delta = mean - reference if mean is not None and reference is not None else None
        item["delta"] = delta
        item["delta_pct"] = 100.0 * delta / abs(reference) if delta is not None and reference else None
    return summary


def write_results(results: StudyResults) -> tuple[Path, Path]:
    """all_results.json (the plan, every run, the summary) and results.csv (one row per run)."""
    root = results.root
    payload = {"study": results.name, "source": results.plan.get("source"),
               "description": results.plan.get("description"), "metric": results.metric,
               "lower_is_better": lower_is_better(results.metric), "baseline": results.baseline,
               "factors": results.factors, "seeds": results.plan.get("seeds"), "base": results.plan.get("base"),
               "overrides": results.plan.get("overrides"), "runs": results.rows, "summary": results.summary}
    json_path = write_json(root / "all_results.json", payload)
    fields = list(results.rows[0]) if results.rows else ["study", "variant", "seed", "status"]
    handle = io.StringIO(newline="")
    writer = csv.DictWriter(handle, fieldnames=fields)
    writer.writeheader()
    for row in results.rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return json_path, write_text(root / "results.csv", handle.getvalue())


def read_history(run_dir: str | Path) -> list[dict[str, Any]]:
    data = _read_json(Path(run_dir) / "history.json", default=[])
    return [row for row in data if isinstance(row, dict)] if isinstance(data, list) else []


def _read_json(path: Path, default: Any = None) -> Any:
    if not path.is_file():
        return {} if default is None else default
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: cannot parse ({exc.msg} at line {exc.lineno}); delete the run folder "
                        "to train it again") from None
