"""Files that are either the old complete version or the new one, never half of either.

Every file resnetlab writes for later reading (checkpoints, JSON, CSV, YAML, Markdown, plots,
caches) goes through :func:`atomic_write`: a fresh temporary name in the same folder, write,
flush, fsync, ``os.replace`` over the target, then fsync the folder so the rename itself
survives a power cut. The temporary name is unique per process and per call, so two writers
of the same file (threads, processes, workers on a shared disk) never write into one
temporary file: the last rename wins, whole.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def temp_path(path: str | Path, *, suffix: str = "") -> Path:
    """A fresh name beside ``path`` (same file system, so the rename is atomic), ending in ``.tmp``
    plus ``suffix``; hidden, and recognisable as a leftover if a kill -9 leaves it behind."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp{suffix}")


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(handle)`` on a binary file that becomes ``path`` only once it is complete.

    Anything ``write`` raises leaves ``path`` as it was and removes the temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        # open(), not mkstemp: the file gets the umask's permissions, so a folder shared by a team
        # stays readable by all of it; "x" refuses a name that somehow exists.
        with open(tmp, "xb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return _replace(tmp, path)


def atomic_write_file(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """:func:`atomic_write` for libraries that write only to a file name (ONNX, safetensors):
    ``write(tmp)`` creates the temporary file, which keeps ``path``'s suffix for them."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path, suffix=path.suffix)
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDWR)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return _replace(tmp, path)


def _replace(tmp: Path, path: Path) -> Path:
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)
    return path


def fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable where the platform allows it (not on Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda handle: handle.write(data))


def write_text(path: str | Path, text: str, *, encoding: str = "utf-8") -> Path:
    return write_bytes(path, text.encode(encoding))


def write_json(path: str | Path, data: Any, *, indent: int | None = 2) -> Path:
    """JSON with numpy values and paths turned into plain ones."""
    return write_text(path, json.dumps(data, indent=indent, default=_plain))


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")
