"""OpenMP's wait at a barrier: torch's default spin, sleeping at once (PASSIVE), and resnetlab's short
spin, at a fixed thread count, without and with a busy process, one run.

    python benchmarks/openmp_wait.py [--model resnet20] [--size 32] [--batch 128] [--steps 30]
                                     [--rounds 3] [--precision bf16] [--threads 2]

Each setting runs in a fresh process (torch reads the variables once, as it loads) that trains the
same model on the same batch at ``--threads`` threads (no controller: the wait policy alone),
alternating phases of ``--steps`` steps without and with a ``python -c "while True: pass"``
process (paused between phases with SIGSTOP/SIGCONT). Settings alternate ``--rounds`` times, so a
change of load hits all of them. Prints img/s per setting and the ratios against torch's default.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time

VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")
SETTINGS = {  # name: the environment torch starts with
    "torch default": {},
    "PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "resnetlab (PASSIVE + GOMP_SPINCOUNT=1000)": None,  # whatever importing resnetlab sets
}


def worker(model: str, size: int, batch: int, precision: str, steps: int, threads: int, busy_pid: int,
           resnetlab_first: bool) -> None:
    if resnetlab_first:
        import resnetlab  # noqa: F401  sets the OpenMP variables before torch loads
    import torch

    seen = {k: os.environ.get(k) for k in VARIABLES}  # what torch's OpenMP read as it loaded
    from _synthetic_step import synthetic_step  # imports resnetlab, which sets them only for later loads

    torch.set_num_threads(threads)
    dtype = torch.bfloat16 if precision == "bf16" else None
    step = synthetic_step(model, size=size, batch=batch, dtype=dtype, channels_last=dtype is not None)
    for _ in range(3):  # oneDNN picks its kernels on the first calls
        step()
    rates = {}
    for phase in ("idle", "contended"):
        os.kill(busy_pid, signal.SIGCONT if phase == "contended" else signal.SIGSTOP)
        time.sleep(0.2)
        start = time.perf_counter()
        for _ in range(steps):
            step()
        rates[phase] = batch * steps / (time.perf_counter() - start)
    os.kill(busy_pid, signal.SIGSTOP)
    print(json.dumps(rates | {"env": seen}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30, help="steps per phase")
    parser.add_argument("--rounds", type=int, default=3, help="times each setting runs, alternating")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="bf16")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.model, args.size, args.batch, args.precision, args.steps, args.threads, int(args.worker[0]),
               args.worker[1] == "resnetlab")
        return
    print(f"{args.model}@{args.size} b{args.batch} {args.precision}, {args.threads} threads, {args.steps} steps a "
          f"phase, {args.rounds} round(s); load average before {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    os.kill(busy.pid, signal.SIGSTOP)
    clean = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    rates: dict[str, dict[str, list[float]]] = {name: {"idle": [], "contended": []} for name in SETTINGS}
    common = ["--model", args.model, "--size", str(args.size), "--batch", str(args.batch), "--precision",
              args.precision, "--steps", str(args.steps), "--threads", str(args.threads)]
    try:
        for round_ in range(args.rounds):
            for name, env in SETTINGS.items():
                side = "resnetlab" if env is None else "torch"
                out = subprocess.run([sys.executable, __file__, *common, "--worker", str(busy.pid), side],
                                     env=clean | (env or {}), capture_output=True, text=True, check=True)
                result = json.loads(out.stdout.strip().splitlines()[-1])
                for phase in ("idle", "contended"):
                    rates[name][phase].append(result[phase])
                print(f"  round {round_ + 1}: {name:44s} idle {result['idle']:7.1f}  contended "
                      f"{result['contended']:7.1f}   ({', '.join(f'{k}={v}' for k, v in result['env'].items() if v)})",
                      flush=True)
    finally:
        busy.kill()
        busy.wait()
    base = {phase: statistics.median(rates["torch default"][phase]) for phase in ("idle", "contended")}
    print("\nmedian img/s (vs torch's default):")
    for name, phase_rates in rates.items():
        idle, contended = (statistics.median(phase_rates[p]) for p in ("idle", "contended"))
        print(f"  {name:44s} idle {idle:7.1f} ({idle / base['idle']:.2f}x)   contended {contended:7.1f} "
              f"({contended / base['contended']:.2f}x)")


if __name__ == "__main__":
    main()
