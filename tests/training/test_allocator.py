"""Freed memory is kept for reuse: repeated large allocations stop faulting pages in."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from resnetlab.training import allocator

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                                reason="glibc's malloc only")

# 8 rounds of a 64 MiB tensor written and freed, after 4 that settle the heap (with the setting,
# glibc faults the block in twice before it stays): page faults per round, with and without it.
PROBE = """
import json, resource, sys
import torch
from resnetlab.training.allocator import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else None
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
    torch.empty(16 << 20).fill_(1.0)
before = faults()
for _ in range(8):
    torch.empty(16 << 20).fill_(1.0)
print(json.dumps({"kept": kept, "faults": (faults() - before) / 8}))
"""


def probe(mode: str, **env: str) -> dict:
    src = os.path.join(os.path.dirname(__file__), "..", "..", "src")
    clean = {k: v for k, v in os.environ.items() if k not in allocator.USER_SETTINGS}
    out = subprocess.run([sys.executable, "-c", PROBE, mode], env={**clean, "PYTHONPATH": src, **env},
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_a_large_tensor_freed_and_allocated_again_reuses_its_pages():
    default, kept = probe("default"), probe("keep")
    pages = (64 << 20) // os.sysconf("SC_PAGE_SIZE")
    if default["faults"] < pages / 8:
        pytest.skip("the kernel maps this memory in huge pages: too few faults to tell the two apart")
    assert default["faults"] > pages / 2  # glibc hands the 64 MiB back and faults it in again each round
    assert kept["kept"] is True and kept["faults"] < pages / 50


def test_the_users_own_malloc_settings_win():
    assert probe("keep", MALLOC_MMAP_THRESHOLD_="131072")["kept"] is False
