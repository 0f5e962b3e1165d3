"""``resnetlab export`` and ``resnetlab explain``: take a trained model out of resnetlab, and show what it looks at.

``cli/main.py`` calls :func:`register` with its sub-parsers and the parent parser that gives every
command ``--debug``.
"""

from __future__ import annotations

import argparse
from typing import Any

FORMATS = ("onnx", "torchscript", "pt2", "safetensors")  # resnetlab.deploy.FORMATS, kept here so --help imports no torch


def register(subparsers: Any, common_parent: argparse.ArgumentParser) -> None:
    """Add the ``export`` sub-command."""
    p = _add(subparsers, common_parent, "export", help="write a run's best weights as ONNX, TorchScript, "
             "torch.export (pt2) or safetensors, with its classes and preprocessing",
             description="Write the best weights of a run in a deployable format, with class names, input size, "
                         "channels, mean/std and task in the file's metadata (ONNX metadata_props, an extra file "
                         "in TorchScript and pt2, the header and a JSON beside safetensors). The file is read back "
                         "and checked against the PyTorch model on validation images of the run's data. Needs "
                         "pip install 'resnetlab[export]'.",
             epilog="example: resnetlab export runs/quick --format onnx, then "
                    "resnetlab predict runs/quick/export/quick.onnx photos/")
    p.add_argument("run", metavar="RUN_OR_CHECKPOINT", help="a run folder (its best.pt) or a .pt checkpoint")
    p.add_argument("--format", choices=FORMATS, default="onnx", help="file format (default onnx)")
    p.add_argument("--out", metavar="PATH",
                   help="file or folder to write (default RUN/export/<run name>.<format suffix>); "
                        "files of the run itself are never overwritten")
    p.set_defaults(func=export)


def _add(subparsers: Any, common_parent: argparse.ArgumentParser, name: str, **kwargs: Any) -> argparse.ArgumentParser:
    try:
        return subparsers.add_parser(name, parents=[common_parent], **kwargs)
    except TypeError:  # main.py's add_parser already adds the common parent to every command
        return subparsers.add_parser(name, **kwargs)


def export(args: argparse.Namespace) -> int:
    from resnetlab.api.export import export as export_run

    result = export_run(args.run, format=args.format, out=args.out)
    print(result.format_lines())
    return 0
