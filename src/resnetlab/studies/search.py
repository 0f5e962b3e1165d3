"""Hyperparameter search with Optuna: every trial a normal run folder, any number of workers.

Each worker (a process, possibly on another machine) runs the same command against one
storage. The ``trials`` budget is shared: a worker starts a trial only while finished
(COMPLETE or PRUNED) plus running trials are below it, and a trial that still finds itself
beyond the budget by trial number (two workers asked at the same moment) is dropped before
it trains (FAIL with ``surplus``, left out of every report). Failed trials do not count, so
the budget ends with exactly ``trials`` COMPLETE + PRUNED trials.

Pruning reports the metric after every epoch through the trainer's callbacks; the pruner
decides and ``optuna.TrialPruned`` raised from the callback stops the run.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from resnetlab.atomic_write import atomic_write, write_json, write_text
from resnetlab.config import build_config, to_dict
from resnetlab.errors import UserError, first_line
from resnetlab.extras import install_hint, require
from resnetlab.studies.run_state import METRICS_FILE, run_status
from resnetlab.studies.spec import Param, SearchSpec, changed_settings, check_metric

if TYPE_CHECKING:
    import optuna

SQLITE_TIMEOUT_S = 600  # workers wait for each other's writes instead of failing with "database is locked"
HEARTBEAT_S = 30  # a worker that dies leaves RUNNING trials; after the grace period others mark them failed
GRACE_S = 120
POLL_S = 2.0
COUNTED = ("COMPLETE", "PRUNED", "RUNNING", "WAITING")


@dataclass
class SearchOutcome:
    root: Path
    study_name: str
    storage: str
    counts: dict[str, int]
    best: dict[str, Any] | None
    report: Path
    best_config: Path | None = None
    retrained: Path | None = None
    interrupted: bool = False
    stopped: bool = False  # this worker gave up after too many failed trials
    trained: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """The search did not do its work: it stopped on failures, or no trial completed."""
        return self.stopped or not self.counts.get("COMPLETE")


def search_root(spec: SearchSpec, *, overrides: Sequence[str] = (), study_name: str | None = None,
                out: str | Path | None = None) -> Path:
    if out is not None:
        return Path(out)
    return Path(build_config([*spec.base, *overrides]).output.dir) / (study_name or spec.name)


def run_search(spec: SearchSpec, *, overrides: Sequence[str] = (), trials: int | None = None,
               storage: str | None = None, study_name: str | None = None, retrain: bool = False,
               out: str | Path | None = None, echo: Callable[[str], None] = print) -> SearchOutcome:
    """Work on the search until ``trials`` trials are COMPLETE or PRUNED, then write its report."""
    optuna = require("optuna", extra="search", what="resnetlab search")

    trials = trials if trials is not None else spec.trials
    if trials is None:
        raise UserError(f"{spec.source}: how many trials? pass --trials N (shared by every worker) or set trials:")
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise UserError(f"--trials takes a whole number >= 1, got {trials!r}")
    check_search(spec, overrides=overrides)
    study_name = study_name or spec.name
    root = search_root(spec, overrides=overrides, study_name=study_name, out=out)
    root.mkdir(parents=True, exist_ok=True)
    url = storage or f"sqlite:///{(root / 'search.db').resolve()}"

    previous_verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # our own one line per trial instead
    try:
        study = _open_study(spec, url=url, study_name=study_name, root=root,
                            settings=_shared_settings([*spec.base, *overrides]))
        outcome = SearchOutcome(root=root, study_name=study_name, storage=url, counts={}, best=None,
                                report=root / "search.md")
        try:
            _work(study, spec, overrides=list(overrides), trials=trials, root=root, echo=echo, outcome=outcome)
        except KeyboardInterrupt:
            outcome.interrupted = True
        outcome.report = write_search_report(study, spec, root=root, trials=trials, storage=url)
        outcome.counts = _counts(study)
        outcome.best = _best(study)
        if outcome.best is not None:
            outcome.best_config = root / "best_config.yaml"
        if retrain and not outcome.interrupted:
            outcome.retrained = _retrain(study, root=root, echo=echo, outcome=outcome)
            if outcome.retrained is not None:
                write_search_report(study, spec, root=root, trials=trials, storage=url)
        return outcome
    finally:
        optuna.logging.set_verbosity(previous_verbosity)


def check_search(spec: SearchSpec, *, overrides: Sequence[str] = ()) -> None:
    """What would make every trial fail, found before any trial runs: the base with the overrides, both
    ends of every range and every choice (each must build a valid config), and the metric."""
    try:
        cfg = build_config([*spec.base, *overrides])
    except UserError as exc:
        raise UserError(f"{spec.source} with the command-line overrides: {exc}") from None
    for param in spec.space:
        points = [("choice", c) for c in param.choices] if param.kind == "categorical" \
            else [("low", param.low), ("high", param.high)]
        for label, value in points:
            try:
                build_config([*spec.base, *overrides], settings={param.key: value})
            except UserError as exc:
                shown = repr(value) if isinstance(value, str) else value
                raise UserError(f"{spec.source}: space: {param.key} {label} {shown}: {exc}") from None
    check_metric(spec.metric, cfg.data.task, spec.source)


# Keys that may differ between workers (other machines, other cores) without changing what a trial learns.
LOCAL_KEYS = ("output.dir", "output.name", "output.progress", "output.tensorboard", "output.histograms",
              "output.log_steps", "output.mlflow", "train.resume",
              "train.threads", "train.device", "data.dir", "data.cache_dir", "data.workers")


def _shared_settings(tokens: Sequence[str]) -> list[str]:
    """The override tokens every worker of one search must share; config files by name, as their folder
    differs between machines."""
    shared = []
    for token in tokens:
        key, _, value = token.partition("=")
        if key.strip() in LOCAL_KEYS:
            continue
        shared.append(f"config={Path(value.strip()).name}" if key.strip() == "config" else token)
    return shared


# ---------------------------------------------------------------- the study and its storage


def open_storage(url: str) -> Any:
    """An Optuna storage from a URL; SQLite gets a long lock timeout so several workers can share it."""
    import optuna
    import sqlalchemy.exc

    if "://" not in url:
        raise UserError(f"--storage {url} is not a storage URL; use e.g. sqlite:///runs/search.db or "
                        "postgresql://user@host/db")
    engine_kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}} if url.startswith("sqlite") else {}
    last: Exception | None = None
    for attempt in range(5):  # two workers creating the tables of a new database can collide once
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=HEARTBEAT_S,
                                                  grace_period=GRACE_S)
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.IntegrityError) as exc:
            last = exc
            time.sleep(0.5 + attempt)
        except ImportError as exc:  # the database's driver (psycopg for postgresql://)
            hint = install_hint("postgres") if url.startswith("postgresql") else "install its driver"
            raise UserError(f"--storage {url}: its database driver is not installed ({first_line(exc)}); "
                            f"{hint}") from None
        except (sqlalchemy.exc.ArgumentError, ValueError) as exc:
            # e.g. an unknown scheme
            raise UserError(f"--storage {url}: SQLAlchemy cannot open it ({first_line(exc)}); use a database URL "
                            "such as sqlite:///runs/search.db or postgresql://user@host/db, with its driver "
                            "installed") from None
    raise UserError(f"--storage {url}: cannot open it ({first_line(last)})")


def _open_study(spec: SearchSpec, *, url: str, study_name: str, root: Path,
                settings: list[str]) -> optuna.Study:
    import optuna

    storage = open_storage(url)
    # What must match for workers to share a study; not the file's path, which differs between machines.
    identity = {"metric": spec.metric, "space": [p.key for p in spec.space]}
    for attempt in range(5):
        try:
            study = optuna.create_study(storage=storage, study_name=study_name, direction=spec.direction,
                                        sampler=make_sampler(spec, seed=spec.seed), pruner=make_pruner(spec),
                                        load_if_exists=True)
            break
        except optuna.exceptions.DuplicatedStudyError:  # created by another worker between check and insert
            time.sleep(0.5 + attempt)
    else:
        raise UserError(f"cannot create or load study '{study_name}' in {url}; try again")
    direction = study.direction.name.lower()
    if direction != spec.direction:
        raise UserError(f"study '{study_name}' in {url} was created to {direction}, this search wants to "
                        f"{spec.direction}; use another --study-name")
    stored = study.user_attrs.get("resnetlab")
    if stored is None:
        study.set_user_attr("resnetlab", identity)
    elif stored != identity:
        raise UserError(f"study '{study_name}' in {url} belongs to another search (metric {stored.get('metric')}, "
                        f"space {', '.join(stored.get('space', []))}); use another --study-name")
    # Trials of one search share their base settings: a rerun with train.epochs=1 must not join 2-epoch trials.
    before = study.user_attrs.get("resnetlab_settings")
    if before is None:  # a new study (or one from before this check)
        study.set_user_attr("resnetlab_settings", settings)
    elif before != settings:
        raise UserError(f"{root} was trained with other settings ({changed_settings(before, settings)}); "
                        "give the search another --out folder or --study-name, or delete that folder")
    return study


def make_sampler(spec: SearchSpec, *, seed: int) -> Any:
    import optuna

    options = {k: v for k, v in spec.sampler.items() if k not in ("name", "seed")}
    if spec.sampler["name"] == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, **options)


def make_pruner(spec: SearchSpec) -> Any:
    import optuna

    options = {k: v for k, v in spec.pruner.items() if k != "name"}
    if spec.pruner["name"] == "none":
        return optuna.pruners.NopPruner()
    if spec.pruner["name"] == "percentile":
        return optuna.pruners.PercentilePruner(**options)
    return optuna.pruners.MedianPruner(**options)


# ---------------------------------------------------------------- the worker loop


def _work(study: optuna.Study, spec: SearchSpec, *, overrides: list[str], trials: int, root: Path,
          echo: Callable[[str], None], outcome: SearchOutcome) -> None:
    import optuna

    failures = 0
    waiting_said = False
    while True:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        states = _states(study)
        finished = states.count("COMPLETE") + states.count("PRUNED")
        if finished >= trials:
            echo(f"search {study.study_name}: {finished} trials finished (budget {trials})")
            return
        if sum(states.count(s) for s in COUNTED) >= trials:
            # The rest of the budget is running in other workers; stay to take over if one of them fails.
            if not waiting_said:
                echo(f"waiting for {states.count('RUNNING')} trial(s) running in other workers")
                waiting_said = True
            time.sleep(POLL_S)
            continue
        if failures >= max(3, trials):
            echo(f"stopping: {failures} trials failed in this worker; see trials.csv for their errors")
            outcome.stopped = True
            return
        waiting_said = False
        number = _run_one(study, spec, overrides=overrides, trials=trials, root=root)
        trial = next(t for t in study.get_trials(deepcopy=False) if t.number == number)
        if trial.user_attrs.get("surplus"):
            continue
        outcome.trained += 1
        failures += trial.state.name == "FAIL"
        echo(_trial_line(study, trial, trials))
        if trial.user_attrs.get("interrupted"):
            raise KeyboardInterrupt


def _run_one(study: optuna.Study, spec: SearchSpec, *, overrides: list[str], trials: int, root: Path) -> int:
    """One trial through ``study.optimize`` (heartbeat, states); returns its number."""
    import optuna

    from resnetlab import api
    from resnetlab.training.signals import Interrupted

    seen: dict[str, int] = {}

    def objective(trial: optuna.Trial) -> float:
        seen["number"] = trial.number
        ahead = sum(1 for t in study.get_trials(deepcopy=False)
                    if t.number < trial.number and t.state.name in COUNTED and not t.user_attrs.get("surplus"))
        if ahead >= trials:
            trial.set_user_attr("surplus", True)
            raise _Surplus()
        # A sampler seeded by trial number: reproducible, and parallel workers do not draw the same points.
        study.sampler = make_sampler(spec, seed=spec.seed + trial.number)
        params = {p.key: suggest(trial, p) for p in spec.space}
        name = f"trial_{trial.number}"
        tokens = [*spec.base, f"train.monitor={spec.metric}", *overrides]
        # The trial's settings are its params (Optuna keeps them); with these tokens they rebuild its config
        # for best_config.yaml and --retrain. Searches stored before kept the params among the tokens too.
        trial.set_user_attr("config", tokens)
        trial.set_user_attr("run_dir", str(root / name))
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")

        def report(row: dict[str, Any]) -> None:
            value = row.get(spec.metric)
            if not isinstance(value, (int, float)):
                return
            trial.report(float(value), step=int(row["epoch"]))
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {row['epoch']} ({spec.metric} {value:.4f})")

        try:
            cfg = build_config(tokens, settings={**params, "output.dir": str(root), "output.name": name})
            result = api.train(cfg, callbacks=[report])
        except optuna.TrialPruned:
            raise
        except Interrupted:
            trial.set_user_attr("interrupted", True)
            trial.set_user_attr("error", "interrupted")
            raise
        except UserError as exc:
            trial.set_user_attr("error", " ".join(str(exc).split()))
            raise
        except Exception as exc:  # keep the traceback beside the run; the search goes on
            (root / name).mkdir(parents=True, exist_ok=True)
            write_text(root / name / "search_error.log", traceback.format_exc())
            trial.set_user_attr("error", first_line(exc, with_type=True))
            raise
        key = spec.metric.split("/", 1)[1]
        value = result.val.get(key)
        if not isinstance(value, (int, float)):
            trial.set_user_attr("error", f"metric {spec.metric} not in the run's results ({', '.join(result.val)})")
            raise UserError(trial.user_attrs["error"])
        return float(value)

    study.optimize(objective, n_trials=1, catch=(Exception,))
    return seen["number"]


def suggest(trial: optuna.Trial, param: Param) -> Any:
    if param.kind == "loguniform":
        return trial.suggest_float(param.key, param.low, param.high, log=True)
    if param.kind == "uniform":
        return trial.suggest_float(param.key, param.low, param.high)
    if param.kind == "int":
        return trial.suggest_int(param.key, int(param.low), int(param.high), step=int(param.step or 1))
    return trial.suggest_categorical(param.key, list(param.choices))


class _Surplus(Exception):
    """This trial lost the race for the last place in the budget."""


# ---------------------------------------------------------------- results


def _trials(study: optuna.Study) -> list[Any]:
    return [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get("surplus")]


def _states(study: optuna.Study) -> list[str]:
    return [t.state.name for t in _trials(study)]


def _counts(study: optuna.Study) -> dict[str, int]:
    counts: dict[str, int] = {}
    for state in _states(study):
        counts[state] = counts.get(state, 0) + 1
    return counts


def _best(study: optuna.Study) -> dict[str, Any] | None:
    complete = [t for t in _trials(study) if t.state.name == "COMPLETE" and t.value is not None]
    if not complete:
        return None
    pick = min if study.direction.name == "MINIMIZE" else max
    best = pick(complete, key=lambda t: t.value)
    return {"number": best.number, "value": best.value, "params": dict(best.params),
            "run_dir": best.user_attrs.get("run_dir"), "config": best.user_attrs.get("config")}


def _trial_line(study: optuna.Study, trial: Any, trials: int) -> str:
    states = _states(study)
    finished = states.count("COMPLETE") + states.count("PRUNED")
    state = trial.state.name.lower()
    if trial.state.name == "COMPLETE":
        text = f"{state}, value {trial.value:.4f}"
    elif trial.state.name == "PRUNED":
        last = max(trial.intermediate_values) if trial.intermediate_values else None
        text = f"pruned after epoch {last}" if last is not None else "pruned"
    else:
        text = f"failed: {trial.user_attrs.get('error', 'see its run folder')}"
    best = _best(study)
    best_text = f"; best {best['value']:.4f} (trial {best['number']})" if best else ""
    return f"trial {trial.number}: {text} ({finished}/{trials} finished{best_text})"


def best_config_text(study: optuna.Study, best: dict[str, Any]) -> str:
    """The best trial's configuration as a ready config file for ``resnetlab train config=...``."""
    cfg = build_config(best["config"], settings=best["params"])
    cfg.output.name = None  # a new run gets a fresh folder
    cfg.train.resume = None
    params = ", ".join(f"{k}={v}" for k, v in best["params"].items())
    header = (f"# Best trial {best['number']} of search '{study.study_name}': {study.user_attrs['resnetlab']['metric']}"
              f" = {best['value']:.6g}\n# {params}\n")
    return header + yaml.safe_dump(to_dict(cfg), sort_keys=False)


def write_search_report(study: optuna.Study, spec: SearchSpec, *, root: Path, trials: int, storage: str) -> Path:
    """trials.csv, best_config.yaml, search.md and plots/optimization_history.png."""
    from resnetlab.evaluation.report import fmt_duration, fmt_value, table

    rows = _trial_rows(study, spec)
    keys = [p.key for p in spec.space]
    write_text(root / "trials.csv", _csv_text(rows))
    best = _best(study)
    if best is not None:
        write_text(root / "best_config.yaml", best_config_text(study, best))
    plot = plot_optimization_history(study, spec, path=root / "plots" / "optimization_history.png")

    counts = _counts(study)
    lines = [f"# Search: {study.study_name}", ""]
    if spec.description:
        lines += [spec.description.strip(), ""]
    state_text = ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items())) or "no trials yet"
    lines += [(f"Budget {trials} trials (complete + pruned), shared by every worker; {state_text}. "
              f"Metric `{spec.metric}` ({spec.direction}). Sampler {_describe(spec.sampler)}, "
              f"pruner {_describe(spec.pruner)}. Storage `{storage}`. From {spec.source}."), ""]
    if best is not None:
        lines += ["## Best trial", "", (f"Trial {best['number']}: `{spec.metric}` = **{best['value']:.4f}** "
                  f"(run folder `{best['run_dir']}`)."), "",
                  table(["parameter", "value"], [[k, fmt_value(v)] for k, v in best["params"].items()]), "",
                  f"Train it again: `resnetlab train config={root / 'best_config.yaml'}`", ""]
        lines += _retrained_lines(root)
    else:
        lines += ["No trial has completed yet.", ""]
    header = ["trial", "state", spec.metric, *keys, "epochs", "time", "error"]
    body = [[r["number"], r["state"].lower(), f"{r['value']:.4f}" if r["value"] is not None else "—",
             *(fmt_value(r.get(k)) for k in keys), r["epochs"], fmt_duration(r["seconds"]), r["error"] or ""]
            for r in rows]
    numeric = [3 + i for i, p in enumerate(spec.space) if p.kind != "categorical"]
    right = [0, 2, *numeric, 3 + len(keys), 4 + len(keys)]
    lines += ["## Trials", "", table(header, body, right=right), "",
              "Pruned trials show their last reported value.", "",
              f"![Optimization history](plots/{plot.name})", ""]
    out = root / "search.md"
    write_text(out, "\n".join(lines))
    return out


def _retrained_lines(root: Path) -> list[str]:
    marker, metrics_file = root / "best" / "best_trial.json", root / "best" / METRICS_FILE
    if not (marker.is_file() and metrics_file.is_file()):
        return []
    trial = json.loads(marker.read_text()).get("trial")
    metrics = json.loads(metrics_file.read_text())
    parts = [f"{split} {key} {metrics[split]['scalars'][key]:.4f}" for split in ("val", "test")
             for key in ("accuracy", "srcc") if key in (metrics.get(split) or {}).get("scalars", {})]
    return [f"Retrained (trial {trial}) in `{root / 'best'}`: {', '.join(parts)}.", ""]


def _trial_rows(study: optuna.Study, spec: SearchSpec) -> list[dict[str, Any]]:
    rows = []
    for t in _trials(study):
        value = t.value if t.state.name == "COMPLETE" else None
        if t.state.name == "PRUNED" and t.intermediate_values:
            value = t.intermediate_values[max(t.intermediate_values)]
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() \
            if t.datetime_complete and t.datetime_start else None
        rows.append({"number": t.number, "state": t.state.name, "value": value,
                     **{p.key: t.params.get(p.key) for p in spec.space},
                     "epochs": len(t.intermediate_values), "seconds": seconds,
                     "run_dir": t.user_attrs.get("run_dir"), "worker": t.user_attrs.get("worker"),
                     "error": t.user_attrs.get("error")})
    return rows


def _csv_text(rows: list[dict[str, Any]]) -> str:
    import io

    handle = io.StringIO()
    if rows:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None else v for k, v in row.items()})
    else:
        handle.write("number,state,value\n")
    return handle.getvalue()


def plot_optimization_history(study: optuna.Study, spec: SearchSpec, *, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = _trial_rows(study, spec)
    fig, ax = plt.subplots(figsize=(7.0, 4.2))
    for state, marker, color in (("COMPLETE", "o", "tab:blue"), ("PRUNED", "x", "tab:gray")):
        points = [(r["number"], r["value"]) for r in rows if r["state"] == state and r["value"] is not None]
        if points:
            ax.scatter(*zip(*points), marker=marker, color=color, label=state.lower(), zorder=3)
    complete = sorted((r["number"], r["value"]) for r in rows if r["state"] == "COMPLETE" and r["value"] is not None)
    if complete:
        pick = min if spec.direction == "minimize" else max
        best, xs, ys = None, [], []
        for number, value in complete:
            best = value if best is None else pick(best, value)
            xs.append(number)
            ys.append(best)
        ax.step(xs, ys, where="post", color="tab:red", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(spec.metric)
    ax.set_title(f"{study.study_name}: optimization history")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    try:  # workers that finish together each write the whole figure
        atomic_write(path, lambda handle: fig.savefig(handle, format="png", dpi=130, bbox_inches="tight"))
    finally:
        plt.close(fig)
    return path


def _retrain(study: optuna.Study, *, root: Path, echo: Callable[[str], None], outcome: SearchOutcome) -> Path | None:
    """Train the best configuration again as ``root/best`` (once, whichever worker gets there first)."""
    from resnetlab import api

    best = _best(study)
    if best is None:
        raise UserError(f"--retrain: no trial of {study.study_name} completed; see {root / 'search.md'}")
    if "RUNNING" in _states(study):
        outcome.notes.append("--retrain skipped: trials are still running; run the command again when they finish")
        return None
    run_dir = root / "best"
    marker = run_dir / "best_trial.json"
    with _try_lock(root / ".retrain.lock") as locked:
        if not locked:
            outcome.notes.append("--retrain: another worker is retraining the best configuration")
            return None
        if run_dir.exists():
            before = json.loads(marker.read_text()).get("trial") if marker.is_file() else None
            if before != best["number"]:
                raise UserError(f"{run_dir} holds a retrain of trial {before}, the best is now trial "
                                f"{best['number']}; move or delete {run_dir} and run again")
            if run_status(run_dir) == "done":
                echo(f"best trial {best['number']} already retrained in {run_dir}")
                return run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(marker, {"trial": best["number"], "value": best["value"]}, indent=None)
        echo(f"retraining trial {best['number']} as {run_dir}")
        result = api.train(build_config(best["config"], settings={**best["params"], "output.dir": str(root),
                                                                   "output.name": "best", "train.resume": "auto"}))
        return result.run_dir


@contextmanager
def _try_lock(path: Path) -> Iterator[bool]:
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks
        yield True
        return
    with open(path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True


def _describe(block: dict[str, Any]) -> str:
    options = ", ".join(f"{k}={v}" for k, v in block.items() if k != "name")
    return f"{block['name']}" + (f" ({options})" if options else "")

