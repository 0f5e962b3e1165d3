"""Training throughput of fp32 vs bf16 autocast (+ channels_last) on this machine, same run.

    python benchmarks/precision_speed.py [--model resnet18] [--size 32] [--batch 64] [--steps 10]

Prints images/s for each setting and the ratio against the fp32 reference.
"""

from __future__ import annotations

import argparse
import time

import torch
from _synthetic_step import synthetic_step

from resnetlab.training.device import _cpu_has_bf16, set_threads


def measure(model_name: str, size: int, batch: int, steps: int, dtype: torch.dtype | None, channels_last: bool) -> float:
    step = synthetic_step(model_name, size=size, batch=batch, dtype=dtype, channels_last=channels_last)

    for _ in range(2):  # warm-up: oneDNN picks kernels on the first calls
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    threads = set_threads(0)
    print(f"{args.model} at {args.size}px, batch {args.batch}, {threads} threads, native bf16: {_cpu_has_bf16()}")
    settings = [("fp32 (reference)", None, False), ("fp32 + channels_last", None, True),
                ("bf16 autocast", torch.bfloat16, False), ("bf16 + channels_last (auto)", torch.bfloat16, True)]
    reference = None
    for label, dtype, cl in settings:
        rate = measure(args.model, args.size, args.batch, args.steps, dtype, cl)
        reference = reference or rate
        print(f"  {label:30} {rate:8.1f} img/s   {rate / reference:5.2f}x")


if __name__ == "__main__":
    main()
