"""`resnetlab completion bash|zsh` prints a script that knows every command and option."""

from __future__ import annotations

import argparse
import shutil
import subprocess

import pytest

from resnetlab.cli.main import build_parser, main


def _commands_and_options() -> tuple[set[str], set[str]]:
    commands, options = set(), set()
    parsers = [build_parser()]
    while parsers:
        parser = parsers.pop()
        for action in parser._actions:
            options.update(action.option_strings)
            if isinstance(action, argparse._SubParsersAction):
                commands.update(action.choices)
                parsers += action.choices.values()
    return commands, options


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_the_script_names_every_command_and_option(shell, capsys):
    assert main(["completion", shell]) == 0
    script = capsys.readouterr().out
    commands, options = _commands_and_options()
    assert {"train", "eval", "predict", "config", "search", "baseline", "hog-svm", "completion"} <= commands
    missing = {name for name in commands | options if name not in script}
    assert not missing


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_the_script_is_valid_shell(shell, tmp_path, capsys):
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed here")
    assert main(["completion", shell]) == 0
    script = tmp_path / "resnetlab.sh"
    script.write_text(capsys.readouterr().out)
    done = subprocess.run([shell, "-n", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_bash_completes_commands_and_a_commands_options(capsys, tmp_path):
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed here")
    assert main(["completion", "bash"]) == 0
    script = tmp_path / "resnetlab.bash"
    script.write_text(capsys.readouterr().out)

    def complete(line: str) -> set[str]:
        words = line.split(" ")
        probe = (f"source {script}; COMP_WORDS=({' '.join(repr(w) for w in words)}); "
                 f"COMP_CWORD={len(words) - 1}; COMP_LINE={line!r}; COMP_POINT={len(line)}; "
                 "_shtab_resnetlab; printf '%s\\n' \"${COMPREPLY[@]}\"")
        done = subprocess.run(["bash", "-c", probe], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return set(done.stdout.split())

    assert {"train", "eval", "completion"} <= complete("resnetlab ")
    assert complete("resnetlab eval --sp") == {"--split"}
    assert complete("resnetlab eval x --split t") == {"test", "train"}
