"""``resnetlab --version``: the package, the torch build, and the device and precision a run would use.

It imports torch (about two seconds), which is why it is an action of its own: ``--help`` and
parsing stay free of torch.
"""

from __future__ import annotations

import argparse
import platform
from typing import Any

from resnetlab import __version__


class VersionAction(argparse.Action):
    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, help: str | None = None) -> None:
        super().__init__(option_strings=option_strings, dest=dest, default=argparse.SUPPRESS, nargs=0, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(version_text())
        parser.exit(0)


def version_text() -> str:
    """Three lines: resnetlab, torch and Python, and what train.device=auto / train.precision=auto pick here."""
    import torch

    from resnetlab.training.device import resolve_device, resolve_precision

    device = resolve_device("auto")
    dtype = resolve_precision("auto", device)
    precision = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "fp32")
    where = f"{device} ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else str(device)
    return (f"resnetlab {__version__}\n"
            f"torch {torch.__version__}, Python {platform.python_version()}\n"
            f"device {where}, precision {precision} (what train.device=auto and train.precision=auto pick here)")
