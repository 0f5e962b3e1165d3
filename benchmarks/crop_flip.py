"""Crops and flips on uint8 batches: one gather per axis over the batch against one copy per image,
at several image sizes, one run (the CPU path of ``BatchAugment`` switches at 64 x 64 px).

    python benchmarks/crop_flip.py [--repeats 20] [--threads 1]

Both ways draw the same random numbers and give bit-identical images (checked here on every
case); prints milliseconds per batch and the ratio.
"""

from __future__ import annotations

import argparse
import time

import torch

from resnetlab.data import augment as batch_augment

CASES = [(28, 256), (32, 128), (48, 128), (64, 64), (96, 64), (224, 32)]  # (side, batch)
SETTINGS = [{"hflip": 0.5}, {"hflip": 0.5, "crop_padding": 4}, {"hflip": 0.5, "vflip": 0.5, "crop_padding": 2}]


def milliseconds(fn, repeats: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{args.threads} thread(s); ms per batch, gathers vs one copy per image (ratio: gathers / per image)")
    threshold = batch_augment._PER_IMAGE_PIXELS
    try:
        for side, batch in CASES:
            x = torch.randint(0, 256, (batch, 3, side, side), dtype=torch.uint8)
            for settings in SETTINGS:
                times, outputs = {}, {}
                for way, pixels in (("gathers", 1 << 62), ("per image", 0)):
                    batch_augment._PER_IMAGE_PIXELS = pixels
                    aug = batch_augment.BatchAugment(num_classes=10, mean=(0.5,) * 3, std=(0.25,) * 3, seed=0,
                                                     **settings)
                    outputs[way] = aug._crop_and_flip(x)
                    times[way] = milliseconds(lambda aug=aug, x=x: aug._crop_and_flip(x), args.repeats)
                assert torch.equal(outputs["gathers"], outputs["per image"]), (side, settings)
                chosen = "per image" if side * side >= threshold else "gathers"
                print(f"  {side:3d} px x {batch:3d}  {', '.join(f'{k}={v}' for k, v in settings.items()):34s} "
                      f"gathers {times['gathers']:6.2f}  per image {times['per image']:6.2f}  "
                      f"{times['gathers'] / times['per image']:5.2f}x   (resnetlab uses {chosen})")
    finally:
        batch_augment._PER_IMAGE_PIXELS = threshold


if __name__ == "__main__":
    main()
