"""Optuna searches: a shared trial budget over several workers, pruning, reports, best config."""

import csv
import subprocess
import sys

import optuna
import pytest
import yaml

from resnetlab.config import build_config
from resnetlab.errors import UserError
from resnetlab.studies import load_search, run_search
from resnetlab.studies.search import SearchOutcome, _run_one, _work, open_storage
from resnetlab.studies.spec import parse_search

PNG = b"\x89PNG\r\n\x1a\n"

# Drives the `search` command the way `resnetlab search` does, in its own process.
WORKER = """
import argparse, sys
from resnetlab.cli import main as cli_main
commands = next(a for a in cli_main.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
if "search" in commands.choices:
    sys.exit(cli_main.main(sys.argv[1:]))
from resnetlab.cli.study_commands import register
parser = argparse.ArgumentParser()
common = argparse.ArgumentParser(add_help=False)
common.add_argument("--debug", action="store_true")
register(parser.add_subparsers(dest="command"), common)
args = parser.parse_args(sys.argv[1:])
sys.exit(args.func(args))
"""


def search_file(folder, **extra):
    data = {"base": ["preset=test", "train.epochs=3", "train.threads=1"],
            "space": {"optim.lr": {"type": "loguniform", "low": 1.0e-4, "high": 1.0},
                      "optim.name": {"type": "categorical", "choices": ["sgd", "adam"]}},
            # Keep only trials that match the best so far at every epoch: prunes most of them.
            "pruner": {"name": "percentile", "percentile": 1.0, "n_startup_trials": 1, "n_warmup_steps": 0},
            "sampler": {"name": "tpe", "n_startup_trials": 3}, **extra}
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_two_workers_share_one_budget_on_sqlite(tmp_path):
    spec_path = search_file(tmp_path)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    out = tmp_path / "tiny"
    command = [sys.executable, str(script), "search", str(spec_path), "--trials", "6", "--out", str(out)]
    workers = [subprocess.Popen(command + extra, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for extra in ([], ["--retrain"])]
    logs = [w.communicate(timeout=600)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], logs

    storage = open_storage(f"sqlite:///{out / 'search.db'}")
    study = optuna.load_study(study_name="tiny", storage=storage)
    states = [t.state.name for t in study.get_trials() if not t.user_attrs.get("surplus")]
    assert states.count("COMPLETE") + states.count("PRUNED") == 6
    assert states.count("PRUNED") >= 1 and states.count("COMPLETE") >= 1
    assert len({t.user_attrs["worker"] for t in study.get_trials() if "worker" in t.user_attrs}) == 2
    for trial in study.get_trials():
        if trial.state.name in ("COMPLETE", "PRUNED"):
            assert (out / f"trial_{trial.number}" / "config.yaml").is_file()
        if trial.state.name == "COMPLETE":
            assert (out / f"trial_{trial.number}" / "metrics.json").is_file()

    with open(out / "trials.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(r["state"] for r in rows) == sorted(states)
    report = (out / "search.md").read_text()
    best = max((t for t in study.get_trials() if t.state.name == "COMPLETE"), key=lambda t: t.value)
    assert f"Trial {best.number}: `val/accuracy` = **{best.value:.4f}**" in report
    assert "| trial | state | val/accuracy | optim.lr | optim.name | epochs | time | error |" in report
    history = out / "plots" / "optimization_history.png"
    assert history.stat().st_size > 1000 and history.read_bytes()[:8] == PNG

    cfg = build_config([f"config={out / 'best_config.yaml'}"])
    assert cfg.optim.lr == pytest.approx(best.params["optim.lr"]) and cfg.optim.name == best.params["optim.name"]
    assert cfg.train.epochs == 3 and cfg.output.name is None and cfg.train.resume is None
    assert (out / "best" / "metrics.json").is_file()  # --retrain
    assert yaml.safe_load((out / "best" / "config.yaml").read_text())["optim"]["lr"] == pytest.approx(
        best.params["optim.lr"])

    # The budget is met: another worker only rewrites the report.
    again = run_search(load_search(spec_path), trials=6, out=out, echo=lambda line: None)
    assert again.trained == 0 and sum(again.counts.get(s, 0) for s in ("COMPLETE", "PRUNED")) == 6


def test_a_trial_beyond_the_budget_is_dropped_before_training(tmp_path):
    spec = parse_search(yaml.safe_load(search_file(tmp_path).read_text()), name="tiny", source="tiny.yaml")
    study = optuna.create_study(direction="maximize")
    for value in (0.2, 0.3):
        study.add_trial(optuna.trial.create_trial(value=value))
    # Another worker asked for a trial at the same moment as the one that filled the budget.
    number = _run_one(study, spec, overrides=[], trials=2, root=tmp_path)
    trial = study.get_trials()[number]
    assert trial.state.name == "FAIL" and trial.user_attrs.get("surplus") is True
    assert not (tmp_path / f"trial_{number}").exists()
    lines = []
    outcome = SearchOutcome(root=tmp_path, study_name=study.study_name, storage="memory", counts={}, best=None,
                            report=tmp_path / "search.md")
    _work(study, spec, overrides=[], trials=2, root=tmp_path, echo=lines.append, outcome=outcome)
    assert outcome.trained == 0
    assert lines == ["search " + study.study_name + ": 2 trials finished (budget 2)"]


def test_search_input_mistakes(tmp_path):
    spec = load_search(search_file(tmp_path))
    with pytest.raises(UserError, match="pass --trials N"):
        run_search(spec, out=tmp_path / "a")
    with pytest.raises(UserError, match="is not a storage URL"):
        run_search(spec, trials=2, storage="search.db", out=tmp_path / "a")
    with pytest.raises(UserError, match=r"--storage foo://bar: SQLAlchemy cannot open it \(.*\); use a database URL"):
        run_search(spec, trials=2, storage="foo://bar", out=tmp_path / "a")
    with pytest.raises(UserError, match="unknown config key 'optim.lrr'"):
        run_search(spec, trials=2, overrides=["optim.lrr=1"], out=tmp_path / "a")


# ---------------------------------------------------------------- checked before any trial runs


@pytest.mark.parametrize("extra,overrides,message", [
    ({"space": {"optim.name": {"type": "categorical", "choices": ["sgd", "adamm"]}}}, [],
     "space: optim.name choice 'adamm': config key 'optim.name' got 'adamm'"),
    ({"space": {"optim.lr": {"type": "uniform", "low": -1.0, "high": 0.1}}}, [],
     "space: optim.lr low -1.0: config key 'optim.lr' must be >= 0.0"),
    ({"space": {"optim.name": {"type": "int", "low": 1, "high": 3}}}, [],
     "space: optim.name low 1: config key 'optim.name' got '1'"),
    ({"space": {"train.label_smoothing": {"type": "uniform", "low": 0.0, "high": 2.0}}}, [],
     "space: train.label_smoothing high 2.0: config key 'train.label_smoothing'"),
    ({"metric": "val/acc"}, [], ("metric: val/acc is not a metric of a classification run; "
                                "did you mean 'val/accuracy'?")),
    ({"metric": "val/accuracy"}, ["data.task=regression"], "metric: val/accuracy is not a metric of a regression run"),
])
def test_space_values_and_metric_are_checked_before_any_trial(tmp_path, extra, overrides, message):
    spec = load_search(search_file(tmp_path, **extra))
    with pytest.raises(UserError) as info:
        run_search(spec, trials=2, overrides=overrides, out=tmp_path / "out")
    assert str(info.value).startswith(f"{spec.source}: ") and message in str(info.value)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()  # no trial, no folder


def run_search_cli(*argv):
    from resnetlab.cli.main import main

    return main(list(argv))


def test_a_search_whose_trials_fail_exits_non_zero(tmp_path, monkeypatch, capsys):
    from resnetlab import api

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(api, "train", broken)
    code = run_search_cli("search", str(search_file(tmp_path)), "--trials", "2", "--out", str(tmp_path / "out"))
    captured = capsys.readouterr()
    assert code == 1, captured.out
    assert "stopping: 3 trials failed" in captured.out and "stopped after failed trials" in captured.err
    # No trial completed (all pruned, say) is a failed search too.
    outcome = SearchOutcome(root=tmp_path, study_name="x", storage="memory", counts={"PRUNED": 2}, best=None,
                            report=tmp_path / "search.md")
    assert outcome.failed
    outcome.counts = {"COMPLETE": 1, "FAIL": 2}
    assert not outcome.failed


def test_a_rerun_with_other_settings_is_refused(tmp_path, monkeypatch):
    from resnetlab.studies import search as search_module

    monkeypatch.setattr(search_module, "_work", lambda *args, **kwargs: None)  # no trials: only the study is opened
    spec = load_search(search_file(tmp_path))
    out = tmp_path / "out"
    run_search(spec, trials=2, overrides=["train.epochs=2"], out=out, echo=lambda line: None)
    with pytest.raises(UserError) as info:
        run_search(spec, trials=2, overrides=["train.epochs=1"], out=out, echo=lambda line: None)
    assert str(info.value).startswith(f"{out} was trained with other settings (train.epochs was 2, now 1); give ")
    # Another worker may use its own cores and device: these do not change what a trial learns.
    run_search(spec, trials=2, overrides=["train.epochs=2", "train.threads=2", "train.device=cpu"], out=out,
               echo=lambda line: None)
