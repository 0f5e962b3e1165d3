"""Studies end to end on tiny digits runs (preset=test: 8 px, 128 training images)."""

import csv
import itertools
import json
import os

import numpy as np
import pytest
import yaml

from resnetlab import api
from resnetlab.errors import UserError
from resnetlab.studies import load_study, run_study
from resnetlab.studies.runner import RUN_FILE

PNG = b"\x89PNG\r\n\x1a\n"
# One thread: on a shared CPU, spinning thread pools make these tiny runs 10x slower.
FAST = ["train.epochs=2", "train.threads=1"]
OPTIMIZERS = [{"name": "adam", "optim.name": "adam", "optim.lr": 1.0e-3},
              {"name": "adamw", "optim.name": "adamw", "optim.lr": 1.0e-3},
              {"name": "sgd", "optim.name": "sgd", "optim.lr": 0.05}]


def write_study(folder, **data):
    data.setdefault("base", ["preset=test"])
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_study(path)


@pytest.fixture
def count_training(monkeypatch):
    calls = []
    original = api.train

    def counting(*args, **kwargs):
        calls.append(args[0].output.name if args else None)
        return original(*args, **kwargs)

    monkeypatch.setattr(api, "train", counting)
    return calls


def is_png(path):
    return path.is_file() and path.stat().st_size > 1000 and path.read_bytes()[:8] == PNG


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_optimizer_study_writes_results_report_plots_and_skips_on_rerun(tmp_path, count_training):
    spec = write_study(tmp_path, vary={"optimizer": OPTIMIZERS})
    out = tmp_path / "optimizer"
    lines = []
    outcome = run_study(spec, overrides=FAST, out=out, echo=lines.append)

    assert outcome.status == {"adam": "done", "adamw": "done", "sgd": "done"}
    assert count_training == ["adam", "adamw", "sgd"] and outcome.trained == 3
    assert any(line.startswith("[2/3] adamw: done in") and "ETA" in line for line in lines)
    rows = read_csv(out / "results.csv")
    assert [(r["variant"], r["status"], r["optim.name"]) for r in rows] == [
        ("adam", "done", "adam"), ("adamw", "done", "adamw"), ("sgd", "done", "sgd")]
    for row in rows:
        assert 0.0 <= float(row["val/accuracy"]) <= 1.0 and float(row["test/accuracy"]) >= 0.0
        assert float(row["val/top5"]) >= float(row["val/accuracy"])
        assert row["best_epoch"] in ("1", "2") and int(row["num_params"]) > 0 and float(row["wall_seconds"]) > 0
        assert row["run_dir"] == str(out / row["variant"]) and row["error"] == ""
    results = json.loads((out / "all_results.json").read_text())
    assert results["metric"] == "val/accuracy" and results["baseline"] == "adam" and len(results["runs"]) == 3

    report = (out / "study.md").read_text()
    assert ("| experiment | model | optimizer | lr | batch | image size | augmentation | optim.weight_decay"
            not in report)  # only keys the study varies get extra columns
    assert ("| experiment | model | optimizer | lr | batch | image size | augmentation | val acc | test acc | top-5 "
            "| time | n |") in report
    sgd = next(r for r in results["runs"] if r["variant"] == "sgd")
    assert f"| sgd | resnet20 | sgd | 0.05 | 32 | 8 | yes | {sgd['val/accuracy']:.4f} |" in report
    adam = next(r for r in results["runs"] if r["variant"] == "adam")
    assert f"| sgd | {sgd['val/accuracy']:.4f} | {sgd['val/accuracy'] - adam['val/accuracy']:+.4f} |" in report
    assert is_png(out / "plots" / "metric_by_variant.png") and is_png(out / "plots" / "validation_curves.png")

    # Rerun: nothing trains, finished folders are untouched, the report is rebuilt.
    stamps = {r["variant"]: os.stat(out / r["variant"] / "metrics.json").st_mtime_ns for r in rows}
    count_training.clear()
    lines.clear()
    again = run_study(spec, overrides=FAST, out=out, echo=lines.append)
    assert count_training == [] and again.trained == 0
    assert all("done earlier, skipped" in line for line in lines[:3])
    assert {v: os.stat(out / v / "metrics.json").st_mtime_ns for v in stamps} == stamps

    # An interrupted run (last.pt, no metrics.json) continues from its checkpoint, alone.
    (out / "adamw" / "metrics.json").unlink()
    run_study(spec, overrides=FAST, out=out, echo=lines.append)
    assert count_training == ["adamw"]
    assert "resuming" in (out / "adamw" / "train.log").read_text()
    assert len(json.loads((out / "adamw" / "history.json").read_text())) == 2  # no epoch trained twice
    assert os.stat(out / "adam" / "metrics.json").st_mtime_ns == stamps["adam"]

    # The same folder with other settings is refused instead of mixing results.
    with pytest.raises(UserError, match="was trained with other settings"):
        run_study(spec, overrides=[*FAST, "train.epochs=3"], out=out, echo=lines.append)


def test_a_study_metric_is_checked_before_training(tmp_path, count_training):
    spec = write_study(tmp_path, vary={"optim.lr": [0.01, 0.1]}, metric="val/acc")
    with pytest.raises(UserError, match=r"study.yaml: metric: val/acc is not a metric of a classification run; "
                                        r"did you mean 'val/accuracy'\?"):
        run_study(spec, overrides=FAST, out=tmp_path / "out", echo=lambda line: None)
    assert count_training == [] and not (tmp_path / "out").exists()
    # The task comes from the runs' configs: a regression study is checked against regression metrics.
    spec = write_study(tmp_path, vary={"optim.lr": [0.01, 0.1]}, metric="val/accuracy")
    with pytest.raises(UserError, match="is not a metric of a regression run"):
        run_study(spec, overrides=[*FAST, "data.task=regression"], out=tmp_path / "out", echo=lambda line: None)
    assert count_training == []


def test_other_settings_say_what_was_and_what_is_now(tmp_path, count_training):
    from resnetlab.studies.runner import plan_study

    spec = write_study(tmp_path, vary={"optim.lr": [0.01]})
    out = tmp_path / "out"
    (run,) = plan_study(spec, overrides=["train.epochs=2"], out=out)
    run.run_dir.mkdir(parents=True)
    (run.run_dir / RUN_FILE).write_text(json.dumps({"variant": run.variant, "seed": None, "overrides": run.identity}))
    with pytest.raises(UserError) as info:
        run_study(spec, overrides=["train.epochs=1"], out=out, echo=lambda line: None)
    assert f"{run.run_dir} was trained with other settings (train.epochs was 2, now 1); " in str(info.value)
    assert count_training == []


def test_failing_variants_are_recorded_and_the_others_finish(tmp_path):
    spec = write_study(tmp_path, vary={"optimizer": [
        OPTIMIZERS[2], {"name": "resnet19", "model.name": "resnet19"}, {"name": "negative-lr", "optim.lr": -1}]})
    out = tmp_path / "s"
    outcome = run_study(spec, overrides=FAST, out=out, echo=lambda line: None)
    assert outcome.status == {"sgd": "done", "resnet19": "failed", "negative-lr": "failed"}
    rows = {r["variant"]: r for r in read_csv(out / "results.csv")}
    assert "unknown model 'resnet19'" in rows["resnet19"]["error"]
    assert "optim.lr" in rows["negative-lr"]["error"] and ">= 0" in rows["negative-lr"]["error"]
    assert rows["sgd"]["error"] == "" and rows["sgd"]["val/accuracy"] != ""
    report = (out / "study.md").read_text()
    assert "## Failed runs" in report
    assert f"| resnet19 | {rows['resnet19']['error']} |" in report
    assert "| negative-lr | — | — | — | — | 0/1 |" in report  # no numbers for a failed variant


def test_a_hog_svm_variant_sits_in_the_same_table(tmp_path, count_training):
    spec = write_study(tmp_path, vary={"model": [
        {"name": "resnet20", "data.image_size": 16},
        {"name": "hog-svm", "model.name": "hog-svm", "data.image_size": 16}]})
    out = tmp_path / "vs"
    outcome = run_study(spec, overrides=FAST, out=out, echo=lambda line: None)
    assert outcome.status == {"resnet20": "done", "hog-svm": "done"}
    rows = {r["variant"]: r for r in read_csv(out / "results.csv")}
    hog = rows["hog-svm"]
    assert hog["model.name"] == "hog-svm" and float(hog["test/accuracy"]) > 0.5  # 10 classes: chance 0.1
    assert hog["optim.name"] == "" and hog["best_epoch"] == ""  # no optimizer, no epochs: nothing to show
    report = (out / "study.md").read_text()
    assert f"| hog-svm | hog-svm | — | — | — | 16 | — | {float(hog['val/accuracy']):.4f} |" in report
    count_training.clear()
    assert run_study(spec, overrides=FAST, out=out, echo=lambda line: None).trained == 0 and count_training == []


def test_seeds_give_mean_and_std_from_all_results(tmp_path):
    spec = write_study(tmp_path, vary={"optim.lr": [0.05, 0.2]}, seeds=2, baseline="0.2")
    out = tmp_path / "lr"
    run_study(spec, overrides=FAST, out=out, echo=lambda line: None)
    runs = json.loads((out / "all_results.json").read_text())["runs"]
    assert sorted((r["variant"], r["seed"]) for r in runs) == [("0.05", 0), ("0.05", 1), ("0.2", 0), ("0.2", 1)]
    assert {r["status"] for r in runs} == {"done"}
    report = (out / "study.md").read_text()
    means = {}
    for variant in ("0.05", "0.2"):
        values = [r["val/accuracy"] for r in runs if r["variant"] == variant]
        tests = [r["test/accuracy"] for r in runs if r["variant"] == variant]
        means[variant] = np.mean(values)
        cell = f"{np.mean(values):.4f} ± {np.std(values, ddof=1):.4f}"
        test_cell = f"{np.mean(tests):.4f} ± {np.std(tests, ddof=1):.4f}"
        assert f"| {cell} | {test_cell} |" in report
        assert f"_seed{1}" not in report.split("## Against")[0]  # one row per variant, not per run
    delta = means["0.05"] - means["0.2"]
    assert f"| 0.05 | {np.mean([r['val/accuracy'] for r in runs if r['variant'] == '0.05']):.4f}" in report
    assert f"| {delta:+.4f} |" in report
    assert "| 2/2 |" in report


def run_cli(*argv):
    from resnetlab.cli.main import main

    return main(list(argv))


def test_jobs_run_in_parallel_processes_and_give_the_same_results(tmp_path, capsys):
    spec_path = tmp_path / "study.yaml"
    spec_path.write_text(yaml.safe_dump({"base": ["preset=test"], "vary": {"optimizer": OPTIMIZERS[:2]},
                                         "seeds": 2}))
    # One thread everywhere, so the in-process and the worker runs compute identically.
    overrides = FAST
    assert run_cli("study", str(spec_path), *overrides, "--out", str(tmp_path / "seq")) == 0
    assert run_cli("study", str(spec_path), *overrides, "--jobs", "2", "--out", str(tmp_path / "par")) == 0
    printed = capsys.readouterr().out
    assert "study study: 4 runs (4 done)" in printed

    def results(folder):
        return {(r["variant"], r["seed"], r["status"], r["val/accuracy"], r["test/accuracy"])
                for r in read_csv(tmp_path / folder / "results.csv")}

    assert results("seq") == results("par") and len(results("par")) == 4
    # Worker output is captured in each run folder.
    log = (tmp_path / "par" / "adam_seed0" / "study.log").read_text()
    assert "resnetlab train" in log and "train.threads=" in log
    # Two runs overlapped in time: the second started before the first finished.
    spans = sorted((os.stat(d / RUN_FILE).st_mtime, os.stat(d / "metrics.json").st_mtime)
                   for d in (tmp_path / "par").iterdir() if (d / RUN_FILE).is_file())
    assert len(spans) == 4 and spans[1][0] < spans[0][1]
    seq_spans = sorted((os.stat(d / RUN_FILE).st_mtime, os.stat(d / "metrics.json").st_mtime)
                       for d in (tmp_path / "seq").iterdir() if (d / RUN_FILE).is_file())
    assert all(later[0] >= earlier[1] for earlier, later in itertools.pairwise(seq_spans))


def test_cli_lists_builtins_and_rejects_a_bad_study(tmp_path, capsys):
    assert run_cli("study", "--list") == 0
    assert {"architecture", "optimizer", "lr", "image_size", "augmentation", "pretrained", "freeze"} <= set(
        capsys.readouterr().out.split())
    bad = tmp_path / "bad.yaml"
    bad.write_text("vary: {optim.lr: [0.1]}\nseed: 2\n")
    capsys.readouterr()
    assert run_cli("study", str(bad)) == 2
    assert "unknown study key 'seed'" in capsys.readouterr().err
    assert run_cli("study", "optimizer", "--jobs", "0", "--out", str(tmp_path / "x")) == 2
    assert "--jobs takes a whole number" in capsys.readouterr().err


def test_regression_study_reports_srcc_and_plcc(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    (tmp_path / "img").mkdir()
    lines = ["image,score"]
    for i in range(80):  # the score is the image's brightness: learnable in a few steps
        level = rng.uniform(0, 1)
        pixels = np.clip(rng.normal(level * 255, 30, size=(8, 8)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(tmp_path / "img" / f"{i}.png")
        lines.append(f"img/{i}.png,{level:.4f}")
    (tmp_path / "data.csv").write_text("\n".join(lines) + "\n")
    spec = write_study(tmp_path, base=["preset=test", f"data.source={tmp_path / 'data.csv'}",
                                       "data.label_column=score", "data.task=regression",
                                       "train.monitor=val/srcc"],
                       vary={"optim.lr": [0.003, 0.03]})
    out = tmp_path / "reg"
    run_study(spec, overrides=FAST, out=out, echo=lambda line: None)
    results = json.loads((out / "all_results.json").read_text())
    assert results["metric"] == "val/srcc"
    report = (out / "study.md").read_text()
    assert "| val SRCC | val PLCC | test SRCC | test PLCC |" in report and "val acc" not in report
    run = results["runs"][1]
    assert (f"| {run['val/srcc']:.4f} | {run['val/plcc']:.4f} | {run['test/srcc']:.4f} "
            f"| {run['test/plcc']:.4f} |") in report
    delta = run["val/srcc"] - results["runs"][0]["val/srcc"]
    assert f"| 0.03 | {run['val/srcc']:.4f} | {delta:+.4f} |" in report


def test_parallel_jobs_get_disjoint_thread_budgets_from_the_free_cores(monkeypatch):
    from resnetlab.studies.runner import job_threads
    from resnetlab.training import threads

    for free, jobs, each in ((4, 2, 2), (4, 3, 1), (8, 3, 2), (1, 2, 1)):
        monkeypatch.setattr(threads, "free_cores", lambda free=free: free)
        assert job_threads(jobs) == each
        assert jobs * each <= max(free, jobs)  # never more threads than free cores (at least one each)
