"""The optional packages of the ``[export]`` extra, imported with a one-line error naming the extra."""

from __future__ import annotations

import importlib
from types import ModuleType

from resnetlab.errors import UserError

EXTRA_INSTALL = "pip install 'resnetlab[export]'"


def require(module: str, *, doing: str) -> ModuleType:
    """Import ``module`` or say which extra installs it (``doing`` names what needed it: "ONNX export")."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(f"{doing} needs the package {module.split('.')[0]}, which is not installed; "
                        f"install it with: {EXTRA_INSTALL}") from None
