"""Every bad input fails before training: exit code 2, one line naming it and what to do, no traceback.

Each case runs the real command line in-process. ``{T}`` is a folder of prepared bad files and
``{RUN}`` a finished tiny run. Training commands write into ``{T}/runs``, which must still be
empty afterwards: a rejected run leaves no half-made run folder behind.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import resnetlab.api.training as api
from resnetlab.cli.main import main
from resnetlab.config import load_config
from resnetlab.models import create_model

NO_GPU = not torch.cuda.is_available()


QUICK = ["preset=test", "data.cache=memory", "data.subset=32", "train.threads=1"]


def train(*extra: str) -> list[str]:
    return ["train", *QUICK, "output.dir={T}/runs", *extra]


@dataclass
class Case:
    id: str
    argv: list[str]
    expect: list[str]  # substrings of the message: the key, file or value, and the advice
    only_without_gpu: bool = False


CASES = [
    # ---------------------------------------------------------------- config keys and values
    Case("unknown-key-suggests", ["config", "optim.lrr=0.1"], ["'optim.lrr'", "did you mean 'optim.lr'"]),
    Case("unknown-section-suggests", ["config", "optm.lr=0.1"], ["'optm'", "did you mean 'optim'"]),
    Case("override-without-equals", ["config", "optim.lr"], ["'optim.lr'", "key=value"]),
    Case("int-gets-text", ["config", "train.epochs=ten"], ["'train.epochs'", "whole number", "'ten'"]),
    Case("int-gets-fraction", ["config", "train.batch_size=1.5"], ["'train.batch_size'", "whole number", "1.5"]),
    Case("bool-gets-word", ["config", "train.compile=maybe"], ["'train.compile'", "true or false", "'maybe'"]),
    Case("float-is-nan", ["config", "optim.lr=nan"], ["'optim.lr'", "NaN", "give a number"]),
    Case("below-minimum", ["config", "train.epochs=0"], ["'train.epochs'", ">= 1", "got 0"]),
    Case("above-maximum", ["config", "data.val_ratio=0.95"], ["'data.val_ratio'", "<= 0.9", "0.95"]),
    Case("choice-suggests", ["config", "optim.name=adamm"], ["'optim.name'", "did you mean 'adam'",
                                                             "sgd, adam, adamw"]),
    Case("choice-of-numbers", ["config", "data.channels=2"], ["'data.channels'", "accepted: none, 1, 3"]),
    Case("list-item-not-number", ["config", "data.mean=[a,b,c]"], ["'data.mean[0]'", "takes a number", "'a'"]),
    Case("section-given-a-value", ["config", "model=resnet18"], ["'model'", "is a section", "model.name="]),
    Case("list-wrong-length", train("augment.scale=[1,2,3]"), ["augment.scale", "[low, high]"]),
    Case("betas-one-number", train("optim.betas=[0.9]"), ["optim.betas", "two numbers"]),
    Case("betas-out-of-range", train("optim.name=adam", "optim.betas=[0.9,1.5]"), ["optim.betas", "[0, 1)", "1.5"]),
    Case("unknown-preset-suggests", ["config", "preset=quik"], ["'quik'", "did you mean 'quick'", "presets:"]),
    Case("config-file-missing", ["config", "config={T}/nope.yaml"], ["{T}/nope.yaml", "not found", "YAML file"]),
    Case("config-file-bad-yaml", ["config", "config={T}/bad.yaml"], ["{T}/bad.yaml", "not valid YAML at line 2",
                                                                     "fix the syntax"]),
    Case("config-file-not-mapping", ["config", "config={T}/list.yaml"], ["{T}/list.yaml", "mapping of sections"]),
    Case("config-file-unknown-key", ["config", "config={T}/typo.yaml"], ["'model.nmae' in {T}/typo.yaml",
                                                                         "did you mean 'model.name'"]),
    Case("stages-not-a-list", ["config", "train.stages=head"], ["'train.stages'", "list of mappings", "'head'"]),
    Case("stage-key-without-space", ["config", "train.stages=[{epochs:2}]"], ["'train.stages[0].epochs:2'",
                                                                              "space after ':'", "{epochs: 2}"]),
    Case("stage-unknown-key", ["config", "train.stages=[{epochz: 2}]"], ["'train.stages[0].epochz'",
                                                                         "did you mean 'train.stages[0].epochs'"]),
    Case("stage-zero-epochs", ["config", "train.stages=[{epochs: 0}]"], ["'train.stages[0].epochs'", ">= 1"]),
    Case("freeze-spec-unknown", train("model.freeze=layers"), ["model.freeze=layers", "none, backbone or stages:N"]),
    Case("freeze-spec-not-a-number", train("model.freeze=stages:x"), ["stages:x", "stages:N"]),
    Case("freeze-more-stages-than-model", train("model.freeze=stages:9"), ["model.freeze=stages:9",
                                                                            "resnet20 has 3 stages", "stages:3"]),
    Case("stage-freeze-more-stages", train("train.stages=[{epochs: 1, freeze: 'stages:5'}]"),
         ["train.stages[0].freeze=stages:5", "stages:3"]),
    Case("stage-freeze-spec-unknown", train("train.stages=[{epochs: 1, freeze: backbon}]"),
         ["train.stages[0].freeze=backbon", "none, backbone or stages:N"]),
    Case("freeze-ignored-by-stages", train("model.freeze=backbone", "train.stages=[{epochs: 1}]"),
         ["model.freeze=backbone", "train.stages", "freeze: backbone"]),
    Case("mse-for-classification", train("train.loss=mse"), ["train.loss=mse", "data.task=regression"]),
    Case("cross-entropy-for-regression", train("train.loss=cross_entropy", "data.task=regression"),
         ["train.loss=cross_entropy", "mse"]),
    Case("monitor-not-a-metric", train("train.monitor=val/acc"), ["train.monitor=val/acc",
                                                                  "did you mean 'val/accuracy'", "val/loss"]),
    # ---------------------------------------------------------------- data sources
    Case("source-missing-folder", train("data.source={T}/nope"), ["{T}/nope not found", "image folder"]),
    Case("builtin-suggests", train("data.source=cifar-10"), ["cifar-10", "did you mean 'cifar10'"]),
    Case("builtin-missing-offline", train("data.source=cifar10", "data.dir={T}/nodata", "data.download=false"),
         ["cifar10 not found", "{T}/nodata", "data.download=true"]),
    Case("source-not-csv", train("data.source={T}/notes.txt"), ["{T}/notes.txt", "not a .csv manifest"]),
    Case("folder-empty", train("data.source={T}/empty"), ["{T}/empty has no class sub-folders", "own sub-folder"]),
    Case("folder-loose-images", train("data.source={T}/loose"), ["{T}/loose holds images but no class sub-folders"]),
    Case("folder-one-class", train("data.source={T}/one"), ["data.source={T}/one has 1 class (cat)",
                                                            "add another class"]),
    Case("folder-empty-class", train("data.source={T}/emptyclass"), ["{T}/emptyclass/b holds no images",
                                                                     "remove the folder"]),
    Case("folder-val-without-train", train("data.source={T}/valonly"), ["{T}/valonly has val/ but no train/",
                                                                        "{T}/valonly/train"]),
    Case("corrupt-image-on-bad-file-error", train("data.source={T}/corrupt", "data.on_bad_file=error"),
         ["{T}/corrupt/a/broken.png", "data.on_bad_file=skip"]),
    Case("val-split-empty", train("data.val_ratio=0"), ["validation split is empty", "data.val_ratio"]),
    Case("mean-length-mismatch", train("data.mean=[0.5,0.5,0.5]"), ["data.mean has 3 value(s)", "1 channel(s)"]),
    Case("std-zero", train("data.std=[0]"), ["data.std value 0", "(0, 1]"]),
    Case("manifest-only-key-on-builtin", train("data.split_column=split"), ["data.split_column",
                                                                            "remove data.split_column"]),
    Case("regression-on-builtin", train("data.task=regression"), ["data.task=regression", "CSV manifest"]),
    Case("csv-missing-column-lists-columns", train("data.source={T}/columns.csv"),
         ["{T}/columns.csv", "column 'image' (data.image_column) not found", "columns: path, lab"]),
    Case("csv-semicolons", train("data.source={T}/semicolon.csv"), ["{T}/semicolon.csv", "comma-separated"]),
    Case("csv-empty", train("data.source={T}/empty.csv"), ["{T}/empty.csv is empty", "header row"]),
    Case("csv-header-only", train("data.source={T}/header.csv"), ["{T}/header.csv", "one row per image"]),
    Case("csv-not-utf8", train("data.source={T}/latin1.csv"), ["{T}/latin1.csv is not UTF-8", "UTF-8 CSV"]),
    Case("csv-bad-split-value", train("data.source={T}/split.csv", "data.split_column=split"),
         ["{T}/split.csv line 2", "'holdout'", "use train"]),
    Case("csv-regression-target-not-number", train("data.source={T}/scores.csv", "data.task=regression"),
         ["{T}/scores.csv line 2", "'high' is not a number", "numeric targets"]),
    Case("csv-no-listed-image-exists", train("data.source={T}/missing.csv"),
         ["{T}/missing.csv", "none of the 2 listed images exist", "relative to {T}"]),
    Case("csv-order-without-group", train("data.source={T}/columns.csv", "data.order_column=lab"),
         ["data.order_column=lab", "data.group_column"]),
    # ---------------------------------------------------------------- models and weights
    Case("model-unknown-suggests", train("model.name=resnet19"), ["'resnet19'", "did you mean 'resnet18'",
                                                                  "summary --list"]),
    Case("pretrained-unknown-arch", train("model.pretrained=imagenet"), ["'resnet20'", "available: resnet101"]),
    Case("weights-file-missing", train("model.weights={T}/nope.pt"), ["model.weights", "{T}/nope.pt not found"]),
    Case("weights-file-not-pytorch", train("model.weights={T}/notes.txt"), ["{T}/notes.txt", "not a PyTorch file",
                                                                           "torch.save"]),
    Case("weights-do-not-fit", train("model.weights={T}/state_dict.pt"), ["{T}/state_dict.pt", "do not fit",
                                                                          "build the model"]),
    Case("weights-other-stem-and-channels", train("model.name=resnet18", "model.weights={T}/gray_cifar.pt",
                                                  "data.channels=3"),
         ["model.weights={T}/gray_cifar.pt does not fit", "conv1 is 3x3 with 1 input channel, the model's 7x7 with 3",
          "use model.stem=cifar and data.channels=1"]),
    Case("pretrained-on-cifar-stem", train("model.name=resnet18", "model.pretrained=imagenet", "model.stem=cifar"),
         ["model.pretrained=imagenet does not fit", "conv1 is 7x7 with 3 input channels, the model's 3x3 with 1",
          "use model.stem=imagenet"]),
    # ---------------------------------------------------------------- checkpoints and run folders
    Case("checkpoint-corrupt", ["eval", "{T}/junk.pt"], ["{T}/junk.pt is corrupt", "another checkpoint"]),
    Case("checkpoint-truncated", ["eval", "{T}/truncated.pt"], ["{T}/truncated.pt is corrupt", "another checkpoint"]),
    Case("checkpoint-text-file", ["eval", "{T}/notes.txt"], ["{T}/notes.txt is corrupt or not a PyTorch file"]),
    Case("checkpoint-crafted-pickle-refused", ["eval", "{T}/crafted.pt"], ["{T}/crafted.pt was refused",
                                                                           "(print)", "you trust"]),
    Case("checkpoint-plain-state-dict", ["eval", "{T}/state_dict.pt"], [("{T}/state_dict.pt is not a resnetlab "
                                                                        "checkpoint"), "model.weights=PATH"]),
    Case("checkpoint-weights-do-not-fit-its-config", ["eval", "{T}/tampered.pt"],
         ["{T}/tampered.pt: its weights do not fit", "model.name=resnet32"]),
    Case("folder-without-checkpoints", ["eval", "{T}/empty"], ["{T}/empty is not a run folder",
                                                               "no best.pt or last.pt"]),
    Case("checkpoint-missing", ["eval", "{T}/nope.pt"], ["{T}/nope.pt not found", "run folder or a .pt file"]),
    Case("resume-folder-without-last", ["train", "--resume", "{T}/unfinished"], ["{T}/unfinished holds no last.pt",
                                                                                 "new output.name"]),
    Case("resume-not-a-run", ["train", "--resume", "{T}/nope"], ["--resume {T}/nope", "folder of a run"]),
    Case("resume-changed-model", ["train", "--resume", "{RUN}", "model.name=resnet32"],
         ["{RUN}/last.pt does not fit", "model.name was resnet20, now resnet32", "settings the run started with"]),
    Case("resume-corrupt-checkpoint", train("train.resume={T}/junk.pt"), ["{T}/junk.pt is corrupt"]),
    Case("resume-auto-without-name", train("train.resume=auto"), ["train.resume=auto needs output.name",
                                                                  "--resume RUN_DIR"]),
    Case("train-into-existing-run", ["train", *QUICK, "output.dir={T}", "output.name=run"],
         ["run folder {RUN} already holds a run", "train.resume=auto", "another output.name"]),
    Case("output-dir-under-a-file", train("output.dir={T}/notes.txt/runs"), ["{T}/notes.txt/runs",
                                                                             "writable folder"]),
    # ---------------------------------------------------------------- command arguments
    Case("unknown-command", ["trian"], ["invalid choice: 'trian'", "resnetlab --help"]),
    Case("unknown-option", ["train", "--epochs", "3"], ["unrecognized arguments: --epochs", "--help"]),
    Case("eval-bad-split-choice", ["eval", "{RUN}", "--split", "testing"], ["--split", "'testing'", "'test'"]),
    Case("eval-non-data-override", ["eval", "{RUN}", "train.epochs=3"], ["train.epochs=3", "data.* overrides only"]),
    Case("eval-unknown-data-key", ["eval", "{RUN}", "data.sorce={T}/two"], ["'data.sorce'",
                                                                           "did you mean 'data.source'"]),
    Case("eval-other-classes", ["eval", "{RUN}", "data.source={T}/two"], ["[a, b] (2)",
                                                                          "data with the same classes"]),
    Case("eval-split-test-missing", ["eval", "{RUN}", "--split", "test", "data.test_ratio=0"],
         ["--split test", "no test split", "--split val"]),
    Case("eval-out-is-a-file", ["eval", "{RUN}", "--out", "{T}/notes.txt"], ["--out {T}/notes.txt is a file"]),
    Case("predict-glob-matches-nothing", ["predict", "{RUN}", "{T}/nothing*.png"], ["no files match {T}/nothing*.png",
                                                                                   "quote it"]),
    Case("predict-missing-path", ["predict", "{RUN}", "{T}/nope.png"], ["{T}/nope.png not found", "a folder"]),
    Case("predict-empty-folder", ["predict", "{RUN}", "{T}/empty"], ["no images in {T}/empty", "image files"]),
    Case("predict-empty-csv", ["predict", "{RUN}", "{T}/empty.csv"], ["{T}/empty.csv is empty", "image-path column"]),
    Case("predict-nothing-readable", ["predict", "{RUN}", "{T}/notes.txt"], ["none of the 1 input file(s)",
                                                                             "{T}/notes.txt: not an image"]),
    Case("predict-batch-size-zero", ["predict", "{RUN}", "{T}/two", "--batch-size", "0"],
         ["--batch-size", ">= 1, got 0"]),
    Case("predict-out-is-a-folder", ["predict", "{RUN}", "{T}/two", "--out", "{T}/empty"],
         ["--out {T}/empty is a folder", "predictions.csv"]),
    Case("report-not-a-run", ["report", "{T}/empty"], ["{T}/empty is not a finished run folder", "metrics.json"]),
    Case("report-missing-folder", ["report", "{T}/nope"], ["run folder {T}/nope not found"]),
    Case("summary-unknown-model", ["summary", "resnet-18"], ["'resnet-18'", "did you mean 'resnet18'", "--list"]),
    Case("summary-folder-not-a-run", ["summary", "{T}/empty"], ["{T}/empty is not a run folder"]),
    Case("summary-image-size-zero", ["summary", "resnet18", "--image-size", "0"], ["--image-size", ">= 1"]),
    # ---------------------------------------------------------------- studies and searches
    Case("study-file-missing", ["study", "{T}/nope.yaml"], ["{T}/nope.yaml not found", "give a YAML file"]),
    Case("study-builtin-suggests", ["study", "lrr"], ["'lrr'", "did you mean 'lr'"]),
    Case("study-bad-yaml", ["study", "{T}/bad.yaml"], ["{T}/bad.yaml is not valid YAML", "fix the syntax"]),
    Case("study-unknown-config-key", ["study", "{T}/study_typo.yaml"], ["{T}/study_typo.yaml", "'optim.lrr'",
                                                                        "did you mean 'optim.lr'"]),
    Case("study-jobs-zero", ["study", "lr", "--jobs", "0"], ["--jobs", ">= 1, got 0"]),
    Case("search-trials-zero", ["search", "hparams", "--trials", "0"], ["--trials", ">= 1, got 0"]),
    # ---------------------------------------------------------------- hostile and careless inputs
    Case("config-file-not-utf8", ["config", "config={T}/latin1.yaml"], ["{T}/latin1.yaml is not UTF-8",
                                                                       "byte 0xe9", "save it as UTF-8"]),
    Case("config-file-yaml-alias-bomb", ["config", "config={T}/bomb.yaml"], ["{T}/bomb.yaml uses a YAML alias",
                                                                           "line 2", "write the value out"]),
    Case("huge-value-quoted-short", ["config", "model.name=" + "x" * 5000], ["model.name", "xxx..."]),
    Case("huge-list-quoted-short", ["config", "train.epochs=[" + "1," * 3000 + "1]"], ["'train.epochs'", "..."]),
    Case("empty-path-setting", train("data.source="), ["'data.source' is empty", "give a path"]),
    Case("empty-output-dir", train("output.dir="), ["'output.dir' is empty"]),
    Case("epochs-absurd", ["config", "train.epochs=1e23"], ["'train.epochs'", "<= 100000"]),
    Case("data-file-symlink-loop", train("data.source={T}/looped", "data.on_bad_file=error"),
         ["{T}/looped/a/self.png", "symbolic link loop"]),
    Case("data-file-named-pipe", train("data.source={T}/piped", "data.on_bad_file=error"),
         ["{T}/piped/a/pipe.png", "named pipe"]),
    Case("data-file-device", train("data.source={T}/device", "data.on_bad_file=error"),
         ["{T}/device/a/null.png", "a device"]),
    Case("csv-path-twice-other-label", train("data.source={T}/twice.csv"),
         ["{T}/twice.csv lines 2 and 4", "two/a/0.png", "different labels ('a' and 'b')"]),
    Case("val-class-not-in-train", train("data.source={T}/unseen"),
         ["val split have no training image (c)", "data.allow_unseen_classes=true"]),
    Case("predict-out-over-checkpoint", ["predict", "{RUN}", "{T}/two", "--out", "{RUN}/best.pt"],
         ["--out {RUN}/best.pt would write over", "run's own training outputs"]),
    Case("predict-out-over-metrics", ["predict", "{RUN}", "{T}/two", "--out", "{RUN}/metrics.json"],
         ["--out {RUN}/metrics.json would write over"]),
    Case("eval-out-is-the-run", ["eval", "{RUN}", "--out", "{RUN}"], ["--out {RUN} is the run folder",
                                                                    "eval-mine"]),
    Case("eval-out-inside-run-outputs", ["eval", "{RUN}", "--out", "{RUN}/plots"], [("--out {RUN}/plots would "
                                                                                  "write over")]),
    Case("eval-out-is-another-run", ["eval", "{T}/blocked", "--out", "{RUN}"], ["--out {RUN} is the run folder"]),
    Case("resume-finished-run", ["train", "--resume", "{RUN}"], ["{RUN} is finished", ("nothing to do, nothing "
                                                                 "changed"), "raise train.epochs"]),
    Case("resume-auto-finished-run", ["train", *QUICK, "output.dir={T}", "output.name=run", "train.resume=auto"],
         ["{RUN} is finished"]),
    Case("eval-folder-unwritable", ["eval", "{T}/blocked"], ["{T}/blocked/eval-val", "cannot create the folder", "is a file"]),
    Case("predict-out-unwritable", ["predict", "{RUN}", "{T}/two", "--out", "{T}/notes.txt/p.csv"],
         ["{T}/notes.txt", "cannot create the folder"]),
    Case("study-out-unwritable", ["study", "lr", "--out", "{T}/notes.txt/study", *QUICK], ["{T}/notes.txt"]),
    Case("search-out-unwritable", ["search", "hparams", "--trials", "1", "--out", "{T}/notes.txt/search", *QUICK],
         ["{T}/notes.txt"]),
    Case("baseline-out-unwritable", ["baseline", "hog-svm", "--out", "{T}/notes.txt/runs", "data.subset=32"],
         ["{T}/notes.txt"]),
    # ---------------------------------------------------------------- devices
    Case("device-cuda-without-gpu", train("train.device=cuda"), ["train.device=cuda", "no CUDA GPU", "cpu"],
         only_without_gpu=True),
    Case("device-unknown", train("train.device=gpu"), ["'gpu'", "auto, cpu, cuda, cuda:N or mps"]),
    Case("fp16-on-cpu", train("train.device=cpu", "train.precision=fp16"), ["train.precision=fp16", "bf16 or fp32"]),
]


class Crafted:
    """Pickles as a call to print: a checkpoint must refuse it rather than run it."""

    def __reduce__(self):
        return print, ("this must never run",)


def _image(path, colour=(200, 30, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((10, 10, 3), colour, np.uint8)).save(path)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """The bad files, and a finished tiny run at {T}/run."""
    t = tmp_path_factory.mktemp("bad")
    assert main(["train", *QUICK, f"output.dir={t}", "output.name=run"]) == 0
    run = t / "run"
    (t / "bad.yaml").write_text("model: {name: [\n")
    (t / "list.yaml").write_text("- model\n- data\n")
    (t / "typo.yaml").write_text("model:\n  nmae: resnet18\n")
    (t / "study_typo.yaml").write_text("vary:\n  optim.lrr: [0.1, 0.2]\n")
    (t / "notes.txt").write_text("not an image, not a checkpoint\n")
    (t / "empty").mkdir()
    (t / "nodata").mkdir()
    _image(t / "one" / "cat" / "a.png")
    _image(t / "loose" / "a.png")
    _image(t / "emptyclass" / "a" / "0.png")
    (t / "emptyclass" / "b").mkdir()
    _image(t / "valonly" / "val" / "a" / "0.png")
    for name, colour in (("a", (200, 30, 30)), ("b", (30, 200, 30))):
        for i in range(4):
            _image(t / "two" / name / f"{i}.png", colour)
    shutil.copytree(t / "two", t / "corrupt")
    (t / "corrupt" / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    rows = "".join(f"two/a/{i}.png,a\n" for i in range(4))
    (t / "columns.csv").write_text("path,lab\n" + rows)
    (t / "semicolon.csv").write_text("image;label\ntwo/a/0.png;a\n")
    (t / "empty.csv").write_text("")
    (t / "header.csv").write_text("image,label\n")
    (t / "latin1.csv").write_bytes("image,label\ncaf\xe9.png,a\n".encode("latin-1"))
    (t / "split.csv").write_text("image,label,split\n" + "".join(f"two/a/{i}.png,a,holdout\n" for i in range(4)))
    (t / "scores.csv").write_text("image,label\n" + "".join(f"two/a/{i}.png,high\n" for i in range(4)))
    (t / "missing.csv").write_text("image,label\nnope1.png,a\nnope2.png,b\n")
    (t / "junk.pt").write_bytes(np.random.default_rng(0).integers(0, 256, 512, dtype=np.uint8).tobytes())
    best = (run / "best.pt").read_bytes()
    (t / "truncated.pt").write_bytes(best[: len(best) // 2])
    torch.save({"model": Crafted()}, t / "crafted.pt")
    tampered = torch.load(run / "best.pt", weights_only=True)
    tampered["config"]["model"]["name"] = "resnet32"
    torch.save(tampered, t / "tampered.pt")
    torch.save({"conv1.weight": torch.zeros(8, 3, 7, 7)}, t / "state_dict.pt")
    gray_cifar = create_model("resnet18", stem="cifar", in_channels=1, num_classes=10)  # a grayscale 32px run
    torch.save({"model": gray_cifar.state_dict()}, t / "gray_cifar.pt")
    (t / "unfinished").mkdir()
    shutil.copy(run / "config.yaml", t / "unfinished" / "config.yaml")
    (t / "latin1.yaml").write_bytes("optim:\n  name: caf\xe9\n".encode("latin-1"))
    nested = "[lol, lol, lol, lol, lol, lol, lol, lol, lol]"
    anchors = [f"&a{i} {nested}" if i == 0 else f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(9)]
    (t / "bomb.yaml").write_text("model:\n  name: [" + ", ".join(anchors) + "]\n")  # 9**9 items if expanded
    for name, make in (("looped", lambda p: os.symlink(p.name, p)), ("piped", os.mkfifo),
                       ("device", lambda p: os.symlink("/dev/null", p))):
        shutil.copytree(t / "two", t / name)
        make(t / name / "a" / {"looped": "self.png", "piped": "pipe.png", "device": "null.png"}[name])
    (t / "twice.csv").write_text("image,label\ntwo/a/0.png,a\ntwo/a/1.png,a\ntwo/a/0.png,b\ntwo/b/0.png,b\n")
    for split, name in (("train", "a"), ("train", "b"), ("val", "a"), ("val", "c")):
        for i in range(3):
            _image(t / "unseen" / split / name / f"{i}.png")
    shutil.copytree(run, t / "blocked")
    (t / "blocked" / "eval-val").write_text("a file where eval's folder would go\n")
    return {"{T}": str(t), "{RUN}": str(run)}


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # studies write under ./runs
    monkeypatch.delenv("RESNETLAB_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def _files(folder: str) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes (folders too, as None)."""
    root = Path(folder)
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else None for p in sorted(root.rglob("*"))}


def _fill(text: str, inputs: dict[str, str]) -> str:
    for key, value in inputs.items():
        text = text.replace(key, value)
    return text


def _run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exit_:  # argparse exits for malformed arguments
        return exit_.code


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_clear_line(case, inputs, capsys):
    if case.only_without_gpu and not NO_GPU:
        pytest.skip("this machine has a GPU")
    before = _files(inputs["{RUN}"])
    code = _run([_fill(a, inputs) for a in case.argv])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert len(err) < 1000, err  # user values are quoted short, whatever their size
    assert _files(inputs["{RUN}"]) == before  # the finished run is byte-identical: nothing wrote into it
    for part in case.expect:
        assert _fill(part, inputs) in err, err
    runs = os.path.join(inputs["{T}"], "runs")
    assert not os.path.isdir(runs) or not os.listdir(runs), f"left behind: {os.listdir(runs)}"


def test_debug_shows_the_traceback(inputs, capsys):
    assert main(["config", "--debug", "optim.lrr=0.1"]) == 2
    assert "Traceback" in capsys.readouterr().err


# ---------------------------------------------------------------- what a transfer-learning run says it did


def test_weights_file_is_named_in_the_banner_and_its_loading_logged(inputs, capsys):
    out = os.path.join(inputs["{T}"], "transfer")
    weights = os.path.join(inputs["{RUN}"], "best.pt")  # resnet20 on grayscale digits, 10 classes
    assert main(["train", *QUICK, f"output.dir={out}", "output.name=r", f"model.weights={weights}",
                 "data.source={T}/two".replace("{T}", inputs["{T}"]), "data.channels=1"]) == 0, capsys.readouterr().err
    log = open(os.path.join(out, "r", "train.log")).read()
    assert "pretrained none" not in log and f"weights {weights}" in log
    assert f"from {weights}; classifier re-made for 2 classes" in log
    assert "with random weights" not in log


@pytest.mark.parametrize(("extra", "says"), [
    (["model.freeze=backbone"], "model.freeze=backbone with random weights: only the head trains"),
    (["train.stages=[{epochs: 1, freeze: 'stages:2'}]"],
     "train.stages[0].freeze=stages:2 with random weights: the stem and the first 2 stage(s) stay random"),
])
def test_freezing_random_weights_is_a_warning_in_the_log(inputs, extra, says, capsys):
    out = os.path.join(inputs["{T}"], "random-freeze")
    assert main(["train", *QUICK, f"output.dir={out}", "output.name=r", *extra]) == 0
    log = open(os.path.join(out, "r", "train.log")).read()
    assert says in log and "set model.pretrained=imagenet or model.weights=PATH" in log
    shutil.rmtree(out)


# ---------------------------------------------------------------- device out of memory


def _loss_that_runs_out_of_memory(monkeypatch, times: int) -> list[int]:
    """Make the first ``times`` training steps raise the device's out-of-memory error."""
    real = api.classification_loss
    batches: list[int] = []

    def build(**kwargs):
        loss = real(**kwargs)

        def step(outputs, targets):
            batches.append(len(targets))
            if len(batches) <= times:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return loss(outputs, targets)

        return step

    monkeypatch.setattr(api, "classification_loss", build)
    return batches


def test_out_of_memory_names_the_batch_size_and_the_way_out(inputs, monkeypatch, capsys):
    _loss_that_runs_out_of_memory(monkeypatch, times=1)
    out = os.path.join(inputs["{T}"], "oom")
    assert main(["train", *QUICK, f"output.dir={out}", "output.name=r", "train.batch_size=32"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "out of memory" in err and "train.batch_size=32" in err
    assert "train.batch_size=16 train.accumulate=2" in err and "train.auto_batch=true" in err


def test_auto_batch_halves_the_batch_and_restarts_the_run(inputs, monkeypatch, capsys):
    batches = _loss_that_runs_out_of_memory(monkeypatch, times=2)
    out = os.path.join(inputs["{T}"], "auto")
    assert main(["train", *QUICK, f"output.dir={out}", "output.name=r", "train.batch_size=32",
                 "train.auto_batch=true"]) == 0
    assert batches[:3] == [32, 16, 8]  # each failure restarts from the first batch, with half the images
    saved = load_config(os.path.join(out, "r", "config.yaml")).train
    assert (saved.batch_size, saved.accumulate) == (8, 4)  # the effective batch stays 32
    log = open(os.path.join(out, "r", "train.log")).read()
    assert "restarting the run with train.batch_size=16 train.accumulate=2" in log
    assert "restarting the run with train.batch_size=8 train.accumulate=4" in log


def test_auto_batch_gives_up_at_one_image(inputs, monkeypatch, capsys):
    _loss_that_runs_out_of_memory(monkeypatch, times=10**9)
    out = os.path.join(inputs["{T}"], "never")
    code = main(["train", *QUICK, f"output.dir={out}", "output.name=r", "train.batch_size=4",
                 "train.auto_batch=true"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "train.batch_size=1;" in err and "smaller model" in err


@pytest.mark.skipif(not NO_GPU, reason="checks a GPU-trained run on a machine without one")
def test_a_run_trained_on_a_gpu_evaluates_here(inputs, tmp_path, capsys):
    ckpt = torch.load(os.path.join(inputs["{RUN}"], "best.pt"), weights_only=True)
    ckpt["config"]["train"].update(device="cuda", precision="fp16")
    (tmp_path / "gpu").mkdir()
    torch.save(ckpt, tmp_path / "gpu" / "best.pt")
    assert main(["eval", str(tmp_path / "gpu")]) == 0, capsys.readouterr().err


def test_an_exploding_loss_stops_the_run_with_one_line(inputs, capsys):
    """Adam at lr 1e6 takes the loss from 2.3 to 4e19 without a NaN: the run must not end in "done"."""
    out = os.path.join(inputs["{T}"], "exploding")
    code = main(["train", *QUICK, f"output.dir={out}", "output.name=r", "data.subset=128", "train.batch_size=16", "optim.name=adam", "optim.lr=1e6",
                 "train.epochs=3"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "loss exploded to" in err and "the run diverged; lower optim.lr" in err
    assert not os.path.exists(os.path.join(out, "r", "metrics.json"))
