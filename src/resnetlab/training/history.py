"""Per-epoch history, written as CSV and JSON after every epoch."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any


class History:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append(row)

    def column(self, key: str) -> list[Any]:
        return [row.get(key) for row in self.rows]

    def write(self, folder: Path) -> None:
        rows = [{k: _jsonable(v) for k, v in row.items()} for row in self.rows]
        (folder / "history.json").write_text(json.dumps(rows, indent=1))
        keys: list[str] = []
        for row in rows:
            keys += [k for k in row if k not in keys]
        with open(folder / "history.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=keys)
            writer.writeheader()
            writer.writerows(rows)

    def state_dict(self) -> dict:
        return {"rows": self.rows}

    def load_state_dict(self, state: dict) -> None:
        self.rows = list(state["rows"])


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
