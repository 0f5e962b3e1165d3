"""resnetlab: train, evaluate and compare ResNet image models.

    import resnetlab
    result = resnetlab.train(overrides=["preset=quick"])
    print(result.run_dir, result.test)
"""

from __future__ import annotations

from typing import Any

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


__all__ = [*_API, "build_config", "Config", "__version__"]
