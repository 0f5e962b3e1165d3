"""Fashion-MNIST time to accuracy: a preset over N seeds against a plain one-cycle ResNet-20 at the same budget.

    python benchmarks/time_to_accuracy.py [--preset fmnist-fast] [--seeds 3] [extra overrides...]
    python benchmarks/time_to_accuracy.py --first-seed 2 --seeds 1   # one more seed, added to the saved ones
    python benchmarks/time_to_accuracy.py --markdown                 # the README table from the saved JSON

Each seed runs the whole command (`resnetlab train preset=... train.seed=S`: loading, training,
final evaluation) in its own process and reads the test accuracy from the run folder. The
reference is a plain PyTorch script: ResNet-20 (the same architecture), bf16 autocast where the
CPU has it, SGD + OneCycleLR at batch 256, flips and 2-px shifts on whole batches, trained for as
many steps as fit in the preset's mean wall time (its speed measured on its first steps). Prints
accuracy mean ± std and wall time; writes benchmarks/results/time_to_accuracy_<preset>.json (with
extra overrides, ..._<preset>_<overrides>.json, e.g. _fmnist-fast_train.epochs-14.json), keeping the
rows of seeds measured before (a seed run again replaces its row).
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
FMNIST = Path("/usr/share/datasets/fashion-mnist")


def run_preset(preset: str, seed: int, extra: list[str], out: Path) -> tuple[float, float]:
    """(test accuracy, wall seconds) of one whole `resnetlab train` command."""
    name = f"{preset}-seed{seed}"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "resnetlab", "train", f"preset={preset}", f"train.seed={seed}",
                    f"output.dir={out}", f"output.name={name}", "output.progress=false", *extra], check=True)
    seconds = time.perf_counter() - start
    final = json.loads((out / name / "final_results.json").read_text())
    return final["test_accuracy"], seconds


def read_idx(path: Path) -> np.ndarray:
    with gzip.open(path) as handle:
        data = handle.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def plain_reference(budget_s: float, seed: int, subset: int | None = None) -> tuple[float, float, int]:
    """(test accuracy, seconds, steps) of the plain script trained for ``budget_s`` seconds."""
    import torch
    import torch.nn.functional as F

    from resnetlab.models import create_model
    from resnetlab.training.device import resolve_device, resolve_precision

    torch.manual_seed(seed)
    start = time.perf_counter()
    device = resolve_device("auto")  # the preset's train.device=auto: the same device on both sides
    load = lambda name: torch.from_numpy(read_idx(FMNIST / name).astype(np.int64 if "labels" in name else np.uint8))
    x, y = load("train-images-idx3-ubyte.gz")[:subset].to(device), load("train-labels-idx1-ubyte.gz")[:subset].to(device)
    xt, yt = load("t10k-images-idx3-ubyte.gz").to(device), load("t10k-labels-idx1-ubyte.gz").to(device)
    mean, std = x.float().mean() / 255, x.float().std() / 255
    prep = lambda images: ((images.float() / 255 - mean) / std).unsqueeze(1)
    dtype = resolve_precision("auto", device)
    model = create_model("resnet20", num_classes=10, stem="cifar", in_channels=1).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9, nesterov=True, weight_decay=5e-4)
    batch = 256

    def train_step(index: torch.Tensor) -> None:
        images = prep(x[index])
        flip = torch.rand(len(index), device=device) < 0.5
        images = torch.where(flip[:, None, None, None], images.flip(-1), images)
        dx, dy = (int(v) for v in torch.randint(-2, 3, (2,)))  # one shift per batch keeps it cheap
        images = torch.roll(images, shifts=(dy, dx), dims=(2, 3))
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = F.cross_entropy(model(images).float(), y[index], label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def batches():
        while True:
            yield from torch.randperm(len(x), device=device).split(batch)

    stream = batches()
    probe_start = time.perf_counter()
    for _ in range(5):  # speed probe at the starting lr, counted in the budget
        train_step(next(stream))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    per_step = (time.perf_counter() - probe_start) / 5
    steps = max(1, int((budget_s - (time.perf_counter() - start)) / per_step * 0.85))  # leave room to evaluate
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.2, total_steps=steps)
    model.train()
    for _ in range(steps):
        train_step(next(stream))
        sched.step()
    model.eval()
    correct = 0
    with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        for images, labels in zip(xt.split(1000), yt.split(1000)):
            images = prep(images)
            logits = model(images).float() + model(images.flip(-1)).float()  # test-time flip, as the preset
            correct += int((logits.argmax(1) == labels).sum())
    return correct / len(xt), time.perf_counter() - start, steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="fmnist-fast")
    parser.add_argument("--seeds", type=int, default=3, help="how many seeds to run")
    parser.add_argument("--first-seed", type=int, default=0, help="the first seed (seeds run from it upwards)")
    parser.add_argument("--markdown", action="store_true", help="print the README table from the saved JSON")
    parser.add_argument("--reference-seeds", type=int, default=None,
                        help="run the plain reference after the first K seeds only (default: after every seed)")
    parser.add_argument("--reference-subset", type=int, default=None, help=argparse.SUPPRESS)  # smoke runs
    args, extra = parser.parse_known_args()
    suffix = "".join(f"_{override.replace('=', '-').replace('/', '-')}" for override in extra)
    saved_path = RESULTS / f"time_to_accuracy_{args.preset}{suffix}.json"
    if args.markdown:
        print(markdown(json.loads(saved_path.read_text())))
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.first_seed, args.first_seed + args.seeds):  # preset and reference alternate, so both see the same load
            accuracy, seconds = run_preset(args.preset, seed, extra, Path(tmp))
            row = {"seed": seed, "accuracy": accuracy, "seconds": seconds, "plain_accuracy": None,
                   "plain_seconds": None, "plain_steps": None}
            line = f"seed {seed}: {args.preset} {accuracy:.4f} in {seconds:.0f} s"
            if args.reference_seeds is None or seed - args.first_seed < args.reference_seeds:
                ref_acc, ref_s, ref_steps = plain_reference(seconds, seed, args.reference_subset)
                row.update(plain_accuracy=ref_acc, plain_seconds=ref_s, plain_steps=ref_steps)
                line += f"   plain one-cycle ResNet-20 {ref_acc:.4f} in {ref_s:.0f} s ({ref_steps} steps)"
            rows.append(row)
            print(line, flush=True)
    earlier = json.loads(saved_path.read_text()) if saved_path.is_file() else {}
    if earlier.get("overrides", extra) == extra:  # rows of the same command line add up
        ran = {r["seed"] for r in rows}
        rows = sorted([r for r in earlier.get("rows", []) if r["seed"] not in ran] + rows, key=lambda r: r["seed"])
    summary = {key: _mean_std([r[key] for r in rows if r[key] is not None])
               for key in ("accuracy", "seconds", "plain_accuracy")}
    print(f"{args.preset}: test accuracy {_fmt(summary['accuracy'])}, wall {_fmt(summary['seconds'], 0)} s; "
          f"plain reference at the same budget {_fmt(summary['plain_accuracy'])} ({len(rows)} seeds)")
    RESULTS.mkdir(exist_ok=True)
    import os
    import platform

    saved_path.write_text(json.dumps(
        {"machine": {"cpu": platform.processor(), "cores": os.cpu_count(), "load_average": os.getloadavg()},
         "preset": args.preset, "overrides": extra, "rows": rows, "summary": summary}, indent=1) + "\n")


def markdown(saved: dict) -> str:
    """The README table: one row per seed, then mean ± std."""
    lines = ["| seed | test accuracy | wall time | plain one-cycle ResNet-20, same budget |", "|---|---|---|---|"]
    for r in saved["rows"]:
        plain = "not run" if r["plain_accuracy"] is None else f"{r['plain_accuracy']:.2%} ({r['plain_steps']} steps)"
        lines.append(f"| {r['seed']} | {r['accuracy']:.2%} | {_minutes(r['seconds'])} | {plain} |")
    s = saved["summary"]
    plain = [r for r in saved["rows"] if r["plain_accuracy"] is not None]
    spread = f"{s['plain_accuracy'][0]:.2%} ± {s['plain_accuracy'][1]:.2%}" if len(plain) > 1 else \
        f"{s['plain_accuracy'][0]:.2%} (1 seed)" if plain else "not run"
    lines.append(f"| mean ± std | {s['accuracy'][0]:.2%} ± {s['accuracy'][1]:.2%} | {_minutes(s['seconds'][0])} "
                 f"± {s['seconds'][1]:.0f} s | {spread} |")
    command = " ".join(["resnetlab train", f"preset={saved['preset']}", *saved["overrides"]])
    return "\n".join(lines) + f"\n\n`{command}`, {len(saved['rows'])} seed(s); load average at the end: " \
        f"{', '.join(f'{v:.1f}' for v in saved['machine']['load_average'])}."


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {seconds % 60:02.0f} s"


def _mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else math.nan


def _fmt(pair: tuple[float, float], digits: int = 4) -> str:
    return f"{pair[0]:.{digits}f} ± {pair[1]:.{digits}f}"


if __name__ == "__main__":
    main()
