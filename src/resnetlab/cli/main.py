"""``resnetlab`` command line: one sub-command per job, each a thin call into ``resnetlab.api``.

Bad input exits with code 2 and one line on stderr; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any, NoReturn

from resnetlab.cli import baseline_commands, commands, completion, export_commands, launch, study_commands, version
from resnetlab.cli.flag_hints import flag_hint
from resnetlab.errors import UserError, clip_words, first_line

COMPILE_HELP = "torch.compile the model: up to a minute to start, then faster (for many images)"
OVERRIDES_HELP = ("config overrides: preset=NAME, config=FILE.yaml, section.key=value "
                  "(resnetlab config --keys lists them)")
DATA_ONLY_COMMANDS = ("eval", "baseline")  # their overrides are data.* keys only
RUN_HELP = "a run folder (its best.pt, else last.pt) or a checkpoint file"


class _Parser(argparse.ArgumentParser):
    """argparse with the command line's error format: one line on stderr, exit code 2, no usage block.

    Abbreviated options are off (sub-commands inherit the class): `--c 1` must not quietly mean
    `--cells-per-block 1` beside `--C`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}; see {self.prog} --help\n")


class _Formatter(argparse.HelpFormatter):
    """Wraps descriptions as argparse does, but an ``examples:`` block keeps its lines as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        prose, marker, examples = text.partition("examples:\n")
        filled = super()._fill_text(prose, width, indent) if prose.strip() else ""
        return "\n\n".join(part for part in (filled, marker + examples if marker else "") if part)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes a whole number >= 1, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"takes a whole number >= 1, got {value}")
    return value


def _above_zero(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes a number > 0, got '{text}'") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"takes a number > 0, got {value:g}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="resnetlab", description="Train, evaluate and compare ResNet image models.",
                     epilog=_examples("resnetlab train preset=quick", "resnetlab config --keys",
                                      "resnetlab <command> --help"))
    parser.add_argument("--version", action=version.VersionAction,
                        help="show the version, the torch build, the device and precision training would use")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", help="what to do (each has its own --help)")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks")
    original_add = sub.add_parser
    sub.add_parser = lambda *a, **k: original_add(*a, parents=[common], **k)  # every command takes --debug

    _add_train(sub)
    _add_eval(sub)
    _add_predict(sub)
    _add_summary(sub)
    _add_report(sub)
    _add_config(sub)
    study_commands.register(sub)
    baseline_commands.register(sub, common)
    export_commands.register(sub)
    launch.register(sub, _examples("resnetlab torchrun --nproc_per_node=2 train preset=quick",
                                   "resnetlab torchrun --nnodes=2 --node_rank=0 --rdzv_endpoint=host:29500 "
                                   "--nproc_per_node=8 train preset=resnet50"))
    completion.register(sub, parser)
    return parser


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model (try: resnetlab train preset=quick)",
                       description="Train a model from a preset, a YAML file and key=value overrides; write a run "
                                   "folder (checkpoints, metrics, plots, report.md, TensorBoard) under output.dir. "
                                   "Without arguments at a terminal, asks which preset to use.",
                       epilog=_examples("resnetlab train preset=quick",
                                        "resnetlab train preset=quick train.epochs=3 optim.lr=0.05",
                                        "resnetlab train config=my.yaml data.source=path/to/images",
                                        "resnetlab train --resume runs/NAME"))
    p.add_argument("overrides", nargs="*", help=OVERRIDES_HELP)
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped run exactly where it stopped")
    p.set_defaults(func=commands.train)


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="recompute every metric and plot of a run on any split or dataset",
                       description="Load a run's best weights and recompute its metrics, plots and report on a "
                                   "split of its data, or on other data given with data.* overrides.",
                       epilog=_examples("resnetlab eval runs/NAME --split test",
                                        "resnetlab eval runs/NAME/best.pt data.source=path/to/new/images --tta"))
    p.add_argument("run", metavar="RUN_OR_CHECKPOINT", help=RUN_HELP)
    p.add_argument("overrides", nargs="*", default=[], help="data.* overrides, e.g. data.source=path/to/new/images")
    p.add_argument("--split", choices=("val", "test", "train", "all"), default=None,
                   help="all joins train, val and test (default: val; all when data.source is another source)")
    p.add_argument("--tta", action="store_true", help="average predictions over horizontal flips")
    p.add_argument("--compile", action="store_true", help=COMPILE_HELP)
    p.add_argument("--out", metavar="DIR",
                   help="where to write (default RUN/eval-<split>, or RUN/eval-<source name>-<split> for other data)")
    p.set_defaults(func=commands.evaluate)


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="predict images and write a CSV (id,label,probabilities)",
                       description="Predict the class (or the score) of every image given and write one CSV row per "
                                   "image: its id (the file name without extension), the label and the "
                                   "probabilities. Unreadable files are skipped and listed.",
                       epilog=_examples("resnetlab predict runs/NAME path/to/images/ --out predictions.csv",
                                        "resnetlab predict runs/NAME/best.pt 'photos/*.jpg' --tta",
                                        "resnetlab predict runs/NAME/export/NAME.onnx path/to/images/"))
    p.add_argument("run", metavar="RUN_OR_CHECKPOINT",
                   help="a run folder, a .pt checkpoint, or an .onnx file from resnetlab export (run by ONNX Runtime)")
    p.add_argument("inputs", metavar="IMAGES_OR_FOLDER", nargs="+",
                   help="a folder, a glob, image files or a CSV of paths")
    p.add_argument("--out", metavar="FILE.csv", default="predictions.csv",
                   help="the CSV to write (default predictions.csv)")
    p.add_argument("--tta", action="store_true", help="average predictions over horizontal flips")
    p.add_argument("--compile", action="store_true", help=COMPILE_HELP)
    p.add_argument("--batch-size", type=_positive, default=128, metavar="N",
                   help="images per forward pass (default 128; lower it if memory runs out)")
    p.set_defaults(func=commands.predict)


def _add_summary(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("summary", help="layer table, parameters, FLOPs and MACs of a model",
                       description="Print a model's layers with output shapes and parameters, and its FLOPs and "
                                   "MACs for one image; with --memory, the training memory per image.",
                       epilog=_examples("resnetlab summary --list", "resnetlab summary resnet50",
                                        "resnetlab summary resnet18 --image-size 32 --stem cifar --num-classes 10",
                                        "resnetlab summary resnet20 --width 2 --image-size 28 --in-channels 1",
                                        "resnetlab summary runs/NAME --memory"))
    p.add_argument("model", nargs="?", help="model name or a run folder (none: list the models)")
    p.add_argument("--image-size", type=_positive, default=224, metavar="PX",
                   help="input height and width in pixels (default 224)")
    p.add_argument("--in-channels", type=_positive, default=3, metavar="N",
                   help="input channels: 1 grayscale, 3 RGB (default 3)")
    p.add_argument("--num-classes", type=int, default=1000, metavar="N",
                   help="outputs of the classifier (default 1000, ImageNet's)")
    p.add_argument("--stem", choices=("imagenet", "cifar"), default=None,
                   help="imagenet: 7x7 stride 2 + max-pool; cifar: 3x3 stride 1 (default: as model.stem=auto)")
    p.add_argument("--width", type=_above_zero, default=1.0, metavar="K",
                   help="multiply every stage's channels by K, as model.width (default 1)")
    p.add_argument("--multiscale", action="store_true", help="with multi-scale fusion of stage features")
    p.add_argument("--attention", choices=("none", "fused", "blocks"), default="none",
                   help="channel attention as model.attention (default none)")
    p.add_argument("--memory", action="store_true",
                   help="also the training memory per image and the batch that fits 8-80 GiB GPUs")
    p.add_argument("--list", action="store_true", help="list the registered models")
    p.set_defaults(func=commands.summary)


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="rebuild a run's report; with several runs, a comparison",
                       description="Rewrite report.md of each finished run folder; given several, also write "
                                   "comparison.md with their metrics side by side and overlaid curves.",
                       epilog=_examples("resnetlab report runs/NAME", "resnetlab report runs/a runs/b --out compare/"))
    p.add_argument("runs", nargs="+", metavar="RUN", help="finished run folders (with metrics.json)")
    p.add_argument("--out", metavar="DIR", help="folder of the comparison (default: the runs' parent)")
    p.set_defaults(func=commands.report)


def _add_config(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="print the resolved configuration, or every key with --keys",
                       description="Print the configuration a train command would use, after presets, files and "
                                   "overrides, checked as train checks it; or list every key or preset.",
                       epilog=_examples("resnetlab config --keys", "resnetlab config --presets",
                                        "resnetlab config preset=quick train.epochs=3 > my.yaml",
                                        "resnetlab train config=my.yaml"))
    p.add_argument("overrides", nargs="*", help=OVERRIDES_HELP)
    p.add_argument("--keys", action="store_true",
                   help="list every key with its default, its accepted values and its meaning")
    p.add_argument("--presets", action="store_true", help="list the presets")
    p.set_defaults(func=commands.show_config)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["torchrun"] and not {"-h", "--help"} & set(argv[1:2]):
        return launch.torchrun(argv[1:])  # its options are torchrun's, parsed by torchrun
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # overrides or inputs given after an option: "eval RUN --split test data.source=x"
        rest = next((n for n in ("overrides", "inputs", "runs", "images") if isinstance(getattr(args, n, None), list)), None)
        if rest is None or any(token.startswith("-") for token in extra):
            _unrecognized(parser, args, extra, argv)
        getattr(args, rest).extend(extra)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        if args.debug:
            traceback.print_exc()
        _say(args.command, str(exc))
        return 2
    except BrokenPipeError:  # output piped into head and closed early
        return 0
    except OSError as exc:
        if exc.filename is None or args.debug:
            raise
        # A file or folder the system refused (permission, read-only disk, full disk, a file in the way).
        _say(args.command, f"{exc.filename}: {(exc.strerror or first_line(exc)).lower()}; check the path, its "
                           "permissions and the free space")
        return 2
    except (MemoryError, RuntimeError) as exc:
        if not _out_of_memory(exc):
            raise
        # Training handles its own (with batch-size advice); this is evaluation, prediction or data loading.
        if args.debug:
            traceback.print_exc()
        _say(args.command, f"out of memory ({first_line(exc)}); lower the batch size (train.batch_size) or "
                           "data.image_size, or on a GPU use train.precision=bf16")
        return 2
    except KeyboardInterrupt:
        print(f"resnetlab {args.command}: aborted", file=sys.stderr)
        return 130


def _say(command: str, message: str) -> None:
    """The one error line, its long words cut; under torchrun from the first process that fails only."""
    if _first_to_report():
        print(f"resnetlab {command}: error: {clip_words(' '.join(message.split(chr(10))))}", file=sys.stderr)


def _first_to_report() -> bool:
    """Whether this process should print the error it stops with: always alone; under torchrun only the
    first process of this machine to fail, so an error every process meets is printed once, not N times."""
    run_id = os.environ.get("TORCHELASTIC_RUN_ID")
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not run_id:
        return True
    import tempfile

    marker = os.path.join(tempfile.gettempdir(), f"resnetlab-error-{run_id}")
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        return False
    except OSError:
        return int(os.environ.get("RANK", "0")) == 0
    return True


def _unrecognized(parser: argparse.ArgumentParser, args: argparse.Namespace, extra: list[str],
                  argv: list[str]) -> NoReturn:
    """Refuse unknown options; for a command that takes config overrides, name the key a flag meant."""
    command = _command_parser(parser, args)
    message = f"unrecognized arguments: {' '.join(extra)}"
    flag = next((token for token in extra if token.startswith("-")), None)
    if flag is not None and isinstance(getattr(args, "overrides", None), list):
        after = argv[argv.index(flag) + 1] if flag in argv[:-1] else None
        value = after if after is not None and not after.startswith("-") and "=" not in after else None
        sections = ("data",) if args.command in DATA_ONLY_COMMANDS else None
        hint = flag_hint(flag, value, sections=sections)
        if hint:
            message += f" ({hint}?)"
    command.error(message)


def _command_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The (sub-)command's own parser, so its error says `see resnetlab train --help`."""
    while True:
        action = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        name = getattr(args, action.dest, None) if action is not None else None
        if name not in (action.choices if action is not None else {}):
            return parser
        parser = action.choices[name]


def _out_of_memory(exc: BaseException) -> bool:
    """Host RAM (MemoryError) or a device (torch.OutOfMemoryError, a RuntimeError)."""
    if isinstance(exc, MemoryError):
        return True
    torch = sys.modules.get("torch")  # not imported: then it cannot be torch's error
    return torch is not None and isinstance(exc, torch.OutOfMemoryError)
