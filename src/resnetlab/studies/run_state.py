"""What a study's folders say: the file names a study writes, and a run's status and error.

A leaf of ``studies/``: the runner, the results and the search all read run folders through
these names, and none of them needs another to do it.

    study.yaml       the study's plan (folder level), which ``--report-only`` reads back
    study_run.json   the overrides a run was planned with (a changed study must not reuse it)
    study.log        the output of a worker process (``--jobs N``) or a failed run's traceback
    study_error.txt  the one-line error of a failed run
"""

from __future__ import annotations

from pathlib import Path

from resnetlab.atomic_write import write_text

STUDY_FILE = "study.yaml"
RUN_FILE = "study_run.json"
LOG_FILE = "study.log"
ERROR_FILE = "study_error.txt"
# What a training run leaves in its folder: metrics.json once it finished, last.pt once it saved.
METRICS_FILE = "metrics.json"
LAST_CHECKPOINT = "last.pt"


def run_status(run_dir: Path) -> str:
    """done (metrics.json), failed (a recorded error), interrupted (last.pt without metrics), pending."""
    if (run_dir / METRICS_FILE).is_file():
        return "done"
    if (run_dir / ERROR_FILE).is_file():
        return "failed"
    if (run_dir / LAST_CHECKPOINT).is_file():
        return "interrupted"
    return "pending"


def read_error(run_dir: Path) -> str | None:
    path = run_dir / ERROR_FILE
    return path.read_text().strip() or None if path.is_file() else None


def record_error(run_dir: Path, error: str) -> None:
    """Mark the run failed with its error on one line."""
    write_text(run_dir / ERROR_FILE, " ".join(error.split()) + "\n")


def clear_error(run_dir: Path) -> None:
    (run_dir / ERROR_FILE).unlink(missing_ok=True)
