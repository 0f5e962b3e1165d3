"""Two processes over Gloo through torchrun, as users run it on several GPUs or machines."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import psutil
import pytest

TORCHRUN = shutil.which("torchrun", path=os.path.dirname(sys.executable))
COMMON = ["preset=test", "data.subset=512", "data.image_size=12", "train.epochs=3", "optim.lr=0.1",
          "model.name=resnet20"]


@pytest.mark.skipif(TORCHRUN is None, reason="torchrun is not installed beside this Python")
def test_two_gloo_processes_match_one_process_with_the_same_global_batch(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ddp = subprocess.run([TORCHRUN, "--standalone", "--nproc_per_node=2", "-m", "resnetlab", "train", *COMMON,
                          "train.batch_size=16", "train.threads=1", f"output.dir={tmp_path}", "output.name=ddp"],
                         env=env, capture_output=True, text=True, timeout=600)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert ddp.stdout.count("run folder:") == 1  # only rank 0 speaks
    single = subprocess.run([sys.executable, "-m", "resnetlab", "train", *COMMON, "train.batch_size=32",
                             f"output.dir={tmp_path}", "output.name=single"], env=env, capture_output=True,
                            text=True, timeout=600)
    assert single.returncode == 0, single.stderr[-3000:]

    runs = sorted(p.name for p in tmp_path.iterdir())
    assert runs == ["ddp", "single"]  # written once, not once per process
    history = json.loads((tmp_path / "ddp" / "history.json").read_text())
    assert len(history) == 3
    provenance = json.loads((tmp_path / "ddp" / "provenance.json").read_text())
    assert provenance["world_size"] == 2
    # evaluation gathers both shards: every validation image is counted exactly once
    summary = json.loads((tmp_path / "ddp" / "data_summary.json").read_text())
    metrics = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    confusion = metrics["val"]["confusion_matrix"]
    assert sum(map(sum, confusion)) == summary["splits"]["val"]["count"]
    acc_ddp = metrics["val"]["scalars"]["accuracy"]
    acc_single = json.loads((tmp_path / "single" / "metrics.json").read_text())["val"]["scalars"]["accuracy"]
    # Same global batch and steps; the runs differ in augmentation draws and BN statistics
    # (per-process batches of 16), so they agree within a tolerance, not exactly.
    assert acc_ddp > 0.5 and abs(acc_ddp - acc_single) < 0.15, (acc_ddp, acc_single)


@pytest.mark.skipif(TORCHRUN is None, reason="torchrun is not installed beside this Python")
def test_a_signal_to_one_process_stops_all_at_one_step_and_the_run_resumes_exactly(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [TORCHRUN, "--standalone", "--nproc_per_node=2", "-m", "resnetlab", "train", *COMMON,
               "train.batch_size=16", "train.threads=1", "train.epochs=4", f"output.dir={tmp_path}"]
    straight = subprocess.run([*command, "output.name=straight"], env=env, capture_output=True, text=True,
                              timeout=600)
    assert straight.returncode == 0, straight.stderr[-3000:]

    run = tmp_path / "stopped"
    launcher = subprocess.Popen([*command, "output.name=stopped"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not (run / "last.pt").is_file():  # after epoch 1
            assert launcher.poll() is None and time.monotonic() < deadline, "the run ended before epoch 1 was saved"
            time.sleep(0.05)
        second = next(p for p in psutil.Process(launcher.pid).children(recursive=True)
                      if p.environ().get("RANK") == "1")
        second.send_signal(signal.SIGTERM)  # only the process that does not write
        output, _ = launcher.communicate(timeout=300)
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
    assert launcher.returncode != 0 and not (run / "metrics.json").exists(), output[-3000:]
    # The writing process stopped too, at the same step, and said why.
    assert "stopped by a signal to another process" in (run / "train.log").read_text(), output[-3000:]

    resumed = subprocess.run([*command, "output.name=stopped", "train.resume=auto"], env=env, capture_output=True,
                             text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming" in (run / "train.log").read_text()
    a = json.loads((tmp_path / "straight" / "history.json").read_text())
    b = json.loads((run / "history.json").read_text())
    assert [r["epoch"] for r in b] == [1, 2, 3, 4]
    # Every process's own augmentation and random state came back, so the curves match exactly.
    assert [r["train/loss"] for r in a] == [r["train/loss"] for r in b]
    assert [r["val/accuracy"] for r in a] == [r["val/accuracy"] for r in b]



@pytest.mark.skipif(TORCHRUN is None, reason="torchrun is not installed beside this Python")
def test_patches_and_side_features_under_two_processes(tmp_path):
    """The beyond-one-label paths under DDP: patch-averaged regression, and bilinear fusion at bf16."""
    from beyond_labels_data import digit_images, quality_manifest, write_manifest

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    iqa = quality_manifest(tmp_path / "iqa", count=96)
    names, labels = digit_images(tmp_path / "digits")
    rows = [[name, int(label) % 2, float(label), ("train", "train", "val", "test")[i % 4]] for i, (name, label) in
            enumerate(zip(names[:240], labels[:240]))]
    side = write_manifest(tmp_path / "digits" / "side.csv", ["image", "label", "value", "split"], rows)
    runs = {
        "iqa": [f"data.source={iqa}", "data.task=regression", "data.image_column=image_name",
                "data.label_column=MOS", "data.split_column=set", "data.image_size=32", "patches.size=24",
                "patches.train_num=2", "patches.test_num=3"],
        "fusion": [f"data.source={side}", "data.split_column=split", "data.image_size=16",
                   "data.feature_columns=[value]", "model.fusion=bilinear", "model.visual_dim=8"],
    }
    for name, args in runs.items():
        done = subprocess.run([TORCHRUN, "--standalone", "--nproc_per_node=2", "-m", "resnetlab", "train",
                               "preset=test", "data.subset=null", "model.name=resnet20", "train.epochs=1",
                               "train.batch_size=16", "train.threads=1", "optim.name=adamw", "optim.lr=1e-3",
                               "train.precision=auto", *args, f"output.dir={tmp_path / 'runs'}",
                               f"output.name={name}"], env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, (name, done.stderr[-3000:])
    iqa_metrics = json.loads((tmp_path / "runs" / "iqa" / "metrics.json").read_text())
    assert -1.0 <= iqa_metrics["val"]["scalars"]["srcc"] <= 1.0
    fusion = tmp_path / "runs" / "fusion"
    summary = json.loads((fusion / "data_summary.json").read_text())
    confusion = json.loads((fusion / "metrics.json").read_text())["val"]["confusion_matrix"]
    assert sum(map(sum, confusion)) == summary["splits"]["val"]["count"]  # every val image counted once
