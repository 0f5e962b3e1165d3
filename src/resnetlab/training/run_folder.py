"""The run folder: its name, its provenance, and the resources a run used."""

from __future__ import annotations

import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from resnetlab.atomic_write import write_json, write_text
from resnetlab.config.schema import folder_name_problem
from resnetlab.data.bundle import DataBundle
from resnetlab.errors import UserError


def default_run_name(*, model: str, batch_size: int, lr: float) -> str:
    return f"{model}_bs{batch_size}_lr{lr:g}_{time.strftime('%Y%m%d-%H%M%S')}"


def make_run_dir(root: str | Path, name: str, *, resuming: bool, generated: bool) -> Path:
    """Create ``root/name``. An existing run is never overwritten: resume it or pick a new name."""
    problem = folder_name_problem(name)  # configs are checked already; this guards other callers
    if problem:
        raise UserError(f"run folder name {problem}")
    path = Path(root) / name
    if not resuming and path.is_dir() and any(path.iterdir()):
        if not generated:
            if not any((path / f).exists() for f in ("last.pt", "best.pt", "metrics.json")):
                raise UserError(f"run folder {path} holds a run that stopped before its first checkpoint; "
                                "train.resume=auto starts it again there, or choose another output.name")
            raise UserError(f"run folder {path} already holds a run; resume it with train.resume=auto "
                            "or choose another output.name")
        suffix = 2
        while (Path(root) / f"{name}-{suffix}").exists():
            suffix += 1
        path = Path(root) / f"{name}-{suffix}"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file in the way, no permission, read-only disk
        raise UserError(f"cannot create run folder {path} ({exc.strerror}); set output.dir to a writable "
                        "folder") from None
    return path


def git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def provenance(*, device: torch.device, data_hash: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    from resnetlab import __version__

    info = {"resnetlab_version": __version__, "git_commit": git_commit(), "torch_version": torch.__version__,
            "python": sys.version.split()[0], "platform": platform.platform(), "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
            "threads": torch.get_num_threads(), "data_hash": data_hash,
            "command": " ".join(sys.argv), "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    info.update(extra or {})
    return info


def write_data_record(run_dir: Path, bundle: DataBundle) -> None:
    """data_summary.json (splits and class counts) and skipped_files.txt (each bad file and why)."""
    write_json(run_dir / "data_summary.json", bundle.summary())
    write_text(run_dir / "skipped_files.txt", "".join(f"{b.path}\t{b.reason}\n" for b in bundle.skipped))


def peak_rss_mb() -> float:
    # ru_maxrss is in kilobytes on Linux, bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def peak_device_mb(device: torch.device) -> float | None:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return None

