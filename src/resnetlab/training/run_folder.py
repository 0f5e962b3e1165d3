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
                             text=True, timeout=5, check=False)
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


# What training writes into a run folder: nothing else (eval, predict) may write over them.
RUN_OUTPUTS = frozenset({"config.yaml", "best.pt", "last.pt", "history.csv", "history.json", "metrics.json",
                         "final_results.json", "data_summary.json", "skipped_files.txt", "provenance.json",
                         "report.md", "plots", "tensorboard", "train.log"})


def is_run_folder(folder: Path) -> bool:
    """A folder training wrote: its config.yaml beside a checkpoint or metrics.json."""
    try:
        return (folder / "config.yaml").is_file() and any((folder / n).is_file()
                                                         for n in ("best.pt", "last.pt", "metrics.json"))
    except OSError:
        return False


def refuse_run_outputs(out: str | Path, *, option: str = "--out", folder: bool = False) -> None:
    """Refuse an output path that is, or falls inside, one of a run folder's own training outputs
    (``folder``: an output folder, which may not be the run folder itself either)."""
    try:
        target = Path(out).resolve()
    except (OSError, RuntimeError):  # a symlink loop on the way: writing there fails anyway
        return
    run = next((parent for parent in (target, *target.parents) if is_run_folder(parent)), None)
    if run is None:
        return
    inside = target.relative_to(run).parts
    if not inside:
        what = "its metrics.json and report.md" if folder else "a folder"
        raise UserError(f"{option} {out} is the run folder {run}: {what} would be written over; give a new "
                        f"{'folder' if folder else 'file'}, e.g. {run / ('eval-mine' if folder else 'predictions.csv')}")
    if inside[0] in RUN_OUTPUTS:
        raise UserError(f"{option} {out} would write over {run / inside[0]}, one of the run's own training "
                        f"outputs; give another name, e.g. {run / ('eval-mine' if folder else 'predictions.csv')}")


def writable_folder(folder: str | Path, *, option: str, create: bool = True) -> Path:
    """``folder``, created if needed (``create``; else only checked, so a command that fails later leaves
    nothing behind); a one-line UserError naming ``option`` if it cannot be written."""
    import os

    folder = Path(folder)
    if create:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a file in the way, no permission, read-only disk
            raise UserError(f"{option} {folder}: cannot create the folder ({exc.strerror}); give a writable "
                            "folder") from None
    existing = next(p for p in (folder, *folder.parents) if p.exists() or p == p.parent)
    if not existing.is_dir():
        raise UserError(f"{option} {folder}: cannot create the folder ({existing} is a file); give a writable "
                        "folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{option} {folder}: {existing} is not writable; give a writable folder")
    return folder


def resume_has_work(run_dir: Path, checkpoint: dict[str, Any], *, total_epochs: int, patience: int) -> None:
    """Refuse to resume a finished run with nothing left to train: it would only rewrite its outputs
    (metrics.json, report.md, config.yaml, provenance.json with the original command and start time)."""
    if not (run_dir / "metrics.json").is_file():
        return  # stopped, or crashed before its final evaluation: resuming finishes it
    done = int((checkpoint.get("loop") or {}).get("epoch", 0))
    bad_epochs = int((checkpoint.get("monitor") or {}).get("bad_epochs", 0))
    if done >= total_epochs or (patience > 0 and bad_epochs >= patience):
        why = f"trained all {done} epochs" if done >= total_epochs else \
            f"stopped early after {done} epochs (train.early_stopping={patience})"
        raise UserError(f"train.resume: {run_dir} is finished ({why}); nothing to do, nothing changed: raise "
                        "train.epochs (or train.early_stopping) to train on, or use resnetlab eval on it")


def checkpoint_line(checkpoint: Path) -> str:
    """Which checkpoint a command used; says so when a run's best.pt is missing and last.pt stood in."""
    missing = checkpoint.name == "last.pt" and not (checkpoint.parent / "best.pt").exists()
    return f"checkpoint {checkpoint}" + (" (the run folder has no best.pt: its last epoch's weights)"
                                         if missing else "")
