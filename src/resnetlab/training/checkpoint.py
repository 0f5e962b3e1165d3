"""Checkpoints that survive a crash at any instant and load without running code."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from resnetlab.errors import UserError
from resnetlab.safe_load import load_tensors


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


def load_checkpoint(path: str | Path, *, map_location: str | torch.device = "cpu",
                    mmap: bool = False) -> dict[str, Any]:
    """Load a checkpoint file, or a run folder's best.pt (else last.pt); tensors and plain values only."""
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
    checkpoint = load_tensors(path, what=f"checkpoint {path}", map_location=map_location, mmap=mmap,
                              advice="use another checkpoint (last.pt or best.pt)")
    if not isinstance(checkpoint, dict):
        raise UserError(f"checkpoint {path} holds a {type(checkpoint).__name__}, not a checkpoint dictionary")
    return checkpoint
