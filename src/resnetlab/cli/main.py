"""``resnetlab`` command line: one sub-command per job, each a thin call into ``resnetlab.api``.

Bad input exits with code 2 and one line on stderr; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from typing import Any, NoReturn, Sequence

from resnetlab import __version__
from resnetlab.cli import baseline_commands, commands, export_commands, study_commands
from resnetlab.errors import UserError, first_line

COMPILE_HELP = "torch.compile the model: up to a minute to start, then faster (for many images)"
OVERRIDES_HELP = ("config overrides: preset=NAME, config=FILE.yaml, section.key=value "
                  "(resnetlab config --keys lists them)")


class _Parser(argparse.ArgumentParser):
    """argparse with the command line's error format: one line on stderr, exit code 2, no usage block.

    Abbreviated options are off (sub-commands inherit the class): `--c 1` must not quietly mean
    `--cells-per-block 1` beside `--C`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}; see {self.prog} --help\n")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes a whole number >= 1, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"takes a whole number >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="resnetlab", description="Train, evaluate and compare ResNet image models.")
    parser.add_argument("--version", action="version", version=f"resnetlab {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks")
    original_add = sub.add_parser
    sub.add_parser = lambda *a, **k: original_add(*a, parents=[common], **k)  # every command takes --debug

    p = sub.add_parser("train", help="train a model (try: resnetlab train preset=quick)")
    p.add_argument("overrides", nargs="*", help=OVERRIDES_HELP)
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped run exactly where it stopped")
    p.set_defaults(func=commands.train)

    p = sub.add_parser("eval", help="recompute every metric and plot of a run on any split or dataset")
    p.add_argument("run", metavar="RUN_OR_CHECKPOINT")
    p.add_argument("overrides", nargs="*", default=[], help="data.* overrides, e.g. data.source=path/to/new/images")
    p.add_argument("--split", choices=("val", "test", "train", "all"), default=None,
                   help="all joins train, val and test (default: val; all when data.source is another source)")
    p.add_argument("--tta", action="store_true", help="average predictions over horizontal flips")
    p.add_argument("--compile", action="store_true", help=COMPILE_HELP)
    p.add_argument("--out", metavar="DIR",
                   help="where to write (default RUN/eval-<split>, or RUN/eval-<source name>-<split> for other data)")
    p.set_defaults(func=commands.evaluate)

    p = sub.add_parser("predict", help="predict images and write a CSV (id,label,probabilities)")
    p.add_argument("run", metavar="RUN_OR_CHECKPOINT",
                   help="a run folder, a .pt checkpoint, or an .onnx file from resnetlab export (run by ONNX Runtime)")
    p.add_argument("inputs", metavar="IMAGES_OR_FOLDER", nargs="+",
                   help="a folder, a glob, image files or a CSV of paths")
    p.add_argument("--out", default="predictions.csv")
    p.add_argument("--tta", action="store_true", help="average predictions over horizontal flips")
    p.add_argument("--compile", action="store_true", help=COMPILE_HELP)
    p.add_argument("--batch-size", type=_positive, default=128)
    p.set_defaults(func=commands.predict)

    p = sub.add_parser("summary", help="layer table, parameters, FLOPs and MACs of a model")
    p.add_argument("model", nargs="?", help="model name or a run folder")
    p.add_argument("--image-size", type=_positive, default=224)
    p.add_argument("--in-channels", type=_positive, default=3)
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--stem", choices=("imagenet", "cifar"), default=None)
    p.add_argument("--multiscale", action="store_true", help="with multi-scale fusion of stage features")
    p.add_argument("--attention", choices=("none", "fused", "blocks"), default="none")
    p.add_argument("--memory", action="store_true",
                   help="also the training memory per image and the batch that fits 8-80 GiB GPUs")
    p.add_argument("--list", action="store_true", help="list the registered models")
    p.set_defaults(func=commands.summary)

    p = sub.add_parser("report", help="rebuild a run's report; with several runs, a comparison")
    p.add_argument("runs", nargs="+", metavar="RUN")
    p.add_argument("--out", metavar="DIR", help="folder of the comparison (default: the runs' parent)")
    p.set_defaults(func=commands.report)

    p = sub.add_parser("config", help="print the resolved configuration, or every key with --keys")
    p.add_argument("overrides", nargs="*", help=OVERRIDES_HELP)
    p.add_argument("--keys", action="store_true", help="list every key with its default and meaning")
    p.add_argument("--presets", action="store_true", help="list the presets")
    p.set_defaults(func=commands.show_config)

    study_commands.register(sub, common)
    baseline_commands.register(sub, common)
    export_commands.register(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # overrides or inputs given after an option: "eval RUN --split test data.source=x"
        rest = next((n for n in ("overrides", "inputs", "runs", "images") if isinstance(getattr(args, n, None), list)), None)
        if rest is None or any(token.startswith("-") for token in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        getattr(args, rest).extend(extra)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"resnetlab {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into head and closed early
        return 0
    except (MemoryError, RuntimeError) as exc:
        if not _out_of_memory(exc):
            raise
        # Training handles its own (with batch-size advice); this is evaluation, prediction or data loading.
        if args.debug:
            traceback.print_exc()
        print(f"resnetlab {args.command}: error: out of memory ({first_line(exc)}); lower the batch size "
              "(train.batch_size) or data.image_size, or on a GPU use train.precision=bf16", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"resnetlab {args.command}: aborted", file=sys.stderr)
        return 130


def _out_of_memory(exc: BaseException) -> bool:
    """Host RAM (MemoryError) or a device (torch.OutOfMemoryError, a RuntimeError)."""
    if isinstance(exc, MemoryError):
        return True
    torch = sys.modules.get("torch")  # not imported: then it cannot be torch's error
    return torch is not None and isinstance(exc, torch.OutOfMemoryError)
