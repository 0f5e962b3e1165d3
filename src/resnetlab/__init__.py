"""resnetlab: train, evaluate and compare ResNet image models.

    import resnetlab
    result = resnetlab.train(overrides=["preset=quick"])
    print(result.run_dir, result.test)
"""

from __future__ import annotations

import os
from typing import Any

# Before torch loads (it reads these once): OpenMP threads waiting at a barrier spin only briefly
# (GNU OpenMP: 1,000 rounds, a few microseconds) and then sleep, so a core another process needs is
# not burnt waiting for it. Beside one busy process on 2 cores, the long default spin cut ResNet-20
# training to a tenth of its idle speed (benchmarks/contention.py); sleeping at once (PASSIVE) cost
# 10-15% on the idle machine, which the short spin wins back. PASSIVE is for the OpenMP runtimes
# that ignore GOMP_SPINCOUNT (LLVM's and Intel's). A user's own setting of any of them wins.
if not any(name in os.environ for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")):
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    os.environ["GOMP_SPINCOUNT"] = "1000"

__version__ = "0.1.0"

_API = ("train", "evaluate", "predict", "summary", "export", "explain", "TrainResult", "build_model")


def __getattr__(name: str) -> Any:
    # torch and the data stack load on first use, so `resnetlab --help` answers at once.
    if name in _API:
        from resnetlab import api

        return getattr(api, name)
    if name in ("build_config", "Config"):
        from resnetlab import config

        return getattr(config, name)
    raise AttributeError(f"module 'resnetlab' has no attribute {name!r}")


__all__ = ["Config", "TrainResult", "__version__", "build_config", "build_model", "evaluate", "predict", "summary",
           "train"]
