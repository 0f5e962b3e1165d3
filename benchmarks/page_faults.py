"""Page faults and kernel time per training step, with glibc's default malloc and with resnetlab's
``keep_freed_memory``, one run.

    python benchmarks/page_faults.py [--model resnet18] [--size 224] [--batch 32] [--steps 3] [--rounds 2]

Each side runs in a fresh process (the setting is process-wide), one thread, bf16 + channels_last
as resnetlab trains on this CPU, and reports minor page faults, kernel (system) and user CPU seconds
per step from ``getrusage``, img/s and resident memory; sides alternate ``--rounds`` times.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time


def worker(model: str, size: int, batch: int, steps: int, keep: bool) -> None:
    import torch
    from _synthetic_step import synthetic_step

    from resnetlab.training.allocator import keep_freed_memory

    kept = keep_freed_memory() if keep else False
    torch.set_num_threads(1)
    step = synthetic_step(model, size=size, batch=batch, dtype=torch.bfloat16, channels_last=True)
    for _ in range(2):
        step()
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(steps):
        step()
    seconds, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"kept": kept, "faults": (after.ru_minflt - before.ru_minflt) / steps,
                      "system_s": (after.ru_stime - before.ru_stime) / steps,
                      "user_s": (after.ru_utime - before.ru_utime) / steps, "img_s": batch * steps / seconds,
                      "max_rss_mb": after.ru_maxrss / 1024}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--worker", choices=("default", "kept"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.model, args.size, args.batch, args.steps, args.worker == "kept")
        return
    print(f"{args.model}@{args.size} b{args.batch}, bf16 + channels_last, 1 thread, {args.steps} steps, "
          f"{args.rounds} round(s)")
    results: dict[str, list[dict]] = {"default": [], "kept": []}
    for round_ in range(args.rounds):
        for side, rows in results.items():
            out = subprocess.run([sys.executable, __file__, "--model", args.model, "--size", str(args.size),
                                  "--batch", str(args.batch), "--steps", str(args.steps), "--worker", side],
                                 capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            r = rows[-1]
            print(f"  round {round_ + 1}: {side:8s} {r['faults']:9.0f} faults/step  kernel {r['system_s']:.3f} s  "
                  f"user {r['user_s']:.3f} s  {r['img_s']:6.1f} img/s  max RSS {r['max_rss_mb']:.0f} MB", flush=True)
    med = {side: {k: statistics.median(r[k] for r in rows) for k in ("faults", "system_s", "img_s", "max_rss_mb")}
           for side, rows in results.items()}
    d, k = med["default"], med["kept"]
    print(f"\nmedians: faults/step {d['faults']:.0f} -> {k['faults']:.0f}; kernel s/step {d['system_s']:.3f} -> "
          f"{k['system_s']:.3f}; img/s {d['img_s']:.1f} -> {k['img_s']:.1f} ({k['img_s'] / d['img_s']:.2f}x); "
          f"max RSS {d['max_rss_mb']:.0f} -> {k['max_rss_mb']:.0f} MB; setting in force: "
          f"{all(r['kept'] for r in results['kept'])}")


if __name__ == "__main__":
    main()
