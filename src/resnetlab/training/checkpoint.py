"""Checkpoints that survive a crash at any instant and load without running code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from resnetlab.atomic_write import atomic_write
from resnetlab.errors import UserError
from resnetlab.safe_load import load_tensors


def atomic_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` through :func:`~resnetlab.atomic_write.atomic_write`: a reader (or a kill -9)
    sees either the old complete checkpoint or the new complete one, never a torn one."""
    atomic_write(path, lambda handle: torch.save(obj, handle))


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
