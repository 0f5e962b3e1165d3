"""Two processes over Gloo through torchrun, as users run it on several GPUs or machines."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import psutil
import pytest
import torch

TORCHRUN = shutil.which("torchrun", path=os.path.dirname(sys.executable))
COMMON = ["preset=test", "data.subset=512", "data.image_size=12", "train.epochs=3", "optim.lr=0.1",
          "model.name=resnet20"]


def _initial_fc(tmp_path) -> torch.Tensor:
    """The head the runs started from: the same seed, the same model, before any step."""
    from resnetlab.api.assemble import build_model
    from resnetlab.config import build_config
    from resnetlab.training.device import seed_everything

    cfg = build_config([*COMMON, "model.freeze=backbone"])
    seed_everything(cfg.train.seed, deterministic=True)
    return build_model(cfg.model, num_outputs=10, in_channels=1, image_size=12, feature_dim=0,
                       log=lambda line: None).state_dict()["fc.weight"]


def _bn_free_resnet20() -> torch.nn.Module:
    """ResNet-20 without BatchNorm: its forward pass is the same whatever the batch it sees."""
    from resnetlab.models.cifar_resnet import resnet20

    torch.manual_seed(0)
    model = resnet20(num_classes=4, in_channels=1)
    for name, module in list(model.named_modules()):
        for child, layer in list(module.named_children()):
            if isinstance(layer, torch.nn.BatchNorm2d):
                setattr(module, child, torch.nn.Identity())
    return model


def _steps(model: torch.nn.Module, loader, steps: int, reduce=lambda loss: loss) -> list[float]:
    """``steps`` plain SGD steps on ``loader``'s batches; the loss of each (averaged over processes by ``reduce``)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    while len(losses) < steps:
        for batch in loader:
            loss = torch.nn.functional.cross_entropy(model(batch.images.float() / 255), batch.targets)
            losses.append(float(reduce(loss.detach())))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if len(losses) == steps:
                break
    return losses


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (64, 1, 8, 8), dtype=np.uint8), rng.integers(0, 4, 64)


def _ddp_worker(rank: int, folder: str, batch: int, steps: int) -> None:
    import torch.distributed as dist

    from resnetlab.data.loader import BatchLoader

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=2)
    try:
        images, targets = _data()
        loader = BatchLoader(images, targets, batch_size=batch, device=torch.device("cpu"), shuffle=True, seed=3,
                             rank=rank, world_size=2)
        model = torch.nn.parallel.DistributedDataParallel(_bn_free_resnet20())

        def mean_over_processes(loss: torch.Tensor) -> torch.Tensor:
            dist.all_reduce(loss)
            return loss / 2

        losses = _steps(model, loader, steps, reduce=mean_over_processes)
        if rank == 0:
            torch.save({"losses": losses, "weights": model.module.state_dict()}, f"{folder}/ddp.pt")
        # Both processes leave together: one tearing Gloo down while the other is still in a collective
        # or writing aborted the other now and then ("terminate called without an active exception").
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_at_batch_b_match_one_process_at_batch_2b(tmp_path):
    """What DDP guarantees: the loader gives the two processes the two halves of the one-process global
    batch (a strided split of one permutation), and DDP averages their gradients; with a BN-free model and
    no augmentation, the losses and the weights after steps crossing an epoch agree to float rounding."""
    from resnetlab.data.loader import BatchLoader

    steps = 6  # 4 steps an epoch at 64 images: the second epoch's order must agree too
    torch.multiprocessing.spawn(_ddp_worker, args=(str(tmp_path), 8, steps), nprocs=2, join=True)
    ddp = torch.load(tmp_path / "ddp.pt", weights_only=True)

    torch.set_num_threads(1)
    images, targets = _data()
    model = _bn_free_resnet20()
    loader = BatchLoader(images, targets, batch_size=16, device=torch.device("cpu"), shuffle=True, seed=3)
    single = _steps(model, loader, steps)
    assert abs(ddp["losses"][0] - single[0]) < 1e-5, (ddp["losses"][0], single[0])  # same first-step loss
    np.testing.assert_allclose(ddp["losses"], single, rtol=1e-4)
    for name, weight in model.state_dict().items():
        torch.testing.assert_close(ddp["weights"][name], weight, rtol=1e-4, atol=1e-5, msg=name)


def test_the_loader_splits_one_global_batch_between_processes():
    """Process r's k-th batch at size B is every other image of the one-process k-th batch at 2B."""
    from resnetlab.data.loader import BatchLoader

    images, targets = _data()
    kw = {"device": torch.device("cpu"), "shuffle": True, "seed": 5}
    single = [b.index for b in BatchLoader(images, targets, batch_size=16, **kw)]
    shards = [[b.index for b in BatchLoader(images, targets, batch_size=8, rank=r, world_size=2, **kw)]
              for r in (0, 1)]
    for k, whole in enumerate(single):
        assert torch.equal(shards[0][k], whole[0::2]) and torch.equal(shards[1][k], whole[1::2])


@pytest.mark.skipif(TORCHRUN is None, reason="torchrun is not installed beside this Python")
def test_torchrun_training_matches_one_process_with_the_same_global_batch(tmp_path):
    """The whole command under torchrun: with augmentation off and the BatchNorm layers frozen (their
    output does not depend on the batch; SyncBatchNorm needs GPUs), two processes at batch 16 end
    with the weights of one process at batch 32, to float rounding."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    same = [*COMMON, "train.epochs=2", "augment.enabled=false", "model.freeze=backbone",
            "model.freeze_bn_stats=true", "train.threads=1", f"output.dir={tmp_path}"]
    ddp = subprocess.run([TORCHRUN, "--standalone", "--nproc_per_node=2", "-m", "resnetlab", "train", *same,
                          "train.batch_size=16", "output.name=ddp"], env=env, capture_output=True, text=True,
                         timeout=600)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert ddp.stdout.count("run folder:") == 1  # only rank 0 speaks
    single = subprocess.run([sys.executable, "-m", "resnetlab", "train", *same, "train.batch_size=32",
                             "output.name=single"], env=env, capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stderr[-3000:]

    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp", "single"]  # written once, not once per process
    assert len(json.loads((tmp_path / "ddp" / "history.json").read_text())) == 2
    assert json.loads((tmp_path / "ddp" / "provenance.json").read_text())["world_size"] == 2
    # evaluation gathers both shards: every validation image is counted exactly once
    summary = json.loads((tmp_path / "ddp" / "data_summary.json").read_text())
    confusion = json.loads((tmp_path / "ddp" / "metrics.json").read_text())["val"]["confusion_matrix"]
    assert sum(map(sum, confusion)) == summary["splits"]["val"]["count"]
    assert summary["splits"]["train"]["count"] % 32 == 0  # no padded last batch: the global batches are the same
    a = torch.load(tmp_path / "ddp" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "single" / "last.pt", weights_only=True)["model"]
    assert not torch.equal(a["fc.weight"], _initial_fc(tmp_path))  # the head did train
    for name in b:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5, msg=name)


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


@pytest.mark.skipif(TORCHRUN is None, reason="torchrun is not installed beside this Python")
def test_an_error_every_process_meets_is_printed_once(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([TORCHRUN, "--standalone", "--nproc_per_node=2", "-m", "resnetlab", "train",
                           "optim.lrr=0.1", f"output.dir={tmp_path}"], env=env, capture_output=True, text=True,
                          timeout=600, cwd=tmp_path)
    assert done.returncode != 0
    said = [line for line in done.stderr.splitlines() if line.startswith("resnetlab train: error:")]
    assert said == ["resnetlab train: error: unknown config key 'optim.lrr'; did you mean 'optim.lr'?"], done.stderr


@pytest.mark.skipif(TORCHRUN is None, reason="torchrun is not installed beside this Python")
def test_sync_bn_on_cpu_processes_is_one_line(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([TORCHRUN, "--standalone", "--nproc_per_node=2", "-m", "resnetlab", "train", *COMMON,
                           "train.sync_bn=true", "train.threads=1", f"output.dir={tmp_path}", "output.name=s"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode != 0
    said = [line for line in done.stderr.splitlines() if line.startswith("resnetlab train: error:")]
    assert len(said) == 1 and "train.sync_bn=true needs CUDA GPUs" in said[0], done.stderr
    assert "[rank0]: Traceback" not in done.stderr and "[rank1]: Traceback" not in done.stderr
