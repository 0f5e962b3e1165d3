"""Inference throughput of an exported ONNX file in ONNX Runtime against the same model in PyTorch.

    python benchmarks/onnx_inference.py [--model resnet18] [--size 64] [--batch 64] [--images 1024] [--threads 1]

The model (random weights, eval mode) is written by the code `resnetlab export` uses, with the same
dynamic batch axis, then both run the same normalized images batch by batch, in fp32 on the CPU with
the same thread count. The two are timed in alternating rounds (best of --rounds each), so a busy
machine slows both alike. Prints images/s of each, their ratio and the largest output difference.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from resnetlab.deploy import ModelCard, write_model
from resnetlab.deploy.onnx_model import OnnxModel
from resnetlab.models import create_model


def timed(run, batches: list[np.ndarray]) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    outputs = [run(batch) for batch in batches]
    return time.perf_counter() - start, np.concatenate(outputs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = create_model(args.model, num_classes=10, in_channels=3).eval()
    card = ModelCard(task="classification", class_names=[str(i) for i in range(10)], input_size=args.size,
                     channels=3, mean=[0.5] * 3, std=[0.25] * 3, model=args.model)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.images, 3, args.size, args.size), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.onnx"
        start = time.perf_counter()
        write_model(model, card, path, fmt="onnx")
        print(f"export: {time.perf_counter() - start:.1f} s, {path.stat().st_size / 2**20:.1f} MiB")
        onnx_model = OnnxModel(path, threads=args.threads)
        inputs = onnx_model.prepare(images)
        batches = [inputs[i:i + args.batch] for i in range(0, len(inputs), args.batch)]

        def torch_run(batch: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return model(torch.from_numpy(batch)).numpy()

        runners = {"pytorch": torch_run, "onnxruntime": onnx_model.run}
        for run in runners.values():  # warm-up: allocator, oneDNN and ORT kernel selection
            run(batches[0])
        best = {name: float("inf") for name in runners}
        outputs: dict[str, np.ndarray] = {}
        for _ in range(args.rounds):
            for name, run in runners.items():
                seconds, outputs[name] = timed(run, batches)
                best[name] = min(best[name], seconds)
    rates = {name: args.images / seconds for name, seconds in best.items()}
    print(f"{args.model} at {args.size} px, batch {args.batch}, {args.images} images, {args.threads} thread(s), "
          f"best of {args.rounds}")
    for name, rate in rates.items():
        print(f"  {name:12} {rate:8.1f} img/s")
    print(f"  onnxruntime / pytorch: {rates['onnxruntime'] / rates['pytorch']:.2f}x")
    print(f"  max |onnxruntime - pytorch| = {np.abs(outputs['onnxruntime'] - outputs['pytorch']).max():.3g}")


if __name__ == "__main__":
    main()
