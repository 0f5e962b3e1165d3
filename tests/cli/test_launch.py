"""resnetlab torchrun: torchrun's launcher in-process, a failure told once in the workers' line."""

import os
import subprocess
import sys

import pytest

from resnetlab.cli.launch import split

pytest.importorskip("torch.distributed.run")


def test_the_launcher_options_end_at_the_first_command():
    assert split(["--nproc_per_node=2", "--standalone", "train", "preset=quick", "train"]) == \
        (["--nproc_per_node=2", "--standalone"], ["train", "preset=quick", "train"])
    with pytest.raises(ValueError, match="needs a command after its options"):
        split(["--nproc_per_node=2"])


def _torchrun(tmp_path, *args):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "resnetlab", "torchrun", "--standalone", "--nproc_per_node=2",
                           *args], env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)


def test_a_failing_worker_is_one_line_and_its_exit_code(tmp_path):
    done = _torchrun(tmp_path, "train", "optim.lrr=0.1", f"output.dir={tmp_path}")
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if "error" in line.lower()]
    assert errors == ["resnetlab train: error: unknown config key 'optim.lrr'; did you mean 'optim.lr'?"], \
        done.stderr
    assert "Traceback" not in done.stderr and "ChildFailedError" not in done.stderr


def test_a_run_under_the_launcher_trains_once(tmp_path):
    done = _torchrun(tmp_path, "train", "preset=test", "data.subset=64", "train.threads=1",
                     f"output.dir={tmp_path}", "output.name=r")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("run folder:") == 1  # rank 0 speaks
    assert (tmp_path / "r" / "metrics.json").is_file()
