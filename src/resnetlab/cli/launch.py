"""``resnetlab torchrun``: PyTorch's own launcher, with failures told in the workers' one line.

Stock ``torchrun`` turns any worker that exits non-zero into a ``ChildFailedError`` traceback of
its own (some 40 lines) after the worker has already said what went wrong. This runs the same
launcher in-process (``torch.distributed.run``), so every torchrun option works as it is, and
ends a failed run with the workers' exit code and nothing more.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

# Where the launcher's own options end: the first resnetlab command.
COMMANDS = ("train", "eval", "predict", "study", "search", "baseline", "export", "explain", "summary")

HELP = ("torchrun options (e.g. --nproc_per_node=2, --nnodes, --rdzv_endpoint), then a resnetlab command and "
        "its arguments")


def register(sub: argparse._SubParsersAction, examples: str) -> None:
    p = sub.add_parser("torchrun", help="run a command under PyTorch's DDP launcher, errors in one line",
                       description="The same as `torchrun [OPTIONS] -m resnetlab COMMAND ...`: every torchrun "
                                   "option works as it is. A failed run ends with the workers' one-line error "
                                   "and their exit code, without torchrun's own traceback.",
                       epilog=examples)
    p.add_argument("args", nargs=argparse.REMAINDER, metavar="...", help=HELP)


def split(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """``[--nproc_per_node=2, train, preset=quick]`` -> the launcher's options and the command line."""
    at = next((i for i, token in enumerate(argv) if token in COMMANDS), None)
    if at is None:
        raise ValueError(f"resnetlab torchrun needs a command after its options, one of {', '.join(COMMANDS)}; "
                         "e.g. resnetlab torchrun --nproc_per_node=2 train preset=quick")
    return list(argv[:at]), list(argv[at:])


def torchrun(argv: Sequence[str]) -> int:
    """Launch ``resnetlab COMMAND ...`` under torchrun with ``argv``'s options; the workers' exit code."""
    try:
        options, command = split(argv)
    except ValueError as exc:
        print(f"resnetlab torchrun: error: {exc}", file=sys.stderr)
        return 2
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    # The per-process "failed (exitcode: 2)" and "closing signal" records repeat what the worker said.
    logging.getLogger("torch.distributed.elastic.multiprocessing.api").setLevel(logging.CRITICAL)
    try:
        run(parse_args([*options, "-m", "resnetlab", *command]))
    except ChildFailedError as failed:
        # Each worker printed its own line (the first to fail only); its code says what kind of failure.
        codes = [failure.exitcode for failure in failed.failures.values()]
        return next((code for code in codes if code > 0), 1)
    except KeyboardInterrupt:
        return 130
    return 0
