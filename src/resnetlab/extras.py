"""Optional dependencies: each command that needs one says which extra installs it.

The core install trains, evaluates and predicts; Optuna (``search``), TensorBoard
(``tensorboard``), scikit-image (``baseline``) and ONNX (``export``) come with extras, ``all``
brings every one.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from resnetlab.errors import UserError


def require(module: str, *, extra: str, what: str) -> ModuleType:
    """Import ``module``, or raise a one-line UserError naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(f"{what} needs the {extra} extra: pip install 'resnetlab[{extra}]'") from None


def install_hint(extra: str) -> str:
    return f"pip install 'resnetlab[{extra}]'"
