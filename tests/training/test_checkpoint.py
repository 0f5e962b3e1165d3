import os
import subprocess
import sys

import pytest
import torch

from resnetlab.errors import UserError
from resnetlab.training.checkpoint import atomic_save, load_checkpoint


def test_round_trip_with_weights_only(tmp_path):
    state = {"model": {"w": torch.arange(4.0)}, "epoch": 3, "class_names": ["a", "b"], "mean": [0.5]}
    atomic_save(state, tmp_path / "last.pt")
    loaded = load_checkpoint(tmp_path / "last.pt")
    assert torch.equal(loaded["model"]["w"], state["model"]["w"]) and loaded["epoch"] == 3
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "best.pt"
    atomic_save({"epoch": 1}, path)

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", explode)
    with pytest.raises(OSError):
        atomic_save({"epoch": 2}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["best.pt"]


def test_crafted_checkpoint_is_refused_and_its_code_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    # Build the malicious pickle in a child process, so this test's interpreter never holds the class.
    script = f"""
import os, torch
class Evil:
    def __reduce__(self):
        return (os.system, ("touch {marker}",))
torch.save({{"model": Evil()}}, "{evil}")
"""
    subprocess.run([sys.executable, "-c", script], check=True)
    with pytest.raises(UserError, match="was refused"):
        load_checkpoint(evil)
    assert not marker.exists()


def test_corrupt_and_missing_files_are_clear_errors(tmp_path):
    bad = tmp_path / "last.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="corrupt or not a PyTorch file"):
        load_checkpoint(bad)
    with pytest.raises(UserError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(UserError, match="holds no best.pt or last.pt"):
        load_checkpoint(tmp_path / "sub" if (tmp_path / "sub").mkdir() is None else None)


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "last.pt"
    atomic_save({"model": {"w": torch.zeros(1000)}}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="corrupt"):
        load_checkpoint(path)
    assert os.path.getsize(path) > 0
