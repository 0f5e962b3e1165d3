"""``resnetlab completion bash|zsh``: a shell completion script, written by shtab from the parser itself.

Sub-commands, options and their choices come from the same argparse tree as ``--help``, so the
script cannot fall behind the command line; run folders, checkpoints and images complete as paths.
"""

from __future__ import annotations

import argparse

SHELLS = ("bash", "zsh")
# Positionals and options whose values are paths (by metavar): shtab then completes files there.
_PATH_METAVARS = ("RUN_OR_CHECKPOINT", "IMAGES_OR_FOLDER", "IMAGES", "RUN", "RUN_DIR", "DIR", "PATH", "FILE.csv",
                  "STUDY.yaml|NAME", "SEARCH.yaml|NAME")


def register(subparsers: argparse._SubParsersAction, root: argparse.ArgumentParser) -> None:
    """Add ``completion``; ``root`` is the whole command line the script completes (handed in, so this
    module does not import the one that imports it)."""
    p = subparsers.add_parser(
        "completion", help="print a shell completion script (bash or zsh)",
        description="Print a completion script for bash or zsh: sub-commands, options and their choices "
                    "complete with Tab. Install it once (examples below), then open a new shell.",
        epilog="examples:\n"
               "  resnetlab completion bash > ~/.local/share/bash-completion/completions/resnetlab\n"
               "  resnetlab completion zsh > ~/.zfunc/_resnetlab   # with fpath+=(~/.zfunc) before compinit\n"
               "  source <(resnetlab completion bash)                # this shell only")
    p.add_argument("shell", choices=SHELLS, help="the shell the script is for")
    p.set_defaults(func=lambda args: print_completion(args, root))


def print_completion(args: argparse.Namespace, root: argparse.ArgumentParser) -> int:
    print(completion_script(args.shell, root), end="")
    return 0


def completion_script(shell: str, parser: argparse.ArgumentParser) -> str:
    import shtab

    _complete_paths(parser, shtab.FILE)
    return shtab.complete(parser, shell=shell)


def _complete_paths(parser: argparse.ArgumentParser, files: dict) -> None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in set(action.choices.values()):
                _complete_paths(child, files)
        elif action.metavar in _PATH_METAVARS:
            action.complete = files  # type: ignore[attr-defined]  # shtab reads this attribute
