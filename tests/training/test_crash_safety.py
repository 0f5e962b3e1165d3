"""Ctrl-C, kill -9 and NaN: a run never loses more than it must, and says how to continue."""

import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

import resnetlab
from resnetlab.config import build_config
from resnetlab.training import loop
from resnetlab.training.checkpoint import load_checkpoint

ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


def _train_cmd(out, name, *extra):
    return [sys.executable, "-m", "resnetlab", "train", "preset=test", f"output.dir={out}", f"output.name={name}",
            "train.threads=1", *extra]


def _wait_for(path, proc, timeout=120):
    deadline = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_sigint_saves_last_and_the_resumed_run_matches_an_unstopped_one(tmp_path):
    common = ["train.epochs=3", "data.subset=256", "train.batch_size=16", "train.checkpoint_steps=2"]
    proc = subprocess.Popen(_train_cmd(tmp_path, "stopped", *common), env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    _wait_for(tmp_path / "stopped" / "last.pt", proc)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert f"resnetlab train --resume {tmp_path / 'stopped'}" in err
    assert "Traceback" not in err
    stopped_at = load_checkpoint(tmp_path / "stopped" / "last.pt")["loop"]
    assert stopped_at["epoch"] < 3

    resumed = subprocess.run([sys.executable, "-m", "resnetlab", "train", "--resume", str(tmp_path / "stopped")],
                             env=ENV, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    straight = subprocess.run(_train_cmd(tmp_path, "straight", *common), env=ENV, capture_output=True, text=True,
                              timeout=300)
    assert straight.returncode == 0, straight.stderr
    a = load_checkpoint(tmp_path / "stopped" / "last.pt")
    b = load_checkpoint(tmp_path / "straight" / "last.pt")
    for key in b["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key


def test_kill_9_at_random_moments_never_leaves_a_torn_checkpoint(tmp_path):
    rng = random.Random(0)
    cmd = _train_cmd(tmp_path, "killed", "train.epochs=50", "data.subset=64", "train.batch_size=8",
                     "train.checkpoint_steps=1", "train.resume=auto")
    kills = 0
    for _ in range(8):
        proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _wait_for(tmp_path / "killed" / "last.pt", proc)
        time.sleep(rng.uniform(0.0, 1.5))
        if proc.poll() is None:
            proc.kill()
            kills += 1
        proc.wait()
        for name in ("last.pt", "best.pt"):
            path = tmp_path / "killed" / name
            if path.exists():
                ckpt = load_checkpoint(path)  # raises on a torn file
                assert "model" in ckpt and "loop" in ckpt
    assert kills >= 6
    leftovers = [p.name for p in (tmp_path / "killed").iterdir() if p.name.endswith(".tmp")]
    assert len(leftovers) <= kills  # at most the one in flight per kill, never a renamed half file


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    calls = {"n": 0}

    class PoisonedLoss:
        def __init__(self, fn):
            self.fn = fn

        def __call__(self, outputs, targets):
            calls["n"] += 1
            value = self.fn(outputs, targets)
            return value * float("nan") if calls["n"] == 7 else value

    import resnetlab.api.training as api

    original = api.classification_loss
    monkeypatch.setattr(api, "classification_loss", lambda **kw: PoisonedLoss(original(**kw)))
    cfg = build_config(["preset=test", f"output.dir={tmp_path}", "output.name=nan", "train.epochs=3",
                        "data.subset=128", "train.batch_size=32"])  # 4 steps per epoch: NaN in epoch 2
    with pytest.raises(loop.Diverged, match=r"loss became nan at step 7 \(epoch 2\); lower optim.lr"):
        resnetlab.train(cfg)
    ckpt = load_checkpoint(tmp_path / "nan" / "last.pt")
    assert ckpt["loop"]["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())
