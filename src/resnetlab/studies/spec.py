"""Study and search files: what they may hold, checked before anything trains.

A study file names a base configuration and what varies::

    description: Adam, AdamW and SGD, each with a learning rate that suits it
    base: [preset=quick]              # override tokens, or a mapping of sections
    vary:                             # one factor at a time, the rest at base
      optimizer:
        - {name: adam, optim.name: adam, optim.lr: 1.0e-3}
        - {name: sgd, optim.name: sgd, optim.lr: 0.05}
    seeds: 3                          # train.seed = 0, 1, 2 for every variant
    baseline: sgd                     # deltas are against this variant (default: the first)
    metric: val/accuracy              # default: val/accuracy, val/srcc for regression

``grid:`` instead of ``vary:`` takes the full product. A search file has ``space:`` (see
:class:`SearchSpec`). Every problem is a one-line :class:`UserError` naming the file and key.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from resnetlab.config import build_config, check_key, flatten, to_dict
from resnetlab.config.loading import safe_yaml
from resnetlab.errors import UserError, did_you_mean
from resnetlab.metric_direction import lower_is_better

STUDY_KEYS = ("name", "description", "base", "preset", "vary", "grid", "seeds", "baseline", "metric")
SEARCH_KEYS = ("name", "description", "base", "preset", "space", "metric", "direction", "sampler", "pruner",
               "trials", "seed")
# The study runner owns where runs go and how they resume; letting a variant set these would
# break the one-folder-per-run layout.
RESERVED_KEYS = ("output.dir", "output.name", "train.resume")
# Names the study folder uses for itself.
RESERVED_NAMES = ("plots",)
PLURAL = {"study": "studies", "search": "searches"}


@dataclass(frozen=True)
class Variant:
    """One arm of a study: a name and the config keys it sets (dotted key -> value)."""

    name: str
    settings: dict[str, Any]


@dataclass
class StudySpec:
    name: str
    source: str
    description: str
    base: list[str]
    variants: list[Variant]
    factors: list[str]
    seeds: int | None
    baseline: str
    metric: str | None

    def variant(self, name: str) -> Variant:
        return next(v for v in self.variants if v.name == name)


@dataclass(frozen=True)
class Param:
    """One dimension of a search space."""

    key: str
    kind: str  # loguniform, uniform, int, categorical
    low: float | None = None
    high: float | None = None
    step: float | None = None
    choices: tuple[Any, ...] = ()


@dataclass
class SearchSpec:
    name: str
    source: str
    description: str
    base: list[str]
    space: list[Param]
    metric: str
    direction: str  # maximize or minimize
    sampler: dict[str, Any] = field(default_factory=dict)
    pruner: dict[str, Any] = field(default_factory=dict)
    trials: int | None = None
    seed: int = 0


# ---------------------------------------------------------------- finding files


def builtin_studies() -> list[str]:
    """Names of the studies and searches shipped with resnetlab."""
    folder = resources.files("resnetlab.studies") / "builtin"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def describe_builtins() -> list[tuple[str, str, str]]:
    """(name, "study" or "search", description) of every built-in."""
    rows = []
    for name in builtin_studies():
        data, _, _, _ = _read(name, what="study")
        rows.append((name, "search" if "space" in data else "study", str(data.get("description") or "")))
    return rows


def builtin_names(what: str) -> list[str]:
    """The built-in studies (``what="study"``) or searches (``what="search"``)."""
    return [name for name, kind, _ in describe_builtins() if kind == what]


def _read(study: str | Path, *, what: str) -> tuple[dict[str, Any], str, str, Path | None]:
    """The mapping in a study/search file or built-in, its name, where it came from, its folder."""
    path = Path(study)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise UserError(f"{what} file {path} not found; give a YAML file or one of: "
                            f"{', '.join(builtin_names(what))}")
        try:
            text = path.read_bytes().decode("utf-8")
        except (UnicodeDecodeError, OSError):
            raise UserError(f"{what} file {path} cannot be read as UTF-8 text; save it as UTF-8") from None
        source, name, folder = str(path), path.stem, path.parent
    else:
        # A built-in of the other kind is read, so that load_study/load_search can say which command runs it.
        if str(study) not in builtin_studies():
            names = builtin_names(what)
            hint = did_you_mean(str(study), names)
            raise UserError(f"no {what} file or built-in named '{study}'{hint}; built-in {PLURAL[what]}: "
                            f"{', '.join(names)}")
        text = (resources.files("resnetlab.studies") / "builtin" / f"{study}.yaml").read_text()
        source, name, folder = f"built-in {what} '{study}'", str(study), None
    try:
        data = safe_yaml(text)  # no aliases: nested ones expand to gigabytes
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise UserError(f"{source} is not valid YAML{where}; fix the syntax") from None
    if not isinstance(data, dict):
        raise UserError(f"{source} must hold a mapping (base:, vary: or grid:, seeds:, ...)")
    return data, source, name, folder


def load_study(study: str | Path) -> StudySpec:
    """A study from a YAML file path or a built-in name (``resnetlab study optimizer``)."""
    data, source, name, folder = _read(study, what="study")
    if "space" in data and "vary" not in data and "grid" not in data:
        raise UserError(f"{source} is a search file (it has space:); run it with resnetlab search {study}")
    return parse_study(data, name=name, source=source, folder=folder)


def load_search(search: str | Path) -> SearchSpec:
    """A hyperparameter search from a YAML file path or a built-in name."""
    data, source, name, folder = _read(search, what="search")
    if "space" not in data and ("vary" in data or "grid" in data):
        raise UserError(f"{source} is a study file (it has vary:/grid:); run it with resnetlab study {search}")
    return parse_search(data, name=name, source=source, folder=folder)


# ---------------------------------------------------------------- study files


def parse_study(data: Mapping[str, Any], *, name: str, source: str = "study", folder: Path | None = None) -> StudySpec:
    """Validate a study mapping; variants' values are checked when their runs are built."""
    _check_keys(data, STUDY_KEYS, source, what="study")
    name = _name(data.get("name", name), source)
    base = _base(data, source, folder)
    if ("vary" in data) == ("grid" in data):
        raise UserError(f"{source}: give either vary: (one factor at a time) or grid: (every combination)")
    kind = "vary" if "vary" in data else "grid"
    factors = _factors(data[kind], source, kind)
    variants = _vary(factors, source) if kind == "vary" else _grid(factors, source)

    seeds = data.get("seeds")
    if seeds is not None and (isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1):
        raise UserError(f"{source}: seeds: takes a whole number >= 1 (runs per variant), got {seeds!r}")
    keys = list(dict.fromkeys(k for v in variants for k in v.settings))
    for key in keys:
        if key in RESERVED_KEYS:
            raise UserError(f"{source}: {kind}: may not set {key}; the study chooses run folders and resumes them")
        if key == "train.seed" and seeds is not None:
            raise UserError(f"{source}: {kind}: sets train.seed and seeds: is given; use one of them")

    names = [v.name for v in variants]
    for variant_name in names:
        if names.count(variant_name) > 1:
            raise UserError(f"{source}: two variants are named '{variant_name}'; give them distinct name: values")
        if variant_name in RESERVED_NAMES:
            raise UserError(f"{source}: variant name '{variant_name}' is reserved; rename it")
    baseline = data.get("baseline", names[0])
    if str(baseline) not in names:
        hint = did_you_mean(str(baseline), names)
        raise UserError(f"{source}: baseline: '{baseline}' is not a variant{hint}; variants: {', '.join(names)}")
    metric = _metric(data["metric"], source) if data.get("metric") is not None else None
    return StudySpec(name=name, source=source, description=str(data.get("description") or ""), base=base,
                     variants=variants, factors=keys, seeds=seeds, baseline=str(baseline), metric=metric)


def _factors(raw: Any, source: str, kind: str) -> list[tuple[str, list[Any]]]:
    if not isinstance(raw, dict) or not raw:
        raise UserError(f"{source}: {kind}: takes a mapping of factor -> list of values, "
                        f"e.g. {kind}: {{optim.lr: [1.0e-3, 1.0e-2]}}")
    factors = []
    for factor, values in raw.items():
        factor = str(factor)
        if not isinstance(values, list) or not values:
            raise UserError(f"{source}: {kind}: {factor} takes a non-empty list of values, got {values!r}")
        is_key = "." in factor
        if is_key:
            _check_config_key(factor, source, f"{kind}: {factor}")
        for value in values:
            if isinstance(value, dict):
                _check_variant_mapping(value, source, f"{kind}: {factor}")
            elif not is_key:
                raise UserError(f"{source}: {kind}: {factor} is not a config key (section.key), so each value "
                                "must be a mapping of keys, e.g. {optim.name: adam, optim.lr: 1.0e-3}; "
                                f"got {value!r}")
        factors.append((factor, values))
    return factors


def _check_variant_mapping(value: dict[str, Any], source: str, where: str) -> None:
    settings = {k: v for k, v in value.items() if k != "name"}
    if not settings:
        raise UserError(f"{source}: {where}: a variant mapping must set at least one config key; got {value!r}")
    for key in settings:
        _check_config_key(str(key), source, where)
    if "name" in value and not _slug(value["name"]):
        raise UserError(f"{source}: {where}: name: {value['name']!r} is empty; give a folder-friendly name")


def _settings(factor: str, value: Any) -> tuple[dict[str, Any], str | None]:
    """What one value of a factor sets, and its own name if it gives one."""
    if isinstance(value, dict):
        return {str(k): v for k, v in value.items() if k != "name"}, _slug(value["name"]) if "name" in value else None
    return {factor: value}, None


def _vary(factors: list[tuple[str, list[Any]]], source: str) -> list[Variant]:
    variants = []
    for factor, values in factors:
        for value in values:
            settings, name = _settings(factor, value)
            if name is None:
                # One factor: the value says it all ("adam", "0.001"); several: say which key moved.
                parts = [_slug(v) for v in settings.values()]
                name = "_".join(parts) if len(factors) == 1 else _part(factor, value, settings)
            variants.append(Variant(name=name, settings=settings))
    return variants


def _grid(factors: list[tuple[str, list[Any]]], source: str) -> list[Variant]:
    variants = []
    for combo in itertools.product(*(values for _, values in factors)):
        settings: dict[str, Any] = {}
        parts = []
        for (factor, _), value in zip(factors, combo):
            own, name = _settings(factor, value)
            clash = set(own) & set(settings)
            if clash:
                raise UserError(f"{source}: grid: {factor} sets {', '.join(sorted(clash))}, which another factor "
                                "also sets; each key may belong to one factor")
            settings.update(own)
            parts.append(name or _part(factor, value, own))
        variants.append(Variant(name="_".join(parts), settings=settings))
    return variants


def _part(factor: str, value: Any, settings: dict[str, Any]) -> str:
    if isinstance(value, dict):
        return "_".join(_slug(v) for v in settings.values())
    return f"{factor.rsplit('.', 1)[-1]}-{_slug(value)}"


def _slug(value: Any) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float):
        text = f"{value:g}"
    elif value is None:
        text = "none"
    elif isinstance(value, (list, tuple)):
        text = "-".join(_slug(v) for v in value)
    else:
        text = str(value)
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", text).strip("-")


# ---------------------------------------------------------------- search files


PARAM_FIELDS = {"loguniform": ("low", "high"), "uniform": ("low", "high"), "int": ("low", "high", "step"),
                "categorical": ("choices",)}
SAMPLER_FIELDS = {"tpe": ("n_startup_trials", "seed"), "random": ("seed",)}
PRUNER_FIELDS = {"median": ("n_startup_trials", "n_warmup_steps", "interval_steps"),
                 "percentile": ("percentile", "n_startup_trials", "n_warmup_steps", "interval_steps"),
                 "none": ()}


def parse_search(data: Mapping[str, Any], *, name: str, source: str = "search",
                 folder: Path | None = None) -> SearchSpec:
    _check_keys(data, SEARCH_KEYS, source, what="search")
    name = _name(data.get("name", name), source)
    base = _base(data, source, folder)
    raw_space = data.get("space")
    if not isinstance(raw_space, dict) or not raw_space:
        raise UserError(f"{source}: space: takes a mapping of config key -> {{type: loguniform, low: .., high: ..}}")
    space = [_param(str(key), spec, source) for key, spec in raw_space.items()]

    metric = _metric(data.get("metric", "val/accuracy"), source)
    if not metric.startswith("val/"):
        raise UserError(f"{source}: metric: {metric} is not a validation metric; a search must not look at the "
                        "test split, use val/<name>")
    direction = data.get("direction") or ("minimize" if lower_is_better(metric) else "maximize")
    if direction not in ("maximize", "minimize"):
        raise UserError(f"{source}: direction: takes maximize or minimize, got {direction!r}")

    seed = data.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise UserError(f"{source}: seed: takes a whole number >= 0, got {seed!r}")
    sampler = _choice_block(data.get("sampler", {"name": "tpe"}), SAMPLER_FIELDS, source, "sampler")
    pruner = _choice_block(data.get("pruner", {"name": "median"}), PRUNER_FIELDS, source, "pruner")
    if pruner["name"] == "percentile" and not 0 <= float(pruner.get("percentile", -1)) <= 100:
        raise UserError(f"{source}: pruner: percentile needs percentile: between 0 and 100 (share of trials kept)")
    trials = data.get("trials")
    if trials is not None and (isinstance(trials, bool) or not isinstance(trials, int) or trials < 1):
        raise UserError(f"{source}: trials: takes a whole number >= 1, got {trials!r}")
    return SearchSpec(name=name, source=source, description=str(data.get("description") or ""), base=base,
                      space=space, metric=metric, direction=direction, sampler=sampler, pruner=pruner,
                      trials=trials, seed=seed)


def _param(key: str, spec: Any, source: str) -> Param:
    where = f"{source}: space: {key}"
    _check_config_key(key, source, f"space: {key}")
    if key in RESERVED_KEYS or key == "train.seed":
        raise UserError(f"{where}: this key is set by the search itself; remove it from space:")
    if not isinstance(spec, dict) or "type" not in spec:
        raise UserError(f"{where} takes a mapping with type: (loguniform, uniform, int or categorical)")
    kind = spec["type"]
    if kind not in PARAM_FIELDS:
        raise UserError(f"{where}: type: {kind!r} is not one of loguniform, uniform, int, categorical")
    allowed = PARAM_FIELDS[kind]
    for field_name in spec:
        if field_name != "type" and field_name not in allowed:
            raise UserError(f"{where}: {kind} takes {', '.join(allowed)}, not '{field_name}'")
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise UserError(f"{where}: categorical needs choices: [a, b, ...]")
        odd = next((c for c in choices if c is not None and not isinstance(c, (bool, int, float, str))), None)
        if odd is not None:
            raise UserError(f"{where}: categorical choices must be single values (numbers, words, true/false); "
                            f"got {odd!r}")
        return Param(key=key, kind=kind, choices=tuple(choices))
    bounds = {}
    for bound in ("low", "high"):
        bounds[bound] = _number(spec.get(bound))
        if bounds[bound] is None:
            raise UserError(f"{where}: {kind} needs a number {bound}:, got {spec.get(bound)!r}")
    low, high = bounds["low"], bounds["high"]
    if low >= high:
        raise UserError(f"{where}: low ({low:g}) must be below high ({high:g})")
    if kind == "loguniform" and low <= 0:
        raise UserError(f"{where}: loguniform needs low > 0, got {low:g}")
    if kind == "int":
        step = _number(spec.get("step", 1))
        if not all(v is not None and v == int(v) for v in (low, high, step)) or step < 1:
            raise UserError(f"{where}: int needs whole numbers low:, high: and step: >= 1")
        return Param(key=key, kind=kind, low=int(low), high=int(high), step=int(step))
    return Param(key=key, kind=kind, low=low, high=high)


def _number(value: Any) -> float | None:
    """A finite number, also from a string: YAML reads 1e-3 (no dot) as one, as studies and overrides accept it."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _choice_block(raw: Any, fields: dict[str, tuple[str, ...]], source: str, what: str) -> dict[str, Any]:
    block = {"name": raw} if isinstance(raw, str) else raw
    if not isinstance(block, dict) or block.get("name") not in fields:
        raise UserError(f"{source}: {what}: takes name: one of {', '.join(fields)}, got {raw!r}")
    for key, value in block.items():
        if key == "name":
            continue
        if key not in fields[block["name"]]:
            accepted = ", ".join(fields[block["name"]]) or "no options"
            raise UserError(f"{source}: {what}: {block['name']} takes {accepted}, not '{key}'")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise UserError(f"{source}: {what}: {key} takes a number >= 0, got {value!r}")
    return dict(block)


# ---------------------------------------------------------------- shared pieces


def metric_names(task: str) -> list[str]:
    """The metric names (without split) a run of ``task`` can report, asked of the metrics code itself.

    Placeholder outputs with six classes and clip groups, so ``top5`` and ``clip_*`` are included;
    whether the data really has them is the trainer's check (``train.monitor``), once the data is loaded.
    """
    import numpy as np

    from resnetlab.api.assemble import Task

    n = 12
    if task == "regression":
        placeholder, targets = Task(kind="regression", class_names=[]), np.linspace(0.0, 1.0, n, dtype=np.float32)
    else:
        placeholder, targets = Task(kind="classification", class_names=[str(i) for i in range(6)]), np.arange(n) % 6
    return placeholder.metric_names(targets, groups=np.arange(n) // 2)


def check_metric(metric: str, task: str, source: str) -> None:
    """``metric:`` must name a metric a ``task`` run reports; checked before anything trains."""
    split, _, key = metric.partition("/")
    keys = metric_names(task)
    if key not in keys:
        # Compared without the split, which every name shares: "acc" is close to "accuracy", "srcc" to no
        # classification metric.
        hint = did_you_mean(key, keys, cutoff=0.5, shown=lambda match: f"{split}/{match}")
        raise UserError(f"{source}: metric: {metric} is not a metric of a {task} run{hint}; "
                        f"choose one of {', '.join(f'{split}/{k}' for k in keys)}")


def changed_settings(before: Sequence[str], now: Sequence[str]) -> str:
    """What differs between two lists of override tokens: ``train.epochs was 2, now 1``.

    A key given on one side only is shown with the value the other side's config has (from a
    preset or the defaults), so ``preset=test`` against ``preset=test train.epochs=2`` reads
    "train.epochs was 1, now 2"; a key set to the value it had anyway is no change.
    """
    old, new = _by_key(before), _by_key(now)
    old_config, new_config = _resolved(before), _resolved(now)
    changes = []
    for key in dict.fromkeys([*old, *new]):
        was, is_now = old.get(key, old_config.get(key, "not set")), new.get(key, new_config.get(key, "not set"))
        if old.get(key) != new.get(key) and str(was) != str(is_now):
            changes.append(f"{key} was {was}, now {is_now}")
    if not changes:  # the same values, given in another order
        return f"overrides were {' '.join(before)}, now {' '.join(now)}"
    return "; ".join(changes[:4]) + ("; ..." if len(changes) > 4 else "")


def _resolved(tokens: Sequence[str]) -> dict[str, Any]:
    try:
        return flatten(to_dict(build_config(tokens)))
    except UserError:  # tokens that no longer build (a preset renamed): compared as written
        return {}


def _by_key(tokens: Iterable[str]) -> dict[str, str]:
    # The last token for a key wins, as in the config builder.
    pairs = (str(token).partition("=") for token in tokens)
    return {key.strip(): value.strip() for key, _, value in pairs}


def config_tokens(settings: Mapping[str, Any]) -> list[str]:
    """``{"optim.lr": 0.001}`` -> ``["optim.lr=0.001"]``, values written so the override parser reads them back."""
    return [f"{key}={_encode(value)}" for key, value in settings.items()]


def _encode(value: Any) -> str:
    # YAML flow style is what the override parser reads, so lists, None and quoted strings survive.
    text = yaml.safe_dump(value, default_flow_style=True, width=2**31 - 1, allow_unicode=True).strip()
    return text[:-3].strip() if text.endswith("\n...") or text == "..." else text


def _base(data: Mapping[str, Any], source: str, folder: Path | None) -> list[str]:
    tokens: list[str] = []
    preset = data.get("preset")
    if preset is not None:
        if not isinstance(preset, str):
            raise UserError(f"{source}: preset: takes a preset name, e.g. preset: quick; got {preset!r}")
        tokens.append(f"preset={preset}")
    base = data.get("base")
    if isinstance(base, str):
        base = [base]
    if isinstance(base, list):
        for token in base:
            if not isinstance(token, str) or "=" not in token:
                raise UserError(f"{source}: base: takes override tokens like preset=quick or optim.lr=0.01, "
                                f"got {token!r}")
            key, _, value = token.partition("=")
            if key.strip() == "config" and folder is not None and not Path(value).is_absolute() \
                    and (folder / value).is_file():
                token = f"config={(folder / value).resolve()}"  # relative to the study file, as a reader expects
            tokens.append(token)
    elif isinstance(base, dict):
        tokens += config_tokens(flatten(base))
    elif base is not None:
        raise UserError(f"{source}: base: takes a list of override tokens or a mapping of sections, got {base!r}")
    try:
        build_config(tokens)
    except UserError as exc:
        raise UserError(f"{source}: base: {exc}") from None
    return tokens


def _metric(raw: Any, source: str) -> str:
    text = str(raw)
    split, sep, key = text.partition("/")
    if not sep or split not in ("val", "test") or not key:
        raise UserError(f"{source}: metric: takes split/name such as val/accuracy, test/accuracy or val/srcc; "
                        f"got {raw!r}")
    return text


def _name(raw: Any, source: str) -> str:
    name = _slug(raw)
    if not name:
        raise UserError(f"{source}: name: {raw!r} cannot name a folder; use letters, digits, '-' or '_'")
    return name


def _check_keys(data: Mapping[str, Any], allowed: Iterable[str], source: str, *, what: str) -> None:
    allowed = list(allowed)
    for key in data:
        if key not in allowed:
            hint = did_you_mean(str(key), allowed)
            raise UserError(f"{source}: unknown {what} key '{key}'{hint}; {what} keys: {', '.join(allowed)}")


def _check_config_key(key: str, source: str, where: str) -> None:
    try:
        check_key(key)
    except UserError as exc:
        raise UserError(f"{source}: {where}: {exc}; resnetlab config --keys lists them") from None
