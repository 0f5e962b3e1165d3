"""One epoch of image loading: the decoded uint8 cache + batched loader vs decoding with PIL
every epoch (what a per-image Dataset with a DataLoader does), measured in the same run.

    python benchmarks/data_cache.py [--images 3000] [--size 64]

It writes an image folder of Fashion-MNIST pictures (or digits when the Debian package is
absent) as PNGs, then times: the first load (decode into the cache), a later run's load
(from the cache), an epoch of batches from the cache, and an epoch of per-image PIL decodes.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from resnetlab.config import build_config
from resnetlab.data.decode import decode_image
from resnetlab.data.loader import BatchLoader
from resnetlab.data.sources import load_data


def write_folder(root: Path, count: int) -> list[Path]:
    bundle = load_data(build_config(["data.source=fashion-mnist", "data.image_size=28", "data.cache=memory"]).data,
                       log=lambda line: None) if Path("/usr/share/datasets/fashion-mnist").is_dir() else \
        load_data(build_config(["data.source=digits", "data.image_size=28", "data.cache=memory"]).data,
                  log=lambda line: None)
    images, targets = bundle.train.images, bundle.train.targets
    paths = []
    for i in range(min(count, len(images))):
        folder = root / "train" / bundle.class_names[targets[i]].replace("/", "-")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{i}.png"
        Image.fromarray(images[i, 0]).resize((128, 128)).save(path)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "images"
        paths = write_folder(root, args.images)
        cfg = build_config([f"data.source={root}", f"data.image_size={args.size}", "data.channels=3",
                            f"data.cache_dir={tmp}/cache", "data.val_ratio=0.1", "data.test_ratio=0.0"]).data
        start = time.perf_counter()
        bundle = load_data(cfg, log=lambda line: None)
        first = time.perf_counter() - start
        start = time.perf_counter()
        bundle = load_data(cfg, log=lambda line: None)
        cached = time.perf_counter() - start

        loader = BatchLoader(bundle.train.images, bundle.train.targets, batch_size=128, device=torch.device("cpu"),
                             shuffle=True)
        start = time.perf_counter()
        seen = sum(len(batch.index) for batch in loader)
        epoch_cache = time.perf_counter() - start

        order = np.random.default_rng(0).permutation(len(paths))
        start = time.perf_counter()
        for i in order:  # the reference: open, decode, convert and resize every image, every epoch
            decode_image(paths[i], image_size=args.size, channels=3)
        epoch_pil = time.perf_counter() - start

    print(f"{len(paths)} PNGs of 128x128, cached at {args.size}px, 2 threads")
    print(f"  first load (decode into the cache)   {first:8.2f} s")
    print(f"  later runs (open the cache)          {cached:8.2f} s")
    print(f"  one epoch from the cache             {epoch_cache:8.3f} s  ({seen / epoch_cache:,.0f} img/s)")
    print(f"  one epoch decoding with PIL (ref.)   {epoch_pil:8.3f} s  ({len(paths) / epoch_pil:,.0f} img/s)")
    print(f"  => the cache serves an epoch {epoch_pil / epoch_cache:,.0f}x faster than decoding again")


if __name__ == "__main__":
    main()
