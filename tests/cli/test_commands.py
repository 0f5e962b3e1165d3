"""The commands as a user types them: train, eval, predict, summary, report, config."""

import csv
import json

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from resnetlab.cli.main import main


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    assert main(["train", "preset=test", "train.threads=1", f"output.dir={out}", "output.name=r", "train.epochs=2",
                 "data.subset=400", "output.plots=true", "output.tensorboard=true"]) == 0
    return out / "r"


def test_train_writes_the_report_plots_and_tensorboard(run_dir):
    for name in ("curves.png", "confusion_matrix.png", "confusion_matrix_normalized.png",
                 "per_class_accuracy.png", "per_class_top_bottom.png", "confused_pairs.png", "misclassified.png",
                 "gradcam.png"):
        assert (run_dir / "plots" / name).stat().st_size > 1000, name
    report = (run_dir / "report.md").read_text()
    assert "plots/confusion_matrix.png" in report and "mpca" in report.lower()
    assert "![Grad-CAM: where the model looked (confident right and wrong validation images)](plots/gradcam.png)" \
        in report
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))


def test_eval_recomputes_metrics_on_the_test_split(run_dir, capsys):
    assert main(["eval", str(run_dir), "--split", "test", "--tta"]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out
    saved = json.loads((run_dir / "eval-test" / "metrics.json").read_text())
    trained = json.loads((run_dir / "metrics.json").read_text())
    assert saved["split"] == "test" and saved["tta"] is True
    assert sum(map(sum, saved["confusion_matrix"])) == sum(map(sum, trained["test"]["confusion_matrix"]))
    assert 0.0 <= saved["scalars"]["feature_zero_share"] <= 1.0
    assert (run_dir / "eval-test" / "plots" / "confusion_matrix.png").is_file()
    assert f"report in {run_dir / 'eval-test'}" in out
    report = (run_dir / "eval-test" / "report.md").read_text()
    assert "| accuracy |" in report and "## Per-class results" in report and "| support |" in report
    assert "![Confusion matrix (counts)](plots/confusion_matrix.png)" in report and "(TTA)" in report


def _digit_folder(root, per_class=3):
    digits = load_digits()
    for label in range(10):
        (root / str(label)).mkdir(parents=True)
        for i in np.flatnonzero(digits.target == label)[:per_class]:
            Image.fromarray((digits.images[i] * 16).astype(np.uint8)).save(root / str(label) / f"{i}.png")
    return root


def test_eval_on_new_data_scores_all_of_it_into_its_own_folder(run_dir, tmp_path, capsys):
    new = _digit_folder(tmp_path / "new_digits")
    own = run_dir / "eval-val" / "metrics.json"
    before = own.read_text() if own.is_file() else None
    assert main(["eval", str(run_dir), f"data.source={new}"]) == 0
    saved = json.loads((run_dir / "eval-new_digits-all" / "metrics.json").read_text())
    assert saved["split"] == "all" and sum(map(sum, saved["confusion_matrix"])) == 30  # every image, not 10%
    assert (run_dir / "eval-new_digits-all" / "report.md").is_file()
    assert (own.read_text() if own.is_file() else None) == before  # the run's own evaluation is left alone
    assert main(["eval", str(run_dir), f"data.source={new}", "--split", "val"]) == 0
    assert json.loads((run_dir / "eval-new_digits-val" / "metrics.json").read_text())["split"] == "val"
    assert "30 images" in capsys.readouterr().out


@pytest.mark.parametrize("override", ["data.image_size=32", "data.channels=3"])
def test_eval_refuses_another_input_size_or_channels(run_dir, capsys, override):
    assert main(["eval", str(run_dir), override]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and override in err and "was trained on" in err
    assert ("8 px" if "image_size" in override else "1-channel") in err


def test_predict_notes_ids_that_repeat(run_dir, tmp_path, capsys):
    digits = load_digits()
    for folder, names in (("a", ("1", "2", "3")), ("b", ("1", "2"))):
        (tmp_path / "dup" / folder).mkdir(parents=True)
        for i, name in enumerate(names):
            Image.fromarray((digits.images[i] * 16).astype(np.uint8)).save(tmp_path / "dup" / folder / f"{name}.png")
    out = tmp_path / "pred.csv"
    assert main(["predict", str(run_dir), str(tmp_path / "dup"), "--out", str(out)]) == 0
    err = capsys.readouterr().err.strip()
    assert [r["id"] for r in csv.DictReader(out.open())] == ["1", "2", "3", "1", "2"]  # stems, as Kaggle wants
    assert err == (f"note: 2 ids repeat (ids are file names without extension, e.g. 1 from "
                   f"{tmp_path / 'dup' / 'a' / '1.png'} and {tmp_path / 'dup' / 'b' / '1.png'})")


def test_eval_without_tta_matches_the_training_metrics(run_dir):
    assert main(["eval", str(run_dir), "--split", "test", "--out", str(run_dir / "again")]) == 0
    again = json.loads((run_dir / "again" / "metrics.json").read_text())["scalars"]
    trained = json.loads((run_dir / "metrics.json").read_text())["test"]["scalars"]
    assert again["accuracy"] == pytest.approx(trained["accuracy"])
    assert 0.0 <= again["feature_zero_share"] <= 1.0


def test_predict_folder_with_a_corrupt_file(run_dir, tmp_path, capsys):
    digits = load_digits()
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(5):
        Image.fromarray((digits.images[i] * 16).astype(np.uint8)).save(folder / f"img{i}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    out = tmp_path / "pred.csv"
    assert main(["predict", str(run_dir), str(folder), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "broken.png" in err
    rows = list(csv.DictReader(out.open()))
    assert [r["id"] for r in rows] == [f"img{i}" for i in range(5)]
    assert list(rows[0])[:2] == ["id", "label"] and len(rows[0]) == 12
    probs = np.array([[float(v) for k, v in r.items() if k.startswith("prob_")] for r in rows])
    assert np.allclose(probs.sum(1), 1, atol=1e-4)
    assert [r["label"] for r in rows] == [str(int(p.argmax())) for p in probs]


def test_summary_resnet50_matches_torchvision(capsys):
    assert main(["summary", "resnet50"]) == 0
    out = capsys.readouterr().out
    assert "Total params: 25,557,032" in out and "MACs: 4.09 G" in out and "layer4" in out


def test_summary_widens_a_model_as_model_width_does(capsys):
    assert main(["summary", "resnet20", "--width", "2", "--image-size", "28", "--in-channels", "1",
                 "--num-classes", "10"]) == 0
    assert "Total params: 1,073,386" in capsys.readouterr().out  # WRN-20-2: four times ResNet-20's 0.27M, about


def test_report_compares_runs(run_dir, tmp_path, capsys):
    assert main(["report", str(run_dir), str(run_dir), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "comparison.md").is_file() and (tmp_path / "comparison_curves.png").is_file()


def test_config_prints_the_resolved_preset(capsys):
    assert main(["config", "preset=resnet50", "optim.lr=0.5"]) == 0
    out = capsys.readouterr().out
    assert "name: resnet50" in out and "lr: 0.5" in out


@pytest.mark.parametrize("error", [
    lambda: __import__("torch").OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore detail"),
    lambda: MemoryError("Unable to allocate 9.1 GiB for an array"),
])
def test_out_of_memory_outside_training_is_one_line_with_advice(monkeypatch, capsys, error):
    from resnetlab.cli import commands

    def evaluate(args):
        raise error()

    monkeypatch.setattr(commands, "evaluate", evaluate)
    assert main(["eval", "runs/anything"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("resnetlab eval: error: out of memory (") and "train.batch_size" in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_other_runtime_errors_keep_their_traceback(monkeypatch):
    from resnetlab.cli import commands

    def evaluate(args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(commands, "evaluate", evaluate)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["eval", "runs/anything"])


def test_abbreviated_options_are_refused_not_guessed(tmp_path, capsys):
    # --c would otherwise be taken as --cells-per-block, a different setting from --C.
    with pytest.raises(SystemExit) as stop:
        main(["baseline", "hog-svm", "data.source=digits", "data.image_size=16", "--c", "1", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "unrecognized arguments: --c 1" in err and not any(tmp_path.iterdir())


def test_eval_and_predict_compile_on_request(run_dir, tmp_path, monkeypatch):
    from resnetlab.evaluation import inference

    compiled = []
    monkeypatch.setattr(inference.torch, "compile", lambda module: compiled.append(module) or module)
    digits = load_digits()
    for i in range(3):
        Image.fromarray((digits.images[i] * 16).astype(np.uint8)).save(tmp_path / f"img{i}.png")
    plain, fast = tmp_path / "plain.csv", tmp_path / "fast.csv"
    assert main(["predict", str(run_dir), str(tmp_path / "img*.png"), "--out", str(plain)]) == 0
    assert compiled == []
    assert main(["predict", str(run_dir), str(tmp_path / "img*.png"), "--out", str(fast), "--compile"]) == 0
    assert len(compiled) == 1 and fast.read_text() == plain.read_text()
    assert main(["eval", str(run_dir), "--compile", "--out", str(tmp_path / "eval")]) == 0
    assert len(compiled) == 2


class Trained(Exception):
    """Raised by a stand-in for api.train: the command got as far as training, with this config."""


def stand_in_train(cfg):
    raise Trained(cfg)


def test_an_interrupted_train_prints_only_how_to_resume(monkeypatch, capsys, tmp_path):
    from resnetlab import api
    from resnetlab.training.signals import Interrupted

    def interrupted(cfg):
        stop = Interrupted("SIGINT", str(tmp_path / "last.pt"))
        stop.run_dir = tmp_path
        raise stop

    monkeypatch.setattr(api, "train", interrupted)
    assert main(["train", "preset=test"]) == 130
    # the loop has already logged "stopped by SIGINT ...; state saved to last.pt"
    assert capsys.readouterr().err.strip() == f"stopped by SIGINT; resume with: resnetlab train --resume {tmp_path}"


def test_a_bare_train_at_a_terminal_asks_for_a_preset(monkeypatch, capsys):
    from resnetlab import api
    from resnetlab.cli import commands

    monkeypatch.setattr(commands, "is_interactive", lambda: True)
    monkeypatch.setattr(api, "train", stand_in_train)
    answers = iter(["resnet19", "99", "debug"])
    monkeypatch.setattr("builtins.input", lambda prompt: next(answers))
    with pytest.raises(Trained) as reached:
        main(["train"])
    out = capsys.readouterr().out
    assert "quick" in out and "Seconds, not minutes" in out  # the list, with what each preset is for
    assert out.count("is not one of them") == 2
    cfg = reached.value.args[0]
    assert cfg.model.name == "resnet20" and cfg.train.epochs == 2  # the debug preset


def test_the_picker_takes_enter_a_number_or_stops_on_end_of_input():
    from resnetlab.cli.preset_picker import pick_preset
    from resnetlab.config import list_presets
    from resnetlab.errors import UserError

    quiet = lambda line: None
    assert pick_preset(ask=lambda prompt: "", say=quiet) == "quick"
    assert pick_preset(ask=lambda prompt: "1", say=quiet) == list_presets()[0]

    def end(prompt):
        raise EOFError

    with pytest.raises(UserError, match="no preset chosen"):
        pick_preset(ask=end, say=quiet)


def test_train_with_overrides_or_without_a_terminal_never_asks(monkeypatch):
    from resnetlab import api
    from resnetlab.cli import commands

    monkeypatch.setattr("builtins.input", lambda prompt: pytest.fail("asked"))
    monkeypatch.setattr(api, "train", stand_in_train)
    monkeypatch.setattr(commands, "is_interactive", lambda: False)
    with pytest.raises(Trained):
        main(["train"])
    monkeypatch.setattr(commands, "is_interactive", lambda: True)
    with pytest.raises(Trained):
        main(["train", "preset=test"])


def test_eval_of_broken_weights_is_one_line(run_dir, tmp_path, capsys):
    import torch

    from resnetlab.training.checkpoint import atomic_save, load_checkpoint

    checkpoint = load_checkpoint(run_dir / "best.pt")
    checkpoint["model"] = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
                           for k, v in checkpoint["model"].items()}
    atomic_save(checkpoint, tmp_path / "broken.pt")
    assert main(["eval", str(tmp_path / "broken.pt"), "--out", str(tmp_path / "eval")]) == 2
    err = capsys.readouterr().err.strip()
    assert "gives NaN or infinite outputs for" in err and "evaluate another checkpoint" in err
    assert len(err.splitlines()) == 1


def test_predict_with_broken_weights_writes_no_file(run_dir, tmp_path, capsys):
    import torch

    from resnetlab.training.checkpoint import atomic_save, load_checkpoint

    checkpoint = load_checkpoint(run_dir / "best.pt")
    checkpoint["model"] = {k: torch.full_like(v, float("inf")) if v.is_floating_point() else v
                           for k, v in checkpoint["model"].items()}
    atomic_save(checkpoint, tmp_path / "broken.pt")
    Image.fromarray((load_digits().images[0] * 16).astype(np.uint8)).save(tmp_path / "one.png")
    out = tmp_path / "pred.csv"
    assert main(["predict", str(tmp_path / "broken.pt"), str(tmp_path / "one.png"), "--out", str(out)]) == 2
    assert "gives NaN or infinite outputs for 1 of 1 images" in capsys.readouterr().err and not out.exists()


def test_eval_says_which_checkpoint_it_used_when_best_pt_is_missing(run_dir, tmp_path, capsys):
    import shutil

    run = tmp_path / "no_best"
    shutil.copytree(run_dir, run)
    (run / "best.pt").unlink()
    assert main(["eval", str(run)]) == 0
    assert f"checkpoint {run / 'last.pt'} (the run folder has no best.pt" in capsys.readouterr().out


def test_predict_lists_named_pipes_and_dangling_links_as_skipped(run_dir, tmp_path, capsys):
    import os

    digits = load_digits()
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(2):
        Image.fromarray((digits.images[i] * 16).astype(np.uint8)).save(folder / f"img{i}.png")
    os.mkfifo(folder / "pipe.png")  # opening it would block: it must be listed, never opened
    os.symlink(folder / "gone.png", folder / "dangling.png")
    assert main(["predict", str(run_dir), str(folder), "--out", str(tmp_path / "p.csv")]) == 0
    err = capsys.readouterr().err
    assert "skipped 2 unreadable files:" in err
    assert f"{folder / 'pipe.png'}: not a regular file: a named pipe (FIFO)" in err
    assert f"{folder / 'dangling.png'}: dangling symbolic link" in err


def test_eval_and_predict_write_beside_the_run_outputs_under_new_names(run_dir, tmp_path, capsys):
    before = {p: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray((load_digits().images[0] * 16).astype(np.uint8)).save(folder / "one.png")
    assert main(["predict", str(run_dir), str(folder), "--out", str(run_dir / "mine.csv")]) == 0
    assert main(["eval", str(run_dir), "--out", str(run_dir / "eval-mine")]) == 0
    assert (run_dir / "mine.csv").is_file() and (run_dir / "eval-mine" / "metrics.json").is_file()
    assert {p: p.read_bytes() for p in before} == before
    (run_dir / "mine.csv").unlink()
def test_best_pt_is_slim_and_serves_eval_predict_and_fine_tuning_while_last_pt_resumes(run_dir, tmp_path, capsys):
    import shutil

    import torch

    best = torch.load(run_dir / "best.pt", weights_only=True)
    last = torch.load(run_dir / "last.pt", weights_only=True)
    resume_state = {"optimizer", "scaler", "loader", "rng", "augment", "per_process", "monitor", "history"}
    assert not resume_state & set(best)
    assert {"model", "class_names", "mean", "std", "config", "task", "image_size", "channels"} <= set(best)
    assert best["metrics"]["epoch"] == best["epoch"] and "val/accuracy" in best["metrics"]
    assert resume_state - {"scaler"} <= set(last)
    assert (run_dir / "best.pt").stat().st_size < (run_dir / "last.pt").stat().st_size

    assert main(["eval", str(run_dir / "best.pt"), "--out", str(tmp_path / "eval")]) == 0
    Image.fromarray((load_digits().images[0] * 16).astype(np.uint8)).save(tmp_path / "one.png")
    assert main(["predict", str(run_dir / "best.pt"), str(tmp_path / "one.png"), "--out",
                 str(tmp_path / "pred.csv")]) == 0
    assert main(["train", "preset=test", f"output.dir={tmp_path}", "output.name=tuned", "train.epochs=1",
                 "data.subset=100", f"model.weights={run_dir / 'best.pt'}"]) == 0
    assert "loaded" in (tmp_path / "tuned" / "train.log").read_text()

    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    capsys.readouterr()
    assert main(["train", "--resume", str(copy), "train.epochs=3"]) == 0
    assert [row["epoch"] for row in json.loads((copy / "history.json").read_text())] == [1, 2, 3]
