"""What a person watching a run sees: a banner, a live bar per epoch, one line per epoch.

Every line also goes to ``train.log`` in the run folder. Off a terminal (CI, nohup, a
study's worker process) the live bar turns into a plain line every quarter epoch.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table


class ProgressReporter:
    def __init__(self, *, enabled: bool = True, log_file: Path | None = None, log_every: int = 0) -> None:
        self.enabled = enabled
        self.console = Console(highlight=False, stderr=False)
        self.live = enabled and self.console.is_terminal
        self.log_every = log_every
        self._log: TextIO | None = open(log_file, "a") if log_file is not None else None  # noqa: SIM115 - open for the run, closed by close()
        self._bar: Progress | None = None
        self._task = None
        self._steps = 0
        self._next_plain = 0
        self._epoch_label = ""

    # ------------------------------------------------------------------ lines

    def line(self, text: str) -> None:
        if self.enabled:
            self.console.print(text, markup=False, soft_wrap=True)
        self._write(text)

    def _write(self, text: str) -> None:
        if self._log is not None:
            self._log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n")
            self._log.flush()

    def banner(self, title: str, rows: list[tuple[str, str]]) -> None:
        if self.enabled:
            table = Table(title=title, show_header=False, title_justify="left", pad_edge=False, box=None)
            table.add_column(style="bold cyan")
            table.add_column()
            for key, value in rows:
                table.add_row(key, value)
            self.console.print(table)
        self._write(title)
        for key, value in rows:
            self._write(f"  {key}: {value}")

    # ------------------------------------------------------------------ the epoch bar

    def start_epoch(self, label: str, steps: int, done: int = 0) -> None:
        self._steps, self._epoch_label = steps, label
        self._next_plain = self._plain_interval()
        if self.live:
            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), TextColumn("eta"),
                                 TimeRemainingColumn(), console=self.console, transient=True)
            self._bar.start()
            self._task = self._bar.add_task(label, total=steps, completed=done, stats="")

    def _plain_interval(self) -> int:
        return self.log_every if self.log_every > 0 else max(1, self._steps // 4)

    def update(self, done: int, *, loss: float, images_per_s: float, eta_s: float) -> None:
        stats = f"loss {loss:.4f}  {images_per_s:,.0f} img/s"
        if self._bar is not None:
            self._bar.update(self._task, completed=done, stats=stats)
        if done >= self._next_plain and done < self._steps:
            self._next_plain += self._plain_interval()
            text = f"{self._epoch_label} {done}/{self._steps}  {stats}  eta {eta_s:.0f}s"
            if self.log_every > 0 or not self.live:
                self.line(text) if not self.live else self._write(text)

    def end_epoch(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def close(self) -> None:
        self.end_epoch()
        if self._log is not None:
            self._log.close()
            self._log = None


