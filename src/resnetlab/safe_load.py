"""``torch.load`` for files someone else may have written: tensors and plain values, never code.

Model weights (``model.weights=PATH``) and run checkpoints both come from files a user hands
us, so both load through here, with ``weights_only=True`` and the same one-line errors.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from resnetlab.errors import UserError

# How torch names the global a weights_only load refused (the wording changed across releases).
_REFUSED_GLOBAL = re.compile(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)")


def load_tensors(path: str | Path, *, what: str, advice: str,
                 map_location: str | torch.device = "cpu", mmap: bool = False) -> Any:
    """The object saved at `path`; a `UserError` naming `what` (e.g. "checkpoint x.pt") if the file
    is damaged, not a PyTorch file, or holds anything but tensors and plain containers.
    `advice` ends the message for a damaged file ("use another checkpoint ..."). `mmap` leaves the
    tensors on disk until used (for reading a checkpoint's settings only)."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as err:  # a damaged file fails in many ways: UnpicklingError, BadZipFile, EOFError...  # noqa: BLE001
        found = _REFUSED_GLOBAL.search(str(err))
        if found:
            # The unpickler stopped at the global, so whatever the file meant to run never ran.
            raise UserError(f"{what} was refused: it holds objects other than tensors and plain values "
                            f"({found.group(1)}); only load files you trust") from None
        raise UserError(f"{what} is corrupt or not a PyTorch file ({type(err).__name__}); {advice}") from None
