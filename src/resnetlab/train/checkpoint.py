"""Checkpoints that survive a crash at any instant and load without running code."""

from __future__ import annotations

import os
import pickle
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

from resnetlab.errors import UserError


def atomic_save(obj: Any, path: str | Path) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over ``path``.

    A rename within one file system is atomic, so a reader (or a kill -9) sees either the
    old complete file or the new complete file, never a torn one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def load_checkpoint(path: str | Path, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load with ``weights_only=True``: tensors and plain containers only, never code."""
    path = Path(path)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / name).is_file():
                path = path / name
                break
        else:
            raise UserError(f"{path} is not a run folder: it holds no best.pt or last.pt; give a run folder "
                            "(e.g. runs/NAME) or a .pt checkpoint file")
    if not path.is_file():
        raise UserError(f"checkpoint {path} not found; give a run folder or a .pt file")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only refuses any global it does not know: a crafted file cannot run code.
        found = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)", str(exc))
        if found:
            raise UserError(f"checkpoint {path} was refused: it holds objects other than tensors and plain "
                            f"values ({found.group(1)}); only load checkpoints you trust") from None
        raise UserError(f"checkpoint {path} is corrupt or not a PyTorch file (unpickling failed); "
                        "use another checkpoint (last.pt or best.pt)") from None
    except Exception as exc:  # a damaged file fails in many ways: BadZipFile, RuntimeError, KeyError, EOFError...
        raise UserError(f"checkpoint {path} is corrupt or not a PyTorch file ({type(exc).__name__}); "
                        "use another checkpoint (last.pt or best.pt)") from None
    if not isinstance(checkpoint, dict):
        raise UserError(f"checkpoint {path} holds a {type(checkpoint).__name__}, not a checkpoint dictionary")
    return checkpoint
