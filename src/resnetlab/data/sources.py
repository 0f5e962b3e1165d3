"""The way in: `load_data(cfg)` turns a data config into a `DataBundle`.

Steps: list the source (built-in, image folder or CSV manifest) into a `Catalog`; fill in the
splits the source does not fix (seeded, stratified, by clip for frame manifests); take the
training subset; decode the images in train/val/test order through the cache (so each split is
a contiguous slice, a view even when memory-mapped); drop unreadable files; standardize side
features and measure targets with training statistics only; compute or read mean/std.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Callable

import numpy as np

from resnetlab.atomic_write import write_json
from resnetlab.config.schema import DataConfig
from resnetlab.data import decode
from resnetlab.data.builtin import BUILTINS, load_builtin
from resnetlab.data.bundle import SPLIT_NAMES, TEST, TRAIN, VAL, BadFile, Catalog, DataBundle, Split
from resnetlab.data.cache import cache_root, cached_images, files_identity, image_key, read_json
from resnetlab.data.folder import scan_folder
from resnetlab.data.manifest import read_manifest
from resnetlab.data.split import assign_splits, subset_index
from resnetlab.data.stats import resolve_mean_std
from resnetlab.errors import UserError, did_you_mean

_GIVE = f"give an image folder, a CSV manifest or one of {', '.join(BUILTINS)}"
_SHOW_SKIPPED = 3


def _did_you_mean(source: str) -> str:
    squashed = re.sub(r"[^a-z0-9]", "", source.lower())
    for name in BUILTINS:
        if squashed == re.sub(r"[^a-z0-9]", "", name):
            return f" (did you mean '{name}'?)"
    return did_you_mean(source.lower(), BUILTINS, prefix=" (", suffix=")")


def _manifest_only(cfg: DataConfig, source: str) -> None:
    """Manifest settings given with another source would be silently ignored: refuse instead."""
    used = [k for k, v in (("split_column", cfg.split_column), ("feature_columns", cfg.feature_columns),
                           ("group_column", cfg.group_column), ("order_column", cfg.order_column),
                           ("image_root", cfg.image_root)) if v]
    if cfg.task == "regression":
        raise UserError(f"data.task=regression needs a CSV manifest with a numeric data.label_column; "
                        f"data.source={source} holds classes")
    if used:
        raise UserError(f"data.{used[0]} only applies to a CSV manifest; data.source={source} is not one, "
                        f"so remove data.{used[0]}")


def open_source(cfg: DataConfig, *, log: Callable[[str], None] = print) -> Catalog:
    """The catalog of data.source: a built-in name, an image folder or a .csv manifest."""
    source = cfg.source.strip()
    if source in BUILTINS:
        _manifest_only(cfg, source)
        return load_builtin(source, data_dir=cfg.dir, download_ok=cfg.download, log=log)
    path = Path(source).expanduser()
    if path.is_dir():
        _manifest_only(cfg, source)
        return scan_folder(path)
    if path.suffix.lower() == ".csv" and path.is_file():
        return read_manifest(path, task=cfg.task, image_column=cfg.image_column, label_column=cfg.label_column,
                             split_column=cfg.split_column, feature_columns=cfg.feature_columns,
                             group_column=cfg.group_column, order_column=cfg.order_column,
                             frame_interval=cfg.frame_interval,
                             image_root=Path(cfg.image_root).expanduser() if cfg.image_root else None)
    if path.exists():
        raise UserError(f"data.source: {source} is a file but not a .csv manifest; {_GIVE}")
    raise UserError(f"data.source: {source} not found{_did_you_mean(source)}; {_GIVE}")


def _channels(cat: Catalog, requested: int | None, identity: str, root: Path | None) -> int:
    if requested:
        return requested
    if cat.native_channels:
        return cat.native_channels
    # Probing opens file headers; remember the answer so a cached rerun opens no image at all.
    probe_file = None if root is None else root / "images" / f"{identity[:32]}.probe.json"
    known = read_json(probe_file) if probe_file else None
    if isinstance(known, dict) and known.get("channels") in (1, 3):
        return known["channels"]
    channels = decode.probe_channels(cat.paths or [])
    if probe_file is not None:
        try:
            write_json(probe_file, {"channels": channels}, indent=None)
        except OSError:
            pass  # only a speed-up; the image cache reports unwritable folders itself
    return channels


def _standardize(values: np.ndarray, train_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    train = values[train_rows].astype(np.float64)
    mean = train.mean(axis=0) if len(train) else np.zeros(values.shape[1])
    std = train.std(axis=0) if len(train) else np.ones(values.shape[1])
    std[std == 0] = 1.0  # a constant feature carries no information; keep it at 0 instead of NaN
    return ((values - mean) / std).astype(np.float32), mean.astype(np.float32), std.astype(np.float32)


def _hash(identity: str, cat: Catalog, split_of: np.ndarray, *, image_size: int, channels: int, task: str) -> str:
    digest = hashlib.sha256(f"{identity}|{task}|{image_size}|{channels}\n".encode())
    for code, name in enumerate(SPLIT_NAMES):
        rows = np.flatnonzero(split_of == code)
        digest.update(f"{name}:{len(rows)}\n".encode())
        digest.update("\n".join(cat.ids[i] for i in rows).encode())
        digest.update(np.ascontiguousarray(cat.targets[rows]).tobytes())
    return digest.hexdigest()


def _skipped_line(skipped: list[BadFile]) -> str:
    first = ", ".join(f"{b.path} ({b.reason})" for b in skipped[:_SHOW_SKIPPED])
    more = f" and {len(skipped) - _SHOW_SKIPPED} more" if len(skipped) > _SHOW_SKIPPED else ""
    return f"skipped {len(skipped)} files (see skipped_files.txt in the run folder): {first}{more}"


def load_data(cfg: DataConfig, *, log: Callable[[str], None] = print) -> DataBundle:
    """Load, split, decode (or read from the cache) and describe the data of `cfg`."""
    catalog = open_source(cfg, log=log)
    if cfg.on_bad_file == "error" and catalog.skipped:
        raise decode.bad_file_error(catalog.skipped[0])
    classify = cfg.task == "classification"
    strata = catalog.targets if classify else np.zeros(len(catalog.ids), dtype=np.int64)
    assigned = assign_splits(catalog.assigned, strata=strata, groups=catalog.groups, val_ratio=cfg.val_ratio,
                             test_ratio=cfg.test_ratio, seed=cfg.split_seed)
    parts = [np.flatnonzero(assigned == code) for code in (TRAIN, VAL, TEST)]
    if cfg.subset is not None:
        parts[0] = parts[0][subset_index(strata[parts[0]], cfg.subset, seed=cfg.split_seed)]
    order = np.concatenate(parts)
    cat = catalog.select(order)
    split_of = np.repeat(np.arange(3, dtype=np.int8), [len(p) for p in parts])

    root = None if cfg.cache == "memory" else cache_root(cfg.cache_dir)
    if cat.paths is not None:
        identity = files_identity(cat.kind, cat.paths, cat.ids)
    else:  # a built-in: its files, plus which of its images are asked for (a subset is its own entry)
        identity = hashlib.sha256("\n".join([cat.identity, *sorted(cat.ids)]).encode()).hexdigest()
    channels = _channels(cat, cfg.channels, identity, root)
    size = cfg.image_size

    def produce(out: np.ndarray) -> dict[int, BadFile]:
        workers = decode.default_workers(cfg.workers)
        if cat.paths is not None:
            log(f"decoding {len(cat.ids):,} images at {size}x{size}, {channels} channel(s), {workers} thread(s)")
            return decode.decode_many(cat.paths, out, image_size=size, channels=channels, workers=workers,
                                      stop_on_bad=cfg.on_bad_file == "error", log=log)
        decode.convert_many(cat.read_pixels(), cat.rows, out, image_size=size, channels=channels,
                            workers=workers, log=log)
        return {}

    result = cached_images(key=image_key(identity, image_size=size, channels=channels), ids=cat.ids,
                           shape=(channels, size, size), produce=produce, mode=cfg.cache, root=root, log=log)
    if result.hit:
        log(f"read {len(result.images):,} decoded images from the cache in {root}")
    bad_positions = sorted(result.bad)
    if cfg.on_bad_file == "error" and bad_positions:
        raise decode.bad_file_error(result.bad[bad_positions[0]])
    skipped = catalog.skipped + [result.bad[i] for i in bad_positions]
    if bad_positions:
        keep = np.ones(len(cat.ids), dtype=bool)
        keep[bad_positions] = False
        cat = cat.select(np.flatnonzero(keep))
        split_of = split_of[keep]
    images = result.images
    if not (split_of == TRAIN).any():
        why = f" ({len(skipped)} files skipped, first {skipped[0].path}: {skipped[0].reason})" if skipped else ""
        raise UserError(f"data.source {cfg.source} has no usable training images{why}; check the files")

    # Side features and regression targets are scaled with training statistics only.
    train_rows = np.flatnonzero(split_of == TRAIN)
    features, feature_stats = None, None
    if cat.features is not None:
        features, f_mean, f_std = _standardize(cat.features, train_rows)
        feature_stats = (f_mean, f_std)
    target_stats = None
    if not classify and cfg.normalize_target:
        t = cat.targets[train_rows].astype(np.float64)
        target_stats = (float(t.mean()), float(t.std()) or 1.0)

    bounds = np.concatenate([[0], np.cumsum(np.bincount(split_of, minlength=3))])
    splits: list[Split | None] = []
    for code in (TRAIN, VAL, TEST):
        a, b = int(bounds[code]), int(bounds[code + 1])
        splits.append(Split(
            images=images[a:b], targets=cat.targets[a:b], ids=cat.ids[a:b],
            features=None if features is None else features[a:b],
            groups=None if cat.groups is None else cat.groups[a:b],
        ))
    if len(parts[2]) == 0:
        splits[2] = None  # the source has no test split and none was asked for (test_ratio)

    data_hash = _hash(identity, cat, split_of, image_size=size, channels=channels, task=cfg.task)
    stats_file = None if root is None else root / "stats" / f"{data_hash[:32]}.json"
    mean, std = resolve_mean_std(splits[0].images, channels=channels, mean=cfg.mean, std=cfg.std,
                                 cache_file=stats_file, log=log)
    bundle = DataBundle(
        train=splits[0], val=splits[1], test=splits[2], class_names=list(cat.class_names) if classify else [],
        channels=channels, image_size=size, mean=mean, std=std, skipped=skipped, data_hash=data_hash,
        source=cfg.source if cat.kind == "builtin" else cat.name, task=cfg.task, target_stats=target_stats,
        feature_stats=feature_stats,
    )
    _log_summary(bundle, log)
    return bundle


def _mixed_label_clips(bundle: DataBundle) -> list[tuple[str, list[str]]]:
    """Clips whose frames carry more than one label, with those labels (frames of a clip usually share one)."""
    labels: dict[str, set[int]] = {}
    for name in SPLIT_NAMES:
        part = getattr(bundle, name)
        if part is not None and part.groups is not None:
            for clip, target in zip(part.groups.tolist(), part.targets.tolist()):
                labels.setdefault(clip, set()).add(target)
    return [(clip, [bundle.class_names[t] for t in sorted(found)]) for clip, found in labels.items()
            if len(found) > 1]


def _log_summary(bundle: DataBundle, log: Callable[[str], None]) -> None:
    what = f"{len(bundle.class_names)} classes" if bundle.class_names else "regression"
    log(f"data: {bundle.source} ({what}, {bundle.channels}x{bundle.image_size}x{bundle.image_size})")
    for name in SPLIT_NAMES:
        part = getattr(bundle, name)
        if part is None:
            continue
        line = f"  {name}: {len(part):,} images"
        if bundle.class_names and len(part):
            counts = np.bincount(part.targets, minlength=len(bundle.class_names))
            line += f", {counts.min():,}-{counts.max():,} per class"
            if name == "train" and (counts == 0).any():
                missing = [c for c, n in zip(bundle.class_names, counts) if n == 0]
                line += f" (no training images for: {', '.join(missing[:5])})"
        log(line)
    if bundle.train.groups is not None:
        held_out: set[str] = set()
        for part in (bundle.val, bundle.test):
            if part is not None:
                held_out.update(part.groups.tolist())
        shared = sorted(held_out.intersection(bundle.train.groups.tolist()))
        if shared:
            log(f"warning: {len(shared)} clip(s) have frames both in train and in val/test (e.g. {shared[0]}); "
                f"scores on them are optimistic: put each clip in one split")
        if bundle.class_names:
            mixed = _mixed_label_clips(bundle)
            if mixed:
                clip, names = mixed[0]
                log(f"note: {len(mixed)} clip(s) have frames of several labels (e.g. {clip}: {', '.join(names)}); "
                    "clip metrics judge each clip by its most common frame label")
    if bundle.skipped:
        log(_skipped_line(bundle.skipped))
