"""Freed memory kept for the next step instead of handed back to the kernel (glibc's malloc).

PyTorch's CPU tensors come from malloc. glibc serves an allocation above its mmap threshold (which
it raises as large blocks are freed, up to 32 MiB) with fresh pages from the kernel and unmaps them
on free, so a training step at 224 px faults in its largest activations and gradients page by page,
every step. With the threshold lifted and the heap not trimmed, the next step reuses the last one's
memory: ResNet-18 at 224 px, batch 32, one thread went from 95,000 to 2,000 page faults and from
0.14 to 0.02 s of kernel time per step, 1.13x the img/s, for about 90 MB more resident memory
(``benchmarks/page_faults.py``, idle machine). Small images gain nothing (their blocks stay under
the threshold) and lose nothing.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys

_M_TRIM_THRESHOLD = -1  # <malloc.h>
_M_MMAP_THRESHOLD = -3
# The user's own malloc settings win, as their OpenMP settings do (resnetlab/__init__.py).
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES", "LD_PRELOAD")

_done: bool | None = None


def keep_freed_memory() -> bool:
    """Lift glibc's mmap threshold and stop it trimming the heap, once per process.

    True when the setting is in force; False on other C libraries and systems (macOS, Windows,
    musl), or where the user chose their own allocator settings.
    """
    global _done
    if _done is None:
        _done = _apply()
    return _done


def _apply() -> bool:
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    if any(name in os.environ for name in USER_SETTINGS):
        return False
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:
        return False
    # Older glibc refuse a threshold above 32 MiB (half their largest heap); then that is the most.
    lifted = mallopt(_M_MMAP_THRESHOLD, 1 << 30) == 1 or mallopt(_M_MMAP_THRESHOLD, 32 << 20) == 1
    return lifted and mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1
