"""``resnetlab export`` and ``resnetlab explain``: take a trained model out of resnetlab, and show what it looks at.

``cli/main.py`` calls :func:`register` with its sub-parsers and the parent parser that gives every
command ``--debug``.
"""

from __future__ import annotations

import argparse
from typing import Any

FORMATS = ("onnx", "torchscript", "pt2", "safetensors")  # resnetlab.deploy.FORMATS, kept here so --help imports no torch


def register(subparsers: Any) -> None:
    """Add the ``export`` and ``explain`` sub-commands (main.py's ``add_parser`` gives each the common options)."""
    p = subparsers.add_parser("export", help="best weights as ONNX, TorchScript, pt2 or safetensors",
             description="Write the best weights of a run in a deployable format, with class names, input size, "
                         "channels, mean/std and task in the file's metadata (ONNX metadata_props, an extra file "
                         "in TorchScript and pt2, the header and a JSON beside safetensors). The file is read back "
                         "and checked against the PyTorch model on validation images of the run's data. Needs "
                         "pip install 'resnetlab[export]'.",
             epilog="examples:\n"
                    "  resnetlab export runs/quick --format onnx\n"
                    "  resnetlab predict runs/quick/export/quick.onnx photos/\n"
                    "  resnetlab export runs/quick --format safetensors --out deploy/")
    p.add_argument("run", metavar="RUN_OR_CHECKPOINT", help="a run folder (its best.pt) or a .pt checkpoint")
    p.add_argument("--format", choices=FORMATS, default="onnx", help="file format (default onnx)")
    p.add_argument("--out", metavar="PATH",
                   help="file or folder to write (default RUN/export/<run name>.<format suffix>); "
                        "files of the run itself are never overwritten")
    p.set_defaults(func=export)

    p = subparsers.add_parser("explain", help="Grad-CAM heat maps: where the model looked for its prediction",
             description="Lay the Grad-CAM map of the predicted class over each image, titled with the predicted "
                         "class and, when known, the true one (from the run's labels, or a folder named like a "
                         "class). Writes one PNG per image and gradcam_grid.png. Without images, explains the "
                         "first validation images of the run's data.",
             epilog="examples:\n"
                    "  resnetlab explain runs/quick photos/cat.jpg photos/dog.jpg --out why/\n"
                    "  resnetlab explain runs/quick --count 16 --layer layer3")
    p.add_argument("run", metavar="RUN_OR_CHECKPOINT", help="a run folder (its best.pt) or a .pt checkpoint")
    p.add_argument("images", metavar="IMAGES", nargs="*",
                   help="image files, folders, globs in quotes or CSVs of paths (default: validation images)")
    p.add_argument("--layer", metavar="STAGE",
                   help="the stage whose map is explained (default the last: layer4, or layer3 in CIFAR ResNets)")
    p.add_argument("--count", type=int, default=8, metavar="N",
                   help="validation images explained when no images are given (default 8)")
    p.add_argument("--out", metavar="DIR", help="folder for the PNGs (default RUN/explain)")
    p.set_defaults(func=explain)



def export(args: argparse.Namespace) -> int:
    from resnetlab.api.export import export as export_run

    result = export_run(args.run, format=args.format, out=args.out)
    print(result.format_lines())
    return 0


def explain(args: argparse.Namespace) -> int:
    from resnetlab.api.explanation import explain as explain_images

    result = explain_images(args.run, args.images, layer=args.layer, out=args.out, count=args.count)
    print(result.format_lines())
    return 0
