"""Training throughput beside a busy process: resnetlab's threading against a plain PyTorch loop, one run.

    python benchmarks/contention.py [--steps 24] [--rounds 2] [--quick]

For each case (ResNet-20 at 32 px batch 128 and ResNet-18 at 32 px batch 64, fp32 and bf16) two
worker processes train the same model on the same batch:
- plain: torch imported first, its defaults (one thread per core, OpenMP's default wait policy);
- resnetlab: resnetlab imported first (a short OpenMP spin, then sleep, unless set), the thread count from
  ``start_threads`` and the step-time ``ThreadController`` running as in ``resnetlab train``.
Each worker alternates idle and contended phases of ``--steps`` steps, ``--rounds`` times; the
contention is a ``python -c "while True: pass"`` process started here, paused between phases
(SIGSTOP/SIGCONT), so a worker's idle and contended phases are measured minutes apart at most and
the two sides alternate. The contended phase includes the controller's reaction to the new load, and
so does every idle phase after the first ("idle after load": the controller climbing back to the
freed core); the first idle phase is the steady idle rate. Prints img/s and the ratios and writes
benchmarks/results/contention.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

CASES = [("resnet20", 32, 128, "fp32"), ("resnet20", 32, 128, "bf16"),
         ("resnet18", 32, 64, "fp32"), ("resnet18", 32, 64, "bf16")]
RESULTS = Path(__file__).parent / "results"


def worker(side: str, model_name: str, size: int, batch: int, precision: str, steps: int, rounds: int,
           busy_pid: int) -> None:
    """Runs in its own process: the import order decides which OpenMP settings torch starts with."""
    if side == "resnetlab":
        import resnetlab  # noqa: F401  sets the OpenMP wait policy before torch loads
    import torch
    from _synthetic_step import synthetic_step

    from resnetlab.training.threads import start_threads

    controller = None
    if side == "resnetlab":
        controller = start_threads(0, device=torch.device("cpu"), log=lambda line: print(line, file=sys.stderr))
    dtype = torch.bfloat16 if precision == "bf16" else None
    step = synthetic_step(model_name, size=size, batch=batch, dtype=dtype, channels_last=dtype is not None,
                          after=controller.step_done if controller is not None else None)

    for _ in range(3):  # oneDNN picks its kernels on the first calls
        step()
    rates: dict[str, list[float]] = {"idle": [], "contended": []}
    for _ in range(rounds):
        for phase in ("idle", "contended"):
            os.kill(busy_pid, signal.SIGCONT if phase == "contended" else signal.SIGSTOP)
            start = time.perf_counter()
            for _ in range(steps):
                step()
            rates[phase].append(batch * steps / (time.perf_counter() - start))
    os.kill(busy_pid, signal.SIGSTOP)
    after = rates["idle"][1:]
    print(json.dumps({"idle": rates["idle"][0], "idle_after_load": sum(after) / len(after) if after else None,
                      "contended": sum(rates["contended"]) / rounds, "threads_end": torch.get_num_threads()}))


def machine() -> dict:
    import platform

    import torch

    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
            "load_average": os.getloadavg()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=24, help="optimizer steps per phase")
    parser.add_argument("--rounds", type=int, default=2, help="idle/contended pairs per worker")
    parser.add_argument("--quick", action="store_true", help="ResNet-20 cases only")
    parser.add_argument("--precision", choices=("fp32", "bf16"), help="only the cases at this precision")
    parser.add_argument("--markdown", action="store_true", help="print the README table from the saved JSON "
                        "(contention.json, or contention_<precision>.json with --precision)")
    parser.add_argument("--worker", nargs=7, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.markdown:
        name = f"contention{'_' + args.precision if args.precision else ''}.json"
        print(markdown(json.loads((RESULTS / name).read_text())))
        return
    if args.worker:
        side, model, size, batch, precision, steps, pid = args.worker
        worker(side, model, int(size), int(batch), precision, int(steps), args.rounds, int(pid))
        return
    info = machine()
    print(f"{info['cpu']}, {info['cores']} cores, torch {info['torch']}, load average before "
          f"{' '.join(f'{x:.2f}' for x in info['load_average'])}")
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    os.kill(busy.pid, signal.SIGSTOP)
    # Workers get a clean environment for the OpenMP settings: the user's own would decide both sides.
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME",
                                                            "OMP_NUM_THREADS")}
    rows = []
    try:
        cases = [c for c in CASES if (not args.quick or c[0] == "resnet20") and args.precision in (None, c[3])]
        for model, size, batch, precision in cases:
            row = {"model": model, "size": size, "batch": batch, "precision": precision}
            for side in ("plain", "resnetlab"):
                out = subprocess.run([sys.executable, __file__, "--rounds", str(args.rounds), "--worker", side, model,
                                      str(size), str(batch), precision, str(args.steps), str(busy.pid)],
                                     env=env, capture_output=True, text=True, check=True)
                row[side] = json.loads(out.stdout.strip().splitlines()[-1])
                for line in out.stderr.strip().splitlines():
                    print(f"    [{side}] {line}")
            rows.append(row)
            print(_line(row), flush=True)
    finally:
        busy.kill()
        busy.wait()
    info["load_average_after"] = os.getloadavg()
    print(f"load average after {' '.join(f'{x:.2f}' for x in info['load_average_after'])}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"contention{'_' + args.precision if args.precision else ''}.json").write_text(json.dumps({"machine": info, "steps": args.steps,
                                                         "rounds": args.rounds, "rows": rows}, indent=1) + "\n")


def markdown(saved: dict) -> str:
    """The README's table: img/s without and with the busy process, and the ratios."""
    lines = [("| case | plain idle | resnetlab idle | resnetlab/plain, idle | plain contended | resnetlab contended "
             "| resnetlab/plain, contended | resnetlab idle after load (/plain) |"), "|---|---|---|---|---|---|---|---|"]
    for row in saved["rows"]:
        p, r = row["plain"], row["resnetlab"]
        lines.append(f"| {row['model']}@{row['size']} b{row['batch']} {row['precision']} | {p['idle']:.1f} | "
                     f"{r['idle']:.1f} | {r['idle'] / p['idle']:.2f}x | {p['contended']:.1f} "
                     f"({p['contended'] / p['idle']:.0%}) | {r['contended']:.1f} ({r['contended'] / r['idle']:.0%}) | "
                     f"{r['contended'] / p['contended']:.2f}x | {_after(row)} |")
    m = saved["machine"]
    lines.append(f"\n{m['cpu']}, {m['cores']} cores, torch {m['torch']}; load average (1, 5, 15 min) "
                 f"{', '.join(f'{x:.1f}' for x in m['load_average'])} before and "
                 f"{', '.join(f'{x:.1f}' for x in m['load_average_after'])} after; {saved['steps']} steps "
                 f"per phase, {saved['rounds']} round(s).")
    return "\n".join(lines)


def _after(row: dict) -> str:
    """resnetlab's idle rate in the phases after a contended one, against the plain loop's."""
    p, r = row["plain"], row["resnetlab"]
    if r.get("idle_after_load") is None:
        return "-"
    return f"{r['idle_after_load']:.1f} ({r['idle_after_load'] / (p['idle_after_load'] or p['idle']):.2f}x)"


def _line(row: dict) -> str:
    p, r = row["plain"], row["resnetlab"]
    return (f"{row['model']}@{row['size']} b{row['batch']} {row['precision']}:  plain idle {p['idle']:6.1f} "
            f"contended {p['contended']:6.1f} ({p['contended'] / p['idle']:4.0%})   resnetlab idle {r['idle']:6.1f} "
            f"contended {r['contended']:6.1f} ({r['contended'] / r['idle']:4.0%}, {r['threads_end']} threads)   "
            f"resnetlab/plain idle {r['idle'] / p['idle']:.2f}x contended {r['contended'] / p['contended']:.2f}x   "
            f"idle after load {_after(row)}")


if __name__ == "__main__":
    main()
