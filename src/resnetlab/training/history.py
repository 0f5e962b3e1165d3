"""Per-epoch history, written as CSV and JSON after every epoch."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from resnetlab.atomic_write import write_json, write_text


class History:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append(row)

    def column(self, key: str) -> list[Any]:
        return [row.get(key) for row in self.rows]

    def write(self, folder: Path) -> None:
        rows = [{k: _jsonable(v) for k, v in row.items()} for row in self.rows]
        write_json(folder / "history.json", rows, indent=1)
        keys: list[str] = []
        for row in rows:
            keys += [k for k in row if k not in keys]
        handle = io.StringIO(newline="")
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
        write_text(folder / "history.csv", handle.getvalue())

    def state_dict(self) -> dict:
        return {"rows": self.rows}

    def load_state_dict(self, state: dict) -> None:
        self.rows = list(state["rows"])


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
