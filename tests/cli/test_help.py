"""The command line explains itself: fast --help, examples everywhere, accepted values, hints for flags."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import pytest
import torch

from resnetlab.cli.main import build_parser, main
from resnetlab.config import all_keys

# What `--help` must not load: each costs from a tenth of a second (numpy) to two seconds (torch).
HEAVY = ("torch", "numpy", "scipy", "sklearn", "matplotlib", "optuna", "skimage", "PIL", "tensorboard")


def command_paths(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every (sub-)command as the words that reach it: (), ("train",), ("baseline", "hog-svm"), ..."""
    paths = [path]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                paths += command_paths(child, (*path, name))
    return paths


def command_parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from command_parsers(child, (*path, name))


def test_help_of_every_command_loads_neither_torch_nor_numpy():
    paths = command_paths(build_parser())
    assert len(paths) >= 11  # the top level, eight commands, baseline hog-svm, completion
    child = f"""
import contextlib, io, json, sys
from resnetlab.cli.main import main
for path in {paths!r}:
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            main([*path, "--help"])
        except SystemExit as done:
            assert done.code == 0, (path, done.code)
print(json.dumps(sorted({{name.split(".")[0] for name in sys.modules}} & set({HEAVY!r}))))
"""
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, env=os.environ.copy(),
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == []


def test_every_command_has_a_description_and_examples_and_every_option_says_what_it_does():
    for path, parser in command_parsers(build_parser()):
        where = " ".join(("resnetlab", *path))
        assert parser.description and parser.description.strip(), f"{where}: no description"
        assert parser.epilog and "examples:\n  resnetlab" in parser.epilog, f"{where}: no examples"
        for action in parser._actions:
            assert action.help and action.help is not argparse.SUPPRESS, f"{where} {action.dest}: no help"


def test_examples_keep_their_lines_and_descriptions_wrap(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert "examples:\n  resnetlab train preset=quick\n  resnetlab train preset=quick train.epochs=3" in out
    assert max(map(len, out.splitlines())) < 100


def test_config_keys_show_the_accepted_values_beside_each_key(capsys):
    assert main(["config", "--keys"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert set(all_keys()) <= set(lines)
    assert lines["optim.name"].split()[:5] == ["optim.name", "sgd", "{sgd,", "adam,", "adamw}"]
    assert lines["optim.name"].endswith("optimizer")
    assert "int >= 1" in lines["train.epochs"] and "number in [0, 1]" in lines["model.drop_rate"]
    assert "{true, false}" in lines["train.tta"] and "int >= 1 | none" in lines["data.subset"]
    assert "{none, 1, 3}" in lines["data.channels"] and "[number, ...]" in lines["optim.betas"]


@pytest.mark.parametrize("argv, hint", [
    (["train", "--epochs", "1"], "did you mean train.epochs=1?"),
    (["train", "preset=quick", "--batch-size=64"], "did you mean train.batch_size=64?"),
    (["train", "--lr", "0.05"], "did you mean optim.lr=0.05?"),
    (["train", "--optim-lr", "0.05"], "did you mean optim.lr=0.05?"),
    (["config", "--train.epochs", "3"], "did you mean train.epochs=3?"),
    (["train", "--epoch", "2"], "did you mean train.epochs=2?"),
    (["train", "--tta"], "did you mean train.tta=true?"),
    (["study", "lr", "--seed", "4"], "did you mean train.seed=4?"),
    (["train", "--name", "a"], "did you mean model.name=a or optim.name=a or schedule.name=a or output.name=a?"),
    (["eval", "runs/r", "--image-size", "64"], "did you mean data.image_size=64?"),  # eval takes data.* only
])
def test_a_flag_for_a_setting_is_answered_with_its_config_key(argv, hint, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1
    assert f"unrecognized arguments: {next(a for a in argv if a.startswith('--'))}" in err
    assert hint in err and f"see resnetlab {argv[0]} --help" in err


@pytest.mark.parametrize("argv", [["train", "--nonsense", "3"], ["predict", "runs/r", "x.png", "--epochs", "3"]])
def test_no_hint_where_no_key_is_close_or_the_command_takes_no_settings(argv, capsys):
    with pytest.raises(SystemExit):
        main(argv)
    err = capsys.readouterr().err
    assert "unrecognized arguments: --" in err and "did you mean" not in err


def test_version_names_torch_the_device_and_the_precision(capsys):
    from resnetlab import __version__
    from resnetlab.training.device import resolve_device, resolve_precision

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    out = capsys.readouterr().out
    assert stop.value.code == 0
    device = resolve_device("auto")
    precision = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(resolve_precision("auto", device), "fp32")
    assert out.startswith(f"resnetlab {__version__}\n") and f"torch {torch.__version__}" in out
    assert f"device {device}" in out and f"precision {precision}" in out
