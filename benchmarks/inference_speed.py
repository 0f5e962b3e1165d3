"""Inference throughput of `resnetlab eval`/`predict`'s path: fp32 vs bf16 + channels_last, eager vs compiled.

    python benchmarks/inference_speed.py [--model resnet18] [--size 64] [--batch 128] [--images 2048]

Every setting runs the same model over the same uint8 images through `run_model` (the code
eval and predict use). The first pass warms up (and, with --compile, compiles: its time is
printed apart); the second is timed. Prints images/s, the ratio against fp32 eager, and the
largest difference of the logits from the reference.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from resnetlab.data.loader import BatchLoader
from resnetlab.evaluation.inference import run_model
from resnetlab.models import create_model
from resnetlab.training.device import _cpu_has_bf16, set_threads


def measure(model: torch.nn.Module, images: np.ndarray, batch: int, dtype: torch.dtype | None,
            channels_last: bool, compile: bool) -> tuple[float, float, np.ndarray]:
    """(images/s of the timed pass, seconds of the first pass, logits)."""
    loader = BatchLoader(images, np.zeros(len(images), dtype=np.int64), batch_size=batch, device=torch.device("cpu"))
    prepare = lambda x: x.float().div_(255.0)
    if compile:  # one compiled module for both passes, as eval and predict keep it for a whole run
        model = torch.compile(model)
    start = time.perf_counter()
    run_model(model, loader, prepare=prepare, amp_dtype=dtype, channels_last=channels_last)
    first = time.perf_counter() - start
    start = time.perf_counter()
    out = run_model(model, loader, prepare=prepare, amp_dtype=dtype, channels_last=channels_last)
    return len(images) / (time.perf_counter() - start), first, out.outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--images", type=int, default=2048)
    args = parser.parse_args()
    threads = set_threads(0)
    print(f"{args.model} at {args.size}px, {args.images} images in batches of {args.batch}, {threads} threads, "
          f"native bf16: {_cpu_has_bf16()}")
    images = np.random.default_rng(0).integers(0, 256, size=(args.images, 3, args.size, args.size), dtype=np.uint8)
    settings = [("fp32 eager (reference)", None, False, False),
                ("bf16 + channels_last (the default)", torch.bfloat16, True, False),
                ("bf16 + channels_last + --compile", torch.bfloat16, True, True)]
    reference_rate, reference_out = None, None
    for label, dtype, cl, compile in settings:
        torch.manual_seed(0)
        model = create_model(args.model, num_classes=10, stem="cifar" if args.size <= 64 else "imagenet").eval()
        rate, first, out = measure(model, images, args.batch, dtype, cl, compile)
        if reference_rate is None:
            reference_rate, reference_out = rate, out
        diff = float(np.abs(out - reference_out).max())
        note = f"   first pass {first:.1f}s (compiling)" if compile else ""
        print(f"  {label:36} {rate:8.1f} img/s   {rate / reference_rate:5.2f}x   max |logit diff| {diff:.3f}{note}")


if __name__ == "__main__":
    main()
