"""Run every (variant, seed) of a study as a normal run folder, resumably.

``runs/<study>/<variant>[_seed<k>]/`` is an ordinary run (``output.dir``/``output.name``),
so ``resnetlab report`` and ``resnetlab eval`` work on it; what the study adds to a run
folder is named in :mod:`resnetlab.studies.run_state`.

A run's state is read from its folder, so a study can stop at any point and continue:
metrics.json means done (skipped), last.pt without it means interrupted (continued with
``train.resume=auto``), anything else is trained (again).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from resnetlab.atomic_write import write_json, write_text
from resnetlab.config import Config, build_config, to_dict
from resnetlab.errors import UserError, first_line
from resnetlab.studies.results import SETTING_KEYS
from resnetlab.studies.run_state import (
    LAST_CHECKPOINT,
    LOG_FILE,
    METRICS_FILE,
    RUN_FILE,
    STUDY_FILE,
    clear_error,
    read_error,
    record_error,
    run_status,
)
from resnetlab.studies.spec import StudySpec, changed_settings, check_metric, config_tokens, flatten

# Every run of a study resumes what an earlier, interrupted call left.
RESUME = {"train.resume": "auto"}


@dataclass
class PlannedRun:
    """One training run of a study, before it runs."""

    index: int
    name: str
    variant: str
    seed: int | None
    run_dir: Path
    base: list[str]  # the study's base (override tokens, as its file gives them)
    cli: list[str]  # the command line's overrides, applied to the base of every run
    own: dict[str, Any]  # the variant's keys and the seed, laid over base and cli
    output: dict[str, Any]  # output.dir and output.name: the run folder
    config: Config | None  # None when the overrides cannot make a valid config
    error: str | None
    settings: dict[str, Any] = field(default_factory=dict)  # every config key, flattened

    @property
    def identity(self) -> list[str]:
        """What the run's results depend on (not where its folder is, so a study folder can move),
        as the override tokens study_run.json records."""
        return [*self.base, *self.cli, *config_tokens(self.own)]

    def command(self, *, threads: int | None) -> list[str]:
        """The command line of a worker process (`--jobs N`), which can only take the settings as text."""
        # Threads come before the user's overrides so `train.threads=N` on the command line still wins.
        threads_token = [f"train.threads={threads}"] if threads else []
        return [sys.executable, "-m", "resnetlab", "train", *self.base, *threads_token, *self.cli,
                *config_tokens({**self.own, **self.output, **RESUME})]


@dataclass
class StudyOutcome:
    root: Path
    runs: list[PlannedRun]
    status: dict[str, str]  # run name -> done, failed, interrupted, pending
    errors: dict[str, str]
    interrupted: bool = False
    trained: int = 0  # runs trained (or retried) by this call; skipped ones are not counted
    report: Path | None = None


# ---------------------------------------------------------------- planning


def study_root(spec: StudySpec, *, overrides: Sequence[str] = (), out: str | Path | None = None) -> Path:
    if out is not None:
        return Path(out)
    return Path(build_config([*spec.base, *overrides]).output.dir) / spec.name


def plan_study(spec: StudySpec, *, overrides: Sequence[str] = (), out: str | Path | None = None) -> list[PlannedRun]:
    """Every run of the study in the order they run: seed-major, so all variants have a first result early."""
    try:
        base_cfg = build_config([*spec.base, *overrides])
    except UserError as exc:
        raise UserError(f"{spec.source} with the command-line overrides: {exc}") from None
    root = study_root(spec, overrides=overrides, out=out)
    seeds: list[int | None] = list(range(spec.seeds)) if spec.seeds else [None]
    runs = []
    for seed in seeds:
        for variant in spec.variants:
            name = variant.name if seed is None or spec.seeds == 1 else f"{variant.name}_seed{seed}"
            own = dict(variant.settings)
            if seed is not None:
                own["train.seed"] = seed
            output = {"output.dir": str(root), "output.name": name}
            config, error = None, None
            try:
                config = build_config([*spec.base, *overrides], settings={**own, **output, **RESUME})
                settings = flatten(to_dict(config))
            except UserError as exc:
                error = str(exc)
                settings = {**flatten(to_dict(base_cfg)), **variant.settings}
            runs.append(PlannedRun(index=len(runs) + 1, name=name, variant=variant.name, seed=seed,
                                   run_dir=root / name, base=list(spec.base), cli=list(overrides), own=own,
                                   output=output, config=config, error=error, settings=settings))
    return runs


# ---------------------------------------------------------------- running


def run_study(spec: StudySpec, *, overrides: Sequence[str] = (), jobs: int = 1, out: str | Path | None = None,
              echo: Callable[[str], None] = print, report_only: bool = False) -> StudyOutcome:
    """Train what is not done yet, then write all_results.json, results.csv, study.md and plots.

    ``jobs=1`` trains in this process (live progress bars); ``jobs=N`` runs N
    ``resnetlab train`` processes at once, the CPU threads split between them.
    """
    from resnetlab.studies.study_report import write_all  # matplotlib: loaded when a study reports

    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise UserError(f"--jobs takes a whole number >= 1, got {jobs!r}")
    runs = plan_study(spec, overrides=overrides, out=out)
    if spec.metric is not None:
        for task in dict.fromkeys(run.settings.get("data.task", "classification") for run in runs):
            check_metric(spec.metric, str(task), spec.source)
    root = study_root(spec, overrides=overrides, out=out)
    root.mkdir(parents=True, exist_ok=True)
    outcome = StudyOutcome(root=root, runs=runs, status={}, errors={})
    with _exclusive(root):
        _check_same_plan(runs)
        _save_plan(spec, overrides, runs, root)
        try:
            if not report_only:
                _execute(runs, jobs=jobs, echo=echo, outcome=outcome)
        except KeyboardInterrupt:
            outcome.interrupted = True
        finally:
            for run in runs:
                outcome.status[run.name] = run_status(run.run_dir) if not run.error else "failed"
                error = run.error or read_error(run.run_dir)
                if error:
                    outcome.errors[run.name] = error
            outcome.report = write_all(root)
    return outcome


def _execute(runs: list[PlannedRun], *, jobs: int, echo: Callable[[str], None], outcome: StudyOutcome) -> None:
    progress = _Progress(total=len(runs), jobs=jobs, echo=echo)
    todo = []
    for run in runs:
        if run_status(run.run_dir) == "done":
            progress.line(run, "done earlier, skipped")
        else:
            todo.append(run)
    progress.remaining = len(todo)
    if not todo:
        echo(f"all {len(runs)} runs are done; rebuilding the study report")
        return
    if jobs == 1:
        _sequential(todo, progress, outcome)
    else:
        _parallel(todo, jobs, progress, outcome)


def _sequential(todo: list[PlannedRun], progress: _Progress, outcome: StudyOutcome) -> None:
    from resnetlab import api
    from resnetlab.training.signals import Interrupted

    for run in todo:
        if _fail_early(run, progress):
            continue
        _prepare(run)
        progress.started(run, resuming=(run.run_dir / LAST_CHECKPOINT).is_file())
        start = time.perf_counter()
        outcome.trained += 1
        try:
            api.train(run.config)
        except Interrupted:
            progress.finished(run, "interrupted", time.perf_counter() - start)
            raise KeyboardInterrupt from None
        except UserError as exc:
            _record_failure(run, str(exc))
        except Exception as exc:  # a bug in one run must not end the study; keep its traceback  # noqa: BLE001
            with open(run.run_dir / LOG_FILE, "a") as log:
                log.write(traceback.format_exc())
            _record_failure(run, first_line(exc, with_type=True))
        progress.finished(run, run_status(run.run_dir), time.perf_counter() - start, error=read_error(run.run_dir))


def _parallel(todo: list[PlannedRun], jobs: int, progress: _Progress, outcome: StudyOutcome) -> None:
    threads = job_threads(jobs)
    pending = deque(todo)
    running: dict[subprocess.Popen, tuple[PlannedRun, float]] = {}
    previous = _raise_on_sigterm()
    try:
        while pending or running:
            while pending and len(running) < jobs:
                run = pending.popleft()
                if _fail_early(run, progress):
                    continue
                _prepare(run)
                progress.started(run, resuming=(run.run_dir / LAST_CHECKPOINT).is_file(), log=run.run_dir / LOG_FILE)
                running[_launch(run, threads)] = (run, time.perf_counter())
                outcome.trained += 1
            time.sleep(0.2)
            for proc in [p for p in running if p.poll() is not None]:
                run, start = running.pop(proc)
                status = _outcome_of(proc.returncode, run)
                progress.finished(run, status, time.perf_counter() - start, error=read_error(run.run_dir))
    except KeyboardInterrupt:
        # Workers live in their own sessions: ask each to save its state (SIGTERM), then wait.
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        for proc, (run, start) in running.items():
            try:
                proc.wait(timeout=300)
            except subprocess.TimeoutExpired:
                proc.kill()
            progress.finished(run, run_status(run.run_dir), time.perf_counter() - start)
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _launch(run: PlannedRun, threads: int) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "PYTHONUNBUFFERED": "1"}
    command = run.command(threads=threads)
    with open(run.run_dir / LOG_FILE, "a") as log:
        log.write(f"==== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(command[1:])}\n")
        log.flush()
        # Own session: a Ctrl-C reaches only the study, which then stops workers with SIGTERM
        # (a second SIGINT would make a worker abort without saving).
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)


def _outcome_of(returncode: int, run: PlannedRun) -> str:
    if returncode == 0 and (run.run_dir / METRICS_FILE).is_file():
        return "done"
    if returncode == 130:  # the trainer saved last.pt after a stop request
        return "interrupted"
    if returncode < 0:
        error = f"killed by signal {signal.Signals(-returncode).name} (out of memory?)"
    elif returncode == 0:
        error = "the run exited without writing metrics.json"
    else:
        error = last_error_line((run.run_dir / LOG_FILE).read_text(errors="replace")) or f"exit code {returncode}"
    _record_failure(run, error)
    return "failed"


def last_error_line(log: str) -> str | None:
    """The message of the last ``resnetlab ...: error: ...`` line, else the last exception line."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    for line in reversed(lines):
        if ": error: " in line and line.startswith("resnetlab"):
            return line.split(": error: ", 1)[1]
    for line in reversed(lines):
        head = line.split(":", 1)[0]
        if head.endswith(("Error", "Exception", "Interrupt")) and " " not in head:
            return line
    return None


def _fail_early(run: PlannedRun, progress: _Progress) -> bool:
    """Runs whose overrides make no valid config fail without starting a process."""
    if run.error is None:
        return False
    progress.finished(run, "failed", 0.0, error=run.error)
    return True


def _prepare(run: PlannedRun) -> None:
    run.run_dir.mkdir(parents=True, exist_ok=True)
    clear_error(run.run_dir)  # a retry starts clean
    write_json(run.run_dir / RUN_FILE, {"variant": run.variant, "seed": run.seed, "overrides": run.identity})


def _record_failure(run: PlannedRun, error: str) -> None:
    record_error(run.run_dir, error)


def _check_same_plan(runs: list[PlannedRun]) -> None:
    for run in runs:
        path = run.run_dir / RUN_FILE
        if not path.is_file():
            continue
        before = json.loads(path.read_text()).get("overrides")
        if before != run.identity:
            raise UserError(f"{run.run_dir} was trained with other settings "
                            f"({changed_settings(before or [], run.identity)}); "
                            "give the study another --out folder or delete that run folder")


def _save_plan(spec: StudySpec, overrides: Sequence[str], runs: list[PlannedRun], root: Path) -> None:
    shown = list(dict.fromkeys([*SETTING_KEYS, *spec.factors, "data.task"]))
    plan = {"name": spec.name, "source": spec.source, "description": spec.description, "base": spec.base,
            "overrides": list(overrides), "factors": spec.factors, "seeds": spec.seeds,
            "baseline": spec.baseline, "metric": spec.metric,
            "variants": [{"name": v.name, "settings": v.settings} for v in spec.variants],
            "runs": [{"name": r.name, "variant": r.variant, "seed": r.seed, "error": r.error,
                      "settings": {k: r.settings.get(k) for k in shown}} for r in runs]}
    write_text(root / STUDY_FILE, yaml.safe_dump(plan, sort_keys=False))


@contextmanager
def _exclusive(root: Path) -> Iterator[None]:
    """One study process per folder: two would train the same runs into the same folders."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; the user keeps studies apart
        yield
        return
    with open(root / ".study.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"another resnetlab study is running in {root}; wait for it or use --out") from None
        yield


def _raise_on_sigterm() -> Any:
    # Treat SIGTERM like Ctrl-C so workers are stopped cleanly instead of left orphaned.
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, handler)


def job_threads(jobs: int) -> int:
    """Threads for each of ``jobs`` parallel runs: the cores free now, split so that together they
    never ask for more (oversubscribed OpenMP threads wait on each other at every operation)."""
    from resnetlab.training.threads import free_cores

    return max(1, free_cores() // jobs)


class _Progress:
    """``[3/9] adam_seed1: done in 12.3s (val/accuracy 0.9512); ETA 1m 10s``."""

    def __init__(self, *, total: int, jobs: int, echo: Callable[[str], None]) -> None:
        self.total, self.jobs, self.echo = total, jobs, echo
        self.remaining = total
        self.durations: list[float] = []
        self.counts: dict[str, int] = {}

    def line(self, run: PlannedRun, text: str) -> None:
        self.echo(f"[{run.index}/{self.total}] {run.name}: {text}")

    def started(self, run: PlannedRun, *, resuming: bool, log: Path | None = None) -> None:
        where = f" (log {log})" if log else ""
        self.line(run, f"{'resuming' if resuming else 'training'}{where}")

    def finished(self, run: PlannedRun, status: str, seconds: float, *, error: str | None = None) -> None:
        self.remaining -= 1
        self.counts[status] = self.counts.get(status, 0) + 1
        if status == "done":
            self.durations.append(seconds)
        text = f"{status} in {_duration(seconds)}"
        if status == "done":
            text += _score(run.run_dir)
        elif error:
            text += f": {error}"
        if self.remaining > 0 and self.durations:
            eta = sum(self.durations) / len(self.durations) * self.remaining / self.jobs
            text += f"; {self.remaining} to go, ETA {_duration(eta)}"
        self.line(run, text)


def _score(run_dir: Path) -> str:
    try:
        metrics = json.loads((run_dir / METRICS_FILE).read_text())
        scalars = metrics["val"]["scalars"]
        key = "accuracy" if "accuracy" in scalars else "srcc"
        return f" (val/{key} {scalars[key]:.4f})"
    except (OSError, KeyError, TypeError, ValueError):
        return ""


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"
