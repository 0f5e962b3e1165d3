"""Image paths with their side features from a CSV, for predicting with a fusion model.

Training reads side features from its manifest (``manifest.py``); prediction has no labels,
so it reads only the image column and the feature columns the model was trained with.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from resnetlab.errors import UserError


def read_feature_table(path: Path, *, image_column: str, feature_columns: list[str]) -> tuple[list[Path], np.ndarray]:
    """Paths (relative ones resolved against the CSV's folder) and raw features (N, F) as float32."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [h.strip() for h in reader.fieldnames or []]
            rows = [(reader.line_num, row) for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"{path} cannot be read as a CSV ({exc}); give a UTF-8 comma-separated file") from None
    missing = [c for c in [image_column, *feature_columns] if c not in header]
    if missing:
        raise UserError(f"{path} lacks column '{missing[0]}'; the model needs columns {image_column},"
                        f"{','.join(feature_columns)} (its data.image_column and data.feature_columns)")
    paths: list[Path] = []
    values: list[list[float]] = []
    for line, row in rows:
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        given = Path(row[image_column]).expanduser()
        paths.append(given if given.is_absolute() else path.parent / given)
        features = []
        for column in feature_columns:
            try:
                value = float(row[column])
            except ValueError:
                value = math.nan
            if not math.isfinite(value):
                raise UserError(f"{path} line {line}: feature column '{column}' value '{row[column]}' is not a "
                                "finite number; fix the value")
            features.append(value)
        values.append(features)
    if not paths:
        raise UserError(f"{path} has a header but no rows; add one row per image")
    return paths, np.asarray(values, dtype=np.float32).reshape(len(paths), len(feature_columns))
