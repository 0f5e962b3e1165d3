"""How long the command line takes to answer, against the Python start-up and `import torch` it used to pay.

    python benchmarks/cli_startup.py [--runs 10]

Each command runs in a fresh interpreter (`python -m resnetlab ...`, the code on sys.path) `--runs`
times, interleaved so a busy machine slows all of them alike; the median is printed with its
ratio to `import torch`. `--help` of any command must not import torch (tests/cli/test_help.py);
`--version` does, on purpose (it names the torch build, device and precision).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "python -c pass": ["-c", "pass"],
    "python -c 'import torch'": ["-c", "import torch"],
    "resnetlab --help": ["-m", "resnetlab", "--help"],
    "resnetlab train --help": ["-m", "resnetlab", "train", "--help"],
    "resnetlab config --keys": ["-m", "resnetlab", "config", "--keys"],
    "resnetlab --version": ["-m", "resnetlab", "--version"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="runs of each command (default 10)")
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.runs):
        for name, argv in COMMANDS.items():
            start = time.perf_counter()
            subprocess.run([sys.executable, *argv], check=True, stdout=subprocess.DEVNULL)
            times[name].append(time.perf_counter() - start)
    torch_s = statistics.median(times["python -c 'import torch'"])
    for name, seconds in times.items():
        median = statistics.median(seconds)
        print(f"{name:28} {median:6.3f} s median of {args.runs}   {median / torch_s:5.2f}x import torch")


if __name__ == "__main__":
    main()
