"""The one place model names are resolved: ``@register_model`` entrypoints by name.

Entrypoints are plain functions taking keyword options and returning an ``nn.Module``;
the registry never sees configuration objects.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable

from torch import nn

from resnetlab.errors import did_you_mean

ModelFn = Callable[..., nn.Module]

_MODELS: dict[str, ModelFn] = {}


def register_model(fn: ModelFn) -> ModelFn:
    """Register ``fn`` under its function name; use as a decorator."""
    name = fn.__name__
    if name in _MODELS and _MODELS[name] is not fn:
        raise ValueError(f"model '{name}' is registered twice ({_MODELS[name].__module__} and {fn.__module__})")
    _MODELS[name] = fn
    return fn


def list_models(pattern: str | None = None) -> list[str]:
    """Registered model names, sorted; ``pattern`` filters with shell wildcards ("resnet1*")."""
    names = sorted(_MODELS, key=_natural_key)
    if pattern is None:
        return names
    return [name for name in names if fnmatch.fnmatchcase(name, pattern)]


def is_model(name: str) -> bool:
    return name in _MODELS


def create_model(name: str, **kwargs: object) -> nn.Module:
    """Build the registered model ``name`` with its keyword options (num_classes=..., ...)."""
    fn = _MODELS.get(name)
    if fn is None:
        raise ValueError(f"unknown model '{name}'{did_you_mean(name, _MODELS)} (resnetlab summary --list shows all)")
    return fn(**kwargs)


def _natural_key(name: str) -> tuple[str, int]:
    # resnet20 before resnet110, resnet18 before resnet101: sort the trailing depth as a number
    stem = name.rstrip("0123456789")
    digits = name[len(stem):]
    return stem, int(digits) if digits else -1
