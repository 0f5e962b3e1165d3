"""resnetlab's training path against the plain PyTorch recipe: same model, batch and images, one run.

    python benchmarks/vs_plain_pytorch.py [--cases r20,r18,r50,cache] [--steps N] [--rounds 3] [--threads 1]
                                          [--jpeg-size 256] [--cache-images 256] [--device auto]
    python benchmarks/vs_plain_pytorch.py --markdown     # the README table from the saved JSON

plain: what a user's script does: a Dataset opening each image file with PIL, resizing, padding +
random crop (32 px) and flipping it, turning it into a normalized float tensor, a DataLoader
batching it, and an fp32 NCHW model step.
resnetlab: the decode-once uint8 cache (``load_data``), ``BatchLoader``, ``BatchAugment`` on whole
batches, bf16 autocast + channels_last where the CPU has native bf16 (``resolve_precision("auto")``),
driven by the training loop itself (``training.loop.fit``).
bare: resnetlab's model step alone (same precision and layout) on tensors made beforehand: the
difference to resnetlab's end-to-end rate is what its data path and loop cost.

The images are written to a temporary folder: PNGs at 32 px for ResNet-20, JPEGs at 256 px
(``--jpeg-size``; resized to 224 on load) for ResNet-18 and ResNet-50. resnetlab decodes them once into its cache (time
reported apart; later runs and epochs read the cache); the plain side decodes every image every
epoch, as its recipe does. The cache row compares an epoch of data alone (no model): resnetlab's
second epoch (cache + augmentation) against the plain Dataset and DataLoader.
Sides alternate (plain, resnetlab, bare, plain, ...) so a change of load hits all of them; every
side runs with the same ``--threads`` and OpenMP settings (see contention.py for those) and the
DataLoader with no worker processes. The plain side runs in a process of its own, as a user's
script would: resnetlab's process-wide setting of the allocator (``keep_freed_memory``) is part
of its path and must not reach the plain side. ``--device cuda`` runs every
side on the GPU unchanged (the plain DataLoader pins its batches and copies them without blocking;
resnetlab's loader keeps a split that fits on the device), synchronizing before each clock reading.
Writes benchmarks/results/vs_plain_pytorch.json.
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from resnetlab.data.augment import BatchAugment
from resnetlab.data.bundle import DataBundle
from resnetlab.data.loader import BatchLoader
from resnetlab.data.sources import load_data
from resnetlab.models import create_model
from resnetlab.training.allocator import keep_freed_memory
from resnetlab.training.device import resolve_device, resolve_precision, set_threads, use_channels_last
from resnetlab.training.history import History
from resnetlab.training.loop import Compute, Control, StagePlan, Stages, TrainParts, fit
from resnetlab.training.losses import classification_loss
from resnetlab.training.monitor import Monitor
from resnetlab.training.optim import build_optimizer
from resnetlab.training.schedule import LrSchedule

sys.path.insert(0, str(Path(__file__).parent))
from contention import machine  # the machine record every benchmark JSON carries

RESULTS = Path(__file__).parent / "results"
# name: (model, image size, batch, file side on disk (JPEGs: --jpeg-size), format, default measured steps, target ratio)
CASES = {"r20": ("resnet20", 32, 128, 32, "png", 8, 2.0),
         "r18": ("resnet18", 224, 32, 256, "jpeg", 3, 2.5),
         "r50": ("resnet50", 224, 16, 256, "jpeg", 3, 2.5)}
WARMUP = 1  # steps before the clock starts: oneDNN picks its kernels on the first calls
CLASSES = 10
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # the ImageNet statistics course scripts use
DEVICE = torch.device("cpu")  # --device, set once in main()


def _clock() -> float:
    """The time once the device has finished what it was given (a GPU runs behind the host)."""
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)
    return time.perf_counter()


# ---------------------------------------------------------------------------- the image folders

def write_folder(root: Path, count: int, *, size: int, fmt: str, seed: int = 0) -> None:
    """``count`` training images (and a few validation ones) of smooth random colour with some grain."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", count), ("val", CLASSES)):
        for i in range(n):
            folder = root / split / f"class{i % CLASSES}"
            folder.mkdir(parents=True, exist_ok=True)
            coarse = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).resize((size, size),
                                                                                              Image.BICUBIC)
            grain = rng.normal(0, 12, (size, size, 3))
            pixels = np.clip(np.asarray(coarse, dtype=np.float32) + grain, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{i}.{'jpg' if fmt == 'jpeg' else 'png'}", quality=90)


# ---------------------------------------------------------------------------- plain recipe

class PlainFolder(torch.utils.data.Dataset):
    """The per-image Dataset of a course script: PIL open, resize, pad + random crop, flip, to tensor, normalize."""

    def __init__(self, paths: list[Path], labels: list[int], size: int) -> None:
        self.paths, self.labels, self.size = paths, labels, size
        self.mean, self.std = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image = Image.open(self.paths[i]).convert("RGB")
        if image.size != (self.size, self.size):
            image = image.resize((self.size, self.size), Image.BILINEAR)
        if self.size <= 64:  # the CIFAR recipe: 4-pixel padding and a random crop back to size
            padded = Image.new("RGB", (self.size + 8, self.size + 8))
            padded.paste(image, (4, 4))
            left, top = random.randint(0, 8), random.randint(0, 8)
            image = padded.crop((left, top, left + self.size, top + self.size))
        if random.random() < 0.5:
            image = image.transpose(Image.FLIP_LEFT_RIGHT)
        x = torch.from_numpy(np.array(image)).permute(2, 0, 1).float().div(255)
        return (x - self.mean) / self.std, self.labels[i]


def plain_loader(root: Path, ids: list[str], targets: np.ndarray, size: int, batch: int) -> torch.utils.data.DataLoader:
    dataset = PlainFolder([root / i for i in ids], [int(t) for t in targets], size)
    return torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=0, drop_last=True,
                                       pin_memory=DEVICE.type == "cuda")


def plain_rate(model_name: str, size: int, loader: torch.utils.data.DataLoader, steps: int) -> float:
    torch.manual_seed(0)
    model = create_model(model_name, num_classes=CLASSES, stem="cifar" if size <= 64 else "imagenet")
    model = model.to(DEVICE).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    times = []
    for i, (x, y) in enumerate(loader):
        if i == WARMUP:
            times.append(_clock())
        if i == WARMUP + steps:
            break
        x, y = x.to(DEVICE, non_blocking=True), y.to(DEVICE, non_blocking=True)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    times.append(_clock())
    return loader.batch_size * steps / (times[-1] - times[0])


# ---------------------------------------------------------------------------- resnetlab's path

def _setup(model_name: str, size: int) -> tuple[torch.nn.Module, torch.optim.Optimizer, torch.dtype | None, bool]:
    dtype = resolve_precision("auto", DEVICE)
    channels_last = use_channels_last("auto", dtype, DEVICE)
    torch.manual_seed(0)
    model = create_model(model_name, num_classes=CLASSES, stem="cifar" if size <= 64 else "imagenet").to(DEVICE)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model, build_optimizer(model, lr=0.01, weight_decay=5e-4), dtype, channels_last


def augment_for(bundle: DataBundle, seed: int = 0) -> BatchAugment:
    padding = 4 if bundle.image_size <= 64 else 0
    return BatchAugment(num_classes=CLASSES, mean=bundle.mean, std=bundle.std, seed=seed, hflip=0.5,
                        crop_padding=padding, device=DEVICE)


def resnetlab_rate(model_name: str, bundle: DataBundle, batch: int, steps: int) -> float:
    """Images/s of the training loop (cache, batched augmentation, step) over ``steps`` after the warm-up."""
    model, opt, dtype, channels_last = _setup(model_name, bundle.image_size)
    n = (WARMUP + steps) * batch
    loader = BatchLoader(bundle.train.images[:n], bundle.train.targets[:n], batch_size=batch,
                         device=DEVICE, shuffle=True, drop_last=True)
    times: list[float] = []
    parts = TrainParts(
        model=model, loader=loader, augment=augment_for(bundle), loss_fn=classification_loss(num_classes=CLASSES),
        optimizer=opt, schedule=lambda **kw: LrSchedule(name="none", **kw),
        stages=Stages(plans=[StagePlan(epochs=1, freeze="none", lr=0.01)]), evaluate=lambda: {"val/loss": 0.0},
        monitor=Monitor("val/loss"), history=History(), save=lambda kind, state: None,
        compute=Compute(device=DEVICE, amp_dtype=dtype, channels_last=channels_last),
        control=Control(after_step=[lambda: times.append(_clock())]))
    start = _clock()
    fit(parts)
    times.insert(0, start)
    return batch * steps / (times[WARMUP + steps] - times[WARMUP])


def bare_rate(model_name: str, size: int, batch: int, steps: int) -> float:
    """Images/s of resnetlab's model step alone on one batch made beforehand."""
    model, opt, dtype, channels_last = _setup(model_name, size)
    model.train()
    layout = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(batch, 3, size, size, device=DEVICE).contiguous(memory_format=layout)
    y = torch.randint(0, CLASSES, (batch,), device=DEVICE)
    loss_fn = classification_loss(num_classes=CLASSES)
    start = 0.0
    for i in range(WARMUP + steps):
        if i == WARMUP:
            start = _clock()
        with torch.autocast(DEVICE.type, dtype=dtype, enabled=dtype is not None):
            loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return batch * steps / (_clock() - start)


# ---------------------------------------------------------------------------- data alone

def resnetlab_data_rate(bundle: DataBundle, batch: int, *, augment: bool = True) -> float:
    """Images/s of resnetlab's second epoch of data: batches from the cache, through the augmentation
    (flips, then float and normalization, as the plain side's ToTensor + Normalize) unless ``augment=False``."""
    loader = BatchLoader(bundle.train.images, bundle.train.targets, batch_size=batch, device=DEVICE, shuffle=True)
    batch_augment = augment_for(bundle)
    for _ in loader:  # epoch 1 (the cache is already built: this only warms the page cache)
        pass
    start, seen = _clock(), 0
    for b in loader:
        if augment:
            batch_augment(b.images, b.targets)
        seen += len(b.index)
    return seen / (_clock() - start)


def plain_data_rate(loader: torch.utils.data.DataLoader) -> float:
    start, seen = _clock(), 0
    for x, _ in loader:
        x.to(DEVICE, non_blocking=True)
        seen += len(x)
    return seen / (_clock() - start)


# ---------------------------------------------------------------------------- the run

def _folder(tmp: Path, size: int, fmt: str, count: int) -> tuple[Path, DataBundle, dict]:
    """Write the folder, load it twice through resnetlab (decode into the cache, then open it)."""
    root = tmp / f"images{size}"
    write_folder(root, count, size=size, fmt=fmt)
    timing = {}
    for label in ("first_load_s", "cached_load_s"):
        start = time.perf_counter()
        bundle = load_data(str(root), image_size=224 if size > 64 else size, channels=3, test_ratio=0.0,
                           cache_dir=str(tmp / "cache"), log=lambda line: None)
        timing[label] = time.perf_counter() - start
    return root, bundle, timing


def plain_side(case: str, root: Path, ids: list[str], targets: np.ndarray, steps: int, threads: int,
               device: str) -> float:
    """The plain side of one case, run in the plain process."""
    global DEVICE
    DEVICE = torch.device(device)
    set_threads(threads)
    if case == "cache":
        return plain_data_rate(plain_loader(root, ids, targets, 224, 32))
    model, size, batch, *_ = CASES[case]
    return plain_rate(model, size, plain_loader(root, ids, targets, size, batch), steps)


def _sides(case: str, root: Path, bundle: DataBundle, steps: int,
           plain: Callable[..., float]) -> dict[str, Callable[[], float]]:
    """The measurements of one case, in the order they alternate."""
    plain_rate_here = functools.partial(plain, case, root, bundle.train.ids, bundle.train.targets, steps)
    if case == "cache":
        return {"plain": plain_rate_here, "resnetlab": lambda: resnetlab_data_rate(bundle, 32),
                "read": lambda: resnetlab_data_rate(bundle, 32, augment=False)}
    model, size, batch, *_ = CASES[case]
    return {"plain": plain_rate_here, "resnetlab": lambda: resnetlab_rate(model, bundle, batch, steps),
            "bare": lambda: bare_rate(model, size, batch, steps)}


def _medians(rates: dict[str, list[float]]) -> dict[str, float]:
    """Each side's median rate, and the ratios as the median of each round's own ratio: a round that
    other programs slowed down counts once, and the two sides of a ratio share their minutes."""
    out = {side: statistics.median(v) for side, v in rates.items()}
    out["ratio"] = statistics.median(r / p for r, p in zip(rates["resnetlab"], rates["plain"], strict=True))
    if "bare" in rates:
        out["vs_bare"] = statistics.median(r / b - 1 for r, b in zip(rates["resnetlab"], rates["bare"], strict=True))
    return out


def run(args: argparse.Namespace, tmp: Path) -> dict:
    cases = [c for c in args.cases.split(",") if c]
    steps = {name: args.steps or CASES[name][5] for name in CASES}
    folders = {}
    if "r20" in cases:
        folders["png"] = _folder(tmp, 32, "png", (WARMUP + steps["r20"]) * CASES["r20"][2])
    big = [(WARMUP + steps[c]) * CASES[c][2] for c in cases if c in ("r18", "r50")]
    if big or "cache" in cases:
        count = max(big + [args.cache_images if "cache" in cases else 0])
        folders["jpeg"] = _folder(tmp, args.jpeg_size, "jpeg", count)
    rates: dict[str, dict[str, list[float]]] = {c: {} for c in cases}
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        def plain(*case_args: object) -> float:
            return pool.submit(plain_side, *case_args, args.threads, str(DEVICE)).result()

        for round_ in range(args.rounds):
            for case in cases:
                root, bundle, _ = folders["jpeg" if case == "cache" else CASES[case][4]]
                for side, measure in _sides(case, root, bundle, steps.get(case, 0), plain).items():
                    rates[case].setdefault(side, []).append(measure())
                print(f"  round {round_ + 1}: {case} " + "  ".join(f"{s} {v[-1]:.1f}" for s, v in rates[case].items()),
                      flush=True)
    rows = []
    for case in cases:
        row = {"case": case, **_medians(rates[case]), "per_round": rates[case]}
        if case == "cache":
            row |= {"images": len(folders["jpeg"][1].train), "files": f"jpeg {args.jpeg_size} px",
                    "target": 10.0} | folders["jpeg"][2]
        else:
            model, size, batch, disk, fmt, _, target = CASES[case]
            files = f"png {disk} px" if fmt == "png" else f"jpeg {args.jpeg_size} px"
            row |= {"model": model, "size": size, "batch": batch, "steps": steps[case], "files": files,
                    "target": target} | folders[fmt][2]
        rows.append(row)
        print(_line(row))
    return {"rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default="r20,r18,r50,cache", help="comma-separated: r20, r18, r50, cache")
    parser.add_argument("--steps", type=int, default=0, help="measured steps per side (0: 8 for r20, 3 for 224 px)")
    parser.add_argument("--rounds", type=int, default=3, help="times each side is measured, alternating")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, the same for every side")
    parser.add_argument("--jpeg-size", type=int, default=256, help="side of the JPEGs written (loaded at 224 px)")
    parser.add_argument("--cache-images", type=int, default=256, help="JPEGs in the cache row's epoch")
    parser.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N, mps")
    parser.add_argument("--markdown", action="store_true", help="print the README table from the saved JSON")
    args = parser.parse_args()
    if args.markdown:
        print(markdown(json.loads((RESULTS / "vs_plain_pytorch.json").read_text())))
        return
    unknown = set(args.cases.split(",")) - set(CASES) - {"cache", ""}
    if unknown:
        parser.error(f"unknown case(s) {', '.join(sorted(unknown))}; choose from r20, r18, r50, cache")
    set_threads(args.threads)
    global DEVICE
    DEVICE = resolve_device(args.device)
    info = machine() | {"threads": args.threads, "device": str(DEVICE),
                        "bf16": resolve_precision("auto", DEVICE) is not None,
                        "kept_freed_memory": keep_freed_memory()}  # as resnetlab train does
    print(f"{info['cpu']}, {info['cores']} cores, torch {info['torch']}, {args.threads} thread(s), native bf16: "
          f"{info['bf16']}, freed memory kept: {info['kept_freed_memory']}, load average before {' '.join(f'{x:.2f}' for x in info['load_average'])}")
    with tempfile.TemporaryDirectory() as tmp:
        result = run(args, Path(tmp))
    info["load_average_after"] = os.getloadavg()
    print(f"load average after {' '.join(f'{x:.2f}' for x in info['load_average_after'])}")
    RESULTS.mkdir(exist_ok=True)
    command = "python benchmarks/vs_plain_pytorch.py " + " ".join(sys.argv[1:])
    (RESULTS / "vs_plain_pytorch.json").write_text(json.dumps({"machine": info, "command": command.strip(),
                                                               "rounds": args.rounds} | result, indent=1) + "\n")


def _line(row: dict) -> str:
    if row["case"] == "cache":
        return (f"decode-once cache, {row['images']} {row['files']} at 224 px, epoch 2 of data:  PIL per sample "
                f"{row['plain']:7.1f} img/s   resnetlab cache {row['resnetlab']:8.1f} img/s   "
                f"{row['ratio']:.1f}x (target >= {row['target']:g}x)   uint8 batches alone "
                f"{row['read']:8.1f} img/s; decoding into the cache {row['first_load_s']:.2f} s, opening it "
                f"{row['cached_load_s']:.2f} s")
    return (f"{row['model']}@{row['size']} b{row['batch']}:  plain {row['plain']:6.1f} img/s   resnetlab "
            f"{row['resnetlab']:6.1f}   {row['ratio']:.2f}x (target >= {row['target']:g}x)   "
            f"bare step {row['bare']:6.1f}, end to end {row['vs_bare']:+.1%}")


def markdown(saved: dict) -> str:
    """The README's table: img/s of each side and the ratios, with the machine and the command."""
    lines = [("| case | plain img/s | resnetlab img/s | resnetlab/plain (target) | bare step img/s "
              "| end to end vs bare (target within 5%) |"), "|---|---|---|---|---|---|"]
    for row in saved["rows"]:
        ratio = f"{row['ratio']:.2f}x (>= {row['target']:g}x)"
        if row["case"] == "cache":
            lines.append(f"| data only, epoch 2, {row['images']} {row['files']} at 224 px: PIL per sample vs the "
                         f"cache + batched flip and normalization | {row['plain']:.0f} | {row['resnetlab']:.0f} | "
                         f"{ratio} | uint8 batches alone: {row['read']:.0f} | first load (decoding into the "
                         f"cache) {row['first_load_s']:.1f} s, later loads {row['cached_load_s']:.2f} s |")
        else:
            lines.append(f"| {row['model']}@{row['size']} b{row['batch']} ({row['files']} files, {row['steps']} "
                         f"steps) | {row['plain']:.1f} | {row['resnetlab']:.1f} | {ratio} | {row['bare']:.1f} | "
                         f"{row['vs_bare']:+.1%} |")
    m = saved["machine"]
    lines.append(f"\n`{saved['command']}`: {m['cpu']}, {m['cores']} cores, torch {m['torch']}, "
                 f"{m['threads']} thread(s) per side, native bf16: {m['bf16']}, freed memory kept (resnetlab's "
                 f"side): {m.get('kept_freed_memory', False)}; load average (1, 5, 15 min) "
                 f"{', '.join(f'{x:.1f}' for x in m['load_average'])} before and "
                 f"{', '.join(f'{x:.1f}' for x in m['load_average_after'])} after; median of {saved['rounds']} "
                 "alternating round(s) (ratios: median of the rounds' own).")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
