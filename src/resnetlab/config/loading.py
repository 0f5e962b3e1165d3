"""Build a validated :class:`Config` from presets, YAML files and dotted overrides.

Order of precedence, lowest first: schema defaults, ``preset=NAME`` (presets may name a
``base`` preset), ``config=FILE.yaml``, then ``key.sub=value`` overrides in the order given.
Every problem is a :class:`UserError` naming the key or file and what is accepted.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from resnetlab.atomic_write import write_text
from resnetlab.config.schema import Config
from resnetlab.errors import UserError, did_you_mean, shorten

_NONE_WORDS = {"none", "null", "~", ""}
_TRUE_WORDS = {"true", "yes", "on", "1"}
_FALSE_WORDS = {"false", "no", "off", "0"}


# ---------------------------------------------------------------- presets and files


def list_presets() -> list[str]:
    folder = resources.files("resnetlab.config") / "presets"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def describe_preset(name: str) -> str:
    """The first line of the preset's leading comment (what it is for); "" if it has none."""
    text = (resources.files("resnetlab.config") / "presets" / f"{name}.yaml").read_text()
    first = text.lstrip().splitlines()[0] if text.strip() else ""
    return first.lstrip("#").strip() if first.startswith("#") else ""


def read_preset(name: str) -> dict[str, Any]:
    """The preset's own keys merged over its ``base`` chain (not yet validated)."""
    presets = list_presets()
    if name not in presets:
        hint = _closest(name, presets)
        raise UserError(f"unknown preset '{name}'{hint}; presets: {', '.join(presets)}")
    text = (resources.files("resnetlab.config") / "presets" / f"{name}.yaml").read_text()
    data = yaml.safe_load(text) or {}
    base = data.pop("base", None)
    return _merge(read_preset(base), data) if base else data


class AliasRefused(yaml.YAMLError):
    """A YAML alias (``*name``): refused, since nested aliases expand to gigabytes from a few bytes."""

    def __init__(self, mark: Any) -> None:
        super().__init__("YAML aliases are not accepted")
        self.problem_mark = mark


class _NoAliasLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses aliases before anything is expanded (anchors alone are harmless)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise AliasRefused(self.peek_event().start_mark)
        return super().compose_node(parent, index)


def safe_yaml(text: str) -> Any:
    """``yaml.safe_load`` without aliases: what every user-given YAML text is read with."""
    return yaml.load(text, Loader=_NoAliasLoader)  # a SafeLoader that refuses aliases


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file {path} not found; give the path of a YAML file")
    try:
        data = safe_yaml(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise UserError(f"config file {path} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
                        f"{exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise UserError(f"config file {path} cannot be read ({exc.strerror}); check its permissions") from None
    except AliasRefused as exc:
        raise UserError(f"config file {path} uses a YAML alias (*name) at line {exc.problem_mark.line + 1}; "
                        "aliases are not accepted: write the value out") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise UserError(f"config file {path} is not valid YAML{where}; fix the syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping of sections (model:, data:, ...)")
    base = data.pop("preset", None) or data.pop("base", None)
    return _merge(read_preset(base), data) if base else data


# ---------------------------------------------------------------- overrides


def parse_overrides(tokens: Iterable[str]) -> dict[str, Any]:
    """Turn ``["preset=x", "optim.lr=0.01"]`` into a nested dict, files and presets expanded.

    Presets and files are layered first, in the order given, then every ``key=value`` in order:
    a key typed out wins over any preset wherever it stands (``train.epochs=1 preset=quick``
    trains one epoch, as it reads).
    """
    layers: dict[str, Any] = {}
    keys: dict[str, Any] = {}
    for token in tokens:
        key, sep, raw = token.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"cannot read '{token}': overrides are key=value, e.g. optim.lr=0.01")
        if key == "preset":
            layers = _merge(layers, read_preset(raw.strip()))
        elif key == "config":
            data = read_yaml(raw.strip())
            from_dict(Config, data, source=raw.strip())  # on its own first, so an error names the file
            layers = _merge(layers, data)
        else:
            keys = _merge(keys, _nest(key.split("."), _parse_value(raw)))
    return _merge(layers, keys)


def build_config(overrides: Iterable[str] = (), *, base: dict[str, Any] | None = None,
                 settings: Mapping[str, Any] | None = None) -> Config:
    """The validated config from a base mapping (e.g. a saved run), override tokens, then ``settings``.

    ``settings`` maps dotted keys to values (``{"optim.lr": 1e-3, "train.seed": 1}``) and is laid
    over everything else as it is, values never written out as text and parsed back: how studies
    and searches put a variant's keys over the user's overrides.
    """
    data = _merge(base or {}, parse_overrides(overrides))
    for key, value in (settings or {}).items():
        data = _merge(data, _nest(str(key).split("."), value))
    return from_dict(Config, data)


def load_config(path: str | Path) -> Config:
    return from_dict(Config, read_yaml(path), source=str(path))


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested sections -> dotted keys (``{"optim": {"lr": 0.1}}`` -> ``{"optim.lr": 0.1}``);
    lists (e.g. train.stages) stay values."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


def save_config(cfg: Config, path: str | Path) -> None:
    write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))


def all_keys(cls: type = Config, prefix: str = "") -> list[str]:
    keys = []
    for f in dataclasses.fields(cls):
        hint = typing.get_type_hints(cls)[f.name]
        if dataclasses.is_dataclass(hint):
            keys += all_keys(hint, f"{prefix}{f.name}.")
        else:
            keys.append(f"{prefix}{f.name}")
    return keys


# ---------------------------------------------------------------- validation


def from_dict(cls: type, data: Any, *, prefix: str = "", source: str | None = None) -> Any:
    """Validate ``data`` against dataclass ``cls`` and build it; unknown keys are errors."""
    where = f" in {source}" if source else ""
    if not isinstance(data, dict):
        name, first = prefix.rstrip(".") or "root", dataclasses.fields(cls)[0].name
        example = f"{{{first}: ...}}" if name == "root" or name.endswith("]") else f"{name}.{first}=..."
        raise UserError(f"config key '{name}'{where} is a section, not a value: set its keys, e.g. {example}; "
                        f"got {shorten(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            full = f"{prefix}{key}"
            if isinstance(key, str) and ":" in key and data[key] is None:  # {epochs:3} reads as one word
                word, _, value = key.partition(":")
                raise UserError(f"config key '{full}'{where} reads as one word: YAML needs a space after ':', "
                                f"e.g. {{{word}: {value}}}")
            raise _unknown_key(full, key, prefix=prefix, where=where, fields=list(fields))
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, fields[name].metadata, f"{prefix}{name}", where)
    return cls(**kwargs)


def check_key(key: str) -> None:
    """``key`` (``optim.lr``) must name a config value; else the same error an override gets."""
    if key not in all_keys():
        raise _unknown_key(key, key.rsplit(".", 1)[-1])


def _unknown_key(full: str, key: str, *, prefix: str = "", where: str = "", fields: list[str] = ()) -> UserError:
    if "[" in prefix:  # inside a list item such as train.stages[0]
        candidates = [f"{prefix}{k}" for k in fields]
    else:
        candidates = all_keys() + [f.name for f in dataclasses.fields(Config)]
    hint = _closest(full, candidates) or _closest(key, [k.rsplit(".", 1)[-1] for k in candidates], full=candidates)
    return UserError(f"unknown config key '{full}'{where}{hint}")


def _coerce(hint: Any, value: Any, meta: typing.Mapping, key: str, where: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, prefix=f"{key}.", source=where[4:] or None)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    optional = origin in (typing.Union, types.UnionType) and type(None) in args
    if optional:
        if value is None or (isinstance(value, str) and value.strip().lower() in _NONE_WORDS):
            return None
        hint = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is list:
        return _coerce_list(args[0], value, meta, key, where)
    result = _coerce_scalar(hint, value, key, where)
    _check_bounds(result, meta, key, where)
    return result


def _coerce_list(item: Any, value: Any, meta: typing.Mapping, key: str, where: str) -> list:
    if dataclasses.is_dataclass(item) and not isinstance(value, (list, tuple)) and str(value).strip():
        first = dataclasses.fields(item)[0].name
        raise UserError(f"config key '{key}'{where} takes a list of mappings, e.g. {key}=[{{{first}: 1}}, "
                        f"{{{first}: 2}}]; got {shorten(value)}")
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()] if value.strip() else []
    if not isinstance(value, (list, tuple)):
        raise UserError(f"config key '{key}'{where} takes a list, e.g. {key}=[0.1,0.2]; got {shorten(value)}")
    return [_coerce(item, v, meta if not dataclasses.is_dataclass(item) else {}, f"{key}[{i}]", where)
            for i, v in enumerate(value)]


def _coerce_scalar(hint: Any, value: Any, key: str, where: str) -> Any:
    bad = f"config key '{key}'{where}"
    if hint is bool:
        if isinstance(value, bool):
            return value
        if str(value).strip().lower() in _TRUE_WORDS:
            return True
        if str(value).strip().lower() in _FALSE_WORDS:
            return False
        raise UserError(f"{bad} takes true or false, got {shorten(value)}")
    if hint is int:
        if isinstance(value, bool):
            raise UserError(f"{bad} takes a whole number, got {shorten(value)}")
        if isinstance(value, int):
            return value
        try:
            number = float(str(value))
        except ValueError:
            number = None
        if number is None or not number.is_integer():
            raise UserError(f"{bad} takes a whole number, got {shorten(value)}")
        return int(number)
    if hint is float:
        if isinstance(value, bool):
            raise UserError(f"{bad} takes a number, got {shorten(value)}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise UserError(f"{bad} takes a number, got {shorten(value)}") from None
    if hint is str:
        if isinstance(value, (dict, list)):
            raise UserError(f"{bad} takes a single value, got {shorten(value)}")
        return str(value)
    raise TypeError(f"unsupported config type {hint!r} for {key}")  # a schema bug, not user input


def _check_bounds(value: Any, meta: typing.Mapping, key: str, where: str) -> None:
    choices = meta.get("choices")
    if choices and value not in choices:
        shown = ", ".join("none" if c is None else str(c) for c in choices)
        hint = _closest(str(value), [str(c) for c in choices if c is not None])
        raise UserError(f"config key '{key}'{where} got {shorten(value)}{hint}; accepted: {shown}")
    lo, hi = meta.get("min"), meta.get("max")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if math.isnan(value):  # NaN compares false to every bound
            raise UserError(f"config key '{key}'{where} got NaN; give a number")
        if lo is not None and value < lo:
            raise UserError(f"config key '{key}'{where} must be >= {lo}, got {value}")
        if hi is not None and value > hi:
            raise UserError(f"config key '{key}'{where} must be <= {hi}, got {value}")
    check = meta.get("check")
    problem = check(value) if check else None
    if problem:
        raise UserError(f"config key '{key}'{where} {problem}")


# ---------------------------------------------------------------- helpers


def _parse_value(raw: str) -> Any:
    raw = raw.strip()
    try:
        return safe_yaml(raw) if raw else ""
    except yaml.YAMLError:  # aliases too: the text is then taken as it is
        return raw


def _nest(parts: list[str], value: Any) -> dict[str, Any]:
    for part in reversed(parts):
        value = {part: value}
    return value


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _closest(word: str, options: list[str], *, full: list[str] | None = None) -> str:
    """did_you_mean, naming the entry of ``full`` at the matched option's place when given."""
    if full is None:
        return did_you_mean(word, options)
    return did_you_mean(word, options, shown=lambda match: full[options.index(match)])
