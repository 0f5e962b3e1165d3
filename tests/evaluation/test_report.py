"""report.md and comparison.md built from synthetic run folders written by the tests."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from resnetlab.errors import UserError
from resnetlab.evaluation.compare import write_comparison
from resnetlab.evaluation.metrics import classification_metrics
from resnetlab.evaluation.plots import STANDARD_CLASSIFICATION_PLOTS, write_classification_plots
from resnetlab.evaluation.report import write_report

NAMES = ["cat", "dog", "bird", "fish"]
TARGETS = np.array([0, 0, 0, 1, 1, 2, 2, 2])
VAL_PREDS = np.array([0, 0, 1, 1, 3, 0, 1, 3])  # accuracy 3/8, mpca 7/18
TEST_PREDS = np.array([0, 0, 0, 1, 1, 2, 2, 3])  # accuracy 7/8


def one_hot_logits(preds: np.ndarray) -> np.ndarray:
    logits = np.zeros((preds.size, len(NAMES)))
    logits[np.arange(preds.size), preds] = 4.0
    return logits


def make_run(folder: Path, *, val_preds=VAL_PREDS, lr: float = 0.05, plots: bool = False) -> Path:
    folder.mkdir(parents=True)
    config = {
        "model": {"name": "resnet18"},
        "data": {"source": "folder:/data/pets", "image_size": 64},
        "augment": {"enabled": True},
        "optim": {"name": "sgd", "lr": lr, "weight_decay": 5e-4},
        "schedule": {"name": "cosine"},
        "train": {"epochs": 3, "batch_size": 32},
        "output": {"dir": "runs"},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    history = [
        {"epoch": e, "train/loss": 1.5 / e, "val/loss": 1.6 / e, "val/accuracy": 0.2 * e,
         "val/mpca": 0.18 * e, "lr": lr / e, "seconds": 30.0, "images_per_s": 400.0}
        for e in (1, 2, 3)
    ]
    (folder / "history.json").write_text(json.dumps(history))
    val = classification_metrics(one_hot_logits(val_preds), TARGETS, class_names=NAMES, loss=1.1)
    test = classification_metrics(one_hot_logits(TEST_PREDS), TARGETS, class_names=NAMES)
    metrics = {
        "best_epoch": 2,
        "monitor": "val/accuracy",
        "val": val.to_dict(),
        "test": test.to_dict(),
        "resources": {"wall_seconds": 95.0, "seconds_per_epoch": 31.7, "images_per_s": 412.5,
                      "peak_rss_mb": 812.4, "device": "cpu"},
    }
    (folder / "metrics.json").write_text(json.dumps(metrics))
    summary = {
        "class_names": NAMES,
        "splits": {
            "train": {"count": 40, "per_class": {"cat": 10, "dog": 10, "bird": 10, "fish": 10}},
            "val": {"count": 8, "per_class": {"cat": 3, "dog": 2, "bird": 3, "fish": 0}},
            "test": {"count": 8, "per_class": {"cat": 3, "dog": 2, "bird": 3, "fish": 0}},
        },
        "skipped": [{"path": "data/cat/broken.jpg", "reason": "cannot decode image"}],
        "data_hash": "d4t4h45h",
    }
    (folder / "data_summary.json").write_text(json.dumps(summary))
    provenance = {"resnetlab_version": "0.1.0", "git_commit": "abc1234", "torch_version": "2.13",
                  "device": "cpu", "python": "3.12.1", "data_hash": "d4t4h45h"}
    (folder / "provenance.json").write_text(json.dumps(provenance))
    if plots:
        write_classification_plots(val, history, monitor="val/accuracy",
                                   plots_dir=folder / "plots", best_epoch=2)
    return folder


@pytest.fixture(scope="module")
def report_text(tmp_path_factory) -> tuple[Path, str]:
    run = make_run(tmp_path_factory.mktemp("runs") / "run_a", plots=True)
    path = write_report(run)
    assert path == run / "report.md"
    return run, path.read_text()


def test_report_header_and_configuration(report_text):
    _, text = report_text
    assert text.startswith("# Run report: run_a\n")
    assert "| model | `resnet18` |" in text
    assert "| learning rate | `0.05` |" in text
    assert "| weight decay | `0.0005` |" in text
    assert "| augmentation | `yes` |" in text
    assert "| image size | `64` |" in text
    assert "[config.yaml](config.yaml)" in text


def test_report_metrics_table_has_val_and_test(report_text):
    _, text = report_text
    assert "| metric | val | test |" in text
    assert "| accuracy | 0.3750 | 0.8750 |" in text
    assert "| loss | 1.1000 | — |" in text
    assert "| top5 | n/a (5 classes or fewer) | n/a (5 classes or fewer) |" in text
    assert f"| mpca | {7 / 18:.4f} |" in text
    assert "Checkpoint from epoch **2**, selected by `val/accuracy`." in text


def test_report_per_class_rows(report_text):
    _, text = report_text
    assert "| class | support | accuracy | precision | F1 | predicted |" in text
    assert "| cat | 3 | 0.6667 | 0.6667 | 0.6667 | 3 |" in text
    assert "| fish | 0 | — | 0.0000 | 0.0000 | 2 |" in text  # absent, yet predicted twice


def test_report_data_section(report_text):
    _, text = report_text
    assert "| class | train | val | test |" in text
    assert "| cat | 10 | 3 | 3 |" in text
    assert "| **total** | **40** | **8** | **8** |" in text
    assert "### Skipped files (1)" in text
    assert "| `data/cat/broken.jpg` | cannot decode image |" in text
    assert "Data hash: `d4t4h45h`" in text


def test_report_embeds_every_plot_with_relative_links(report_text):
    run, text = report_text
    links = re.findall(r"!\[[^\]]*\]\((plots/[^)]+)\)", text)
    assert sorted(links) == sorted(f"plots/{n}" for n in STANDARD_CLASSIFICATION_PLOTS)
    assert all((run / link).is_file() for link in links)


def test_report_resources_and_provenance(report_text):
    _, text = report_text
    assert "| wall time | 1m 35s |" in text
    assert "| throughput | 412.5 images/s |" in text
    assert "| peak host memory (RSS) | 812 MB |" in text
    assert "| git_commit | `abc1234` |" in text
    assert "| true | predicted | count |" in text  # most confused pairs (val)


def test_report_skips_missing_optional_files(tmp_path):
    run = make_run(tmp_path / "sparse")
    for name in ("config.yaml", "data_summary.json", "provenance.json", "history.json"):
        (run / name).unlink()
    text = write_report(run).read_text()
    assert "Not in this run folder: config.yaml, history.json, data_summary.json, " \
           "provenance.json" in text
    assert "## Configuration" not in text and "## Data" not in text
    assert "## Plots" not in text and "## Provenance" not in text
    assert "| accuracy | 0.3750 | 0.8750 |" in text
    assert "| wall time | 1m 35s |" in text


def test_report_for_regression_run(tmp_path):
    run = tmp_path / "iqa"
    run.mkdir()
    metrics = {"best_epoch": 4, "monitor": "val/srcc",
               "val": {"scalars": {"loss": 0.12, "srcc": 0.91, "plcc": 0.9, "rmse": 0.4}}}
    (run / "metrics.json").write_text(json.dumps(metrics))
    text = write_report(run).read_text()
    assert "| srcc | 0.9100 |" in text
    assert "| rmse | 0.4000 |" in text
    assert "## Per-class results" not in text


def test_report_escapes_pipes_in_class_names(tmp_path):
    run = make_run(tmp_path / "pipes")
    summary = json.loads((run / "data_summary.json").read_text())
    summary["splits"]["train"]["per_class"] = {"a|b": 3}
    summary["class_names"] = ["a|b"]
    (run / "data_summary.json").write_text(json.dumps(summary))
    assert "| a\\|b | 3 |" in write_report(run).read_text()


def test_report_errors_name_the_problem(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        write_report(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="none of config.yaml, history.json, metrics.json"):
        write_report(tmp_path / "empty")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "metrics.json").write_text("{not json")
    with pytest.raises(UserError, match=r"broken/metrics.json: cannot parse"):
        write_report(broken)
    (broken / "metrics.json").write_text(json.dumps({"val": [1, 2]}))
    with pytest.raises(UserError, match="key 'val' must hold a 'scalars' mapping"):
        write_report(broken)


# --- comparison ----------------------------------------------------------------------


def test_comparison_of_two_runs(tmp_path):
    run_a = make_run(tmp_path / "run_a", lr=0.05)
    run_b = make_run(tmp_path / "run_b", lr=0.1, val_preds=TEST_PREDS)
    write_report(run_a)
    out = write_comparison([run_a, run_b], tmp_path / "cmp")
    text = out.read_text()
    assert out == tmp_path / "cmp" / "comparison.md"
    header = ("| run | model | data | optimizer | lr | batch | image size | augmentation | best epoch | "
              "val acc | test acc | top5 (val) | mpca (val) | F1 macro (val) | time |")
    assert header in text
    rows = [line for line in text.splitlines() if line.startswith(("| [run_a]", "| run_b"))]
    assert len(rows) == 2
    assert rows[0].startswith("| [run_a](../run_a/report.md) | resnet18 | pets | sgd | 0.05 | 32 | 64 "
                              "| yes | 2 | 0.3750 |")
    assert rows[1].startswith("| run_b | resnet18 | pets | sgd | 0.1 | 32 | 64 | yes | 2 | **0.8750** |")
    assert rows[1].endswith("| 1m 35s |")
    assert "| 0.3750 | **0.8750** |" in rows[0]  # tied test accuracy: both bold
    assert "![Validation curves](comparison_curves.png)" in text
    png = (tmp_path / "cmp" / "comparison_curves.png").read_bytes()
    assert png[:4] == b"\x89PNG" and len(png) > 2000


def test_comparison_names_the_data_of_each_run(tmp_path):
    runs = []
    for name, source in (("builtin", "fashion-mnist"), ("folder", "/data/new/images/"), ("csv", "lists/train.csv")):
        run = make_run(tmp_path / name)
        config = yaml.safe_load((run / "config.yaml").read_text())
        config["data"]["source"] = source
        (run / "config.yaml").write_text(yaml.safe_dump(config))
        runs.append(run)
    text = write_comparison(runs, tmp_path / "out").read_text()
    assert "| builtin | resnet18 | fashion-mnist |" in text
    assert "| folder | resnet18 | images |" in text and "| csv | resnet18 | train.csv |" in text


def test_comparison_disambiguates_same_folder_names(tmp_path):
    first = make_run(tmp_path / "sweep1" / "run")
    second = make_run(tmp_path / "sweep2" / "run")
    text = write_comparison([first, second], tmp_path / "out").read_text()
    assert "| sweep1/run |" in text and "| sweep2/run |" in text


def test_comparison_needs_runs(tmp_path):
    with pytest.raises(UserError, match="no run folders"):
        write_comparison([], tmp_path)


def test_comparison_adds_regression_columns(tmp_path):
    runs = []
    for name, rmse in (("small", 0.5), ("large", 0.3)):
        run = tmp_path / name
        run.mkdir()
        scalars = {"srcc": 0.8, "plcc": 0.82, "rmse": rmse}
        (run / "metrics.json").write_text(json.dumps({"best_epoch": 1, "monitor": "val/srcc",
                                                      "val": {"scalars": scalars}}))
        runs.append(run)
    text = write_comparison(runs, tmp_path / "out").read_text()
    assert "| SRCC (val) | PLCC (val) | RMSE (val) | time |" in text
    assert "| **0.3000** |" in text and "| 0.5000 |" in text  # lower RMSE is better
