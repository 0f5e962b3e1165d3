"""Config keys as the command line shows them: default, accepted values and meaning, read from the schema."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any

from resnetlab.config import Config, all_keys, to_dict

_NAMES = {int: "int", float: "number", str: "text", bool: "bool"}


@dataclass(frozen=True)
class KeyInfo:
    key: str
    default: Any
    accepted: str  # e.g. "{sgd, adam, adamw}", "int >= 1", "number in [0, 1]"
    help: str
    kind: Any  # the type hint


def key_infos() -> list[KeyInfo]:
    defaults = to_dict(Config())
    infos = []
    for key in all_keys():
        section, name = key.split(".", 1)
        cls = typing.get_type_hints(Config)[section]
        field = next(f for f in dataclasses.fields(cls) if f.name == name)
        kind = typing.get_type_hints(cls)[name]
        infos.append(KeyInfo(key, defaults[section][name], accepted(kind, field.metadata), field.metadata.get("help", ""),
                             kind))
    return infos


def is_switch(key: str) -> bool:
    return any(info.key == key and info.kind is bool for info in key_infos())


def accepted(kind: Any, meta: typing.Mapping) -> str:
    """What a key takes, from its type hint and its schema metadata."""
    if meta.get("choices"):
        return "{" + ", ".join("none" if c is None else str(c) for c in meta["choices"]) + "}"
    args = typing.get_args(kind)
    optional = type(None) in args and (typing.get_origin(kind) in (typing.Union, types.UnionType))
    if optional:
        kind = next(a for a in args if a is not type(None))
    text = _describe(kind, meta)
    return f"{text} | none" if optional else text


def _describe(kind: Any, meta: typing.Mapping) -> str:
    if kind is bool:
        return "{true, false}"
    if typing.get_origin(kind) is list:
        (item,) = typing.get_args(kind)
        if dataclasses.is_dataclass(item):
            return "[{" + ", ".join(f.name for f in dataclasses.fields(item)) + "}, ...]"
        return f"[{_NAMES.get(item, str(item))}, ...]"
    name = _NAMES.get(kind, str(kind))
    low, high = meta.get("min"), meta.get("max")
    if low is not None and high is not None:
        return f"{name} in [{low:g}, {high:g}]"
    if low is not None:
        return f"{name} >= {low:g}"
    if high is not None:
        return f"{name} <= {high:g}"
    return name
