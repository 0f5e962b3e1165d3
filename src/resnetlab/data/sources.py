"""The way in: `load_data(source, ...)` turns a data source and its settings into a `DataBundle`.

Steps: list the source (built-in, image folder or CSV manifest) into a `Catalog`; fill in the
splits the source does not fix (seeded, stratified, by clip for frame manifests); take the
training subset; decode the images in train/val/test order through the cache (so each split is
a contiguous slice, a view even when memory-mapped); drop unreadable files; standardize side
features and measure targets with training statistics only; compute or read mean/std.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from resnetlab.atomic_write import write_json
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


def _manifest_only(source: str, *, task: str, split_column: str | None, feature_columns: Sequence[str],
                   group_column: str | None, order_column: str | None, image_root: str | None) -> None:
    """Manifest settings given with another source would be silently ignored: refuse instead."""
    used = [k for k, v in (("split_column", split_column), ("feature_columns", feature_columns),
                           ("group_column", group_column), ("order_column", order_column),
                           ("image_root", image_root)) if v]
    if task == "regression":
        raise UserError(f"data.task=regression needs a CSV manifest with a numeric data.label_column; "
                        f"data.source={source} holds classes")
    if used:
        raise UserError(f"data.{used[0]} only applies to a CSV manifest; data.source={source} is not one, "
                        f"so remove data.{used[0]}")


def open_source(source: str, *, dir: str | None = None, download: bool = True, task: str = "classification",
                image_column: str = "image", label_column: str = "label", split_column: str | None = None,
                feature_columns: Sequence[str] = (), group_column: str | None = None,
                order_column: str | None = None, frame_interval: int = 1, image_root: str | None = None,
                log: Callable[[str], None] = print) -> Catalog:
    """The catalog of ``source``: a built-in name, an image folder or a .csv manifest (whose relative
    image paths start at ``image_root``, by default the CSV's folder)."""
    source = source.strip()
    path = Path(source).expanduser()
    if source in BUILTINS or path.is_dir():
        _manifest_only(source, task=task, split_column=split_column, feature_columns=feature_columns,
                       group_column=group_column, order_column=order_column, image_root=image_root)
        return load_builtin(source, data_dir=dir, download_ok=download, log=log) if source in BUILTINS \
            else scan_folder(path)
    if path.suffix.lower() == ".csv" and path.is_file():
        return read_manifest(path, task=task, image_column=image_column, label_column=label_column,
                             split_column=split_column, feature_columns=list(feature_columns),
                             group_column=group_column, order_column=order_column, frame_interval=frame_interval,
                             image_root=Path(image_root).expanduser() if image_root else None)
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


def load_data(source: str = "digits", *, dir: str | None = None, download: bool = True,
              task: str = "classification", image_size: int = 32, channels: int | None = None,
              val_ratio: float = 0.1, test_ratio: float = 0.1, split_seed: int = 0, subset: int | None = None,
              image_column: str = "image", label_column: str = "label", split_column: str | None = None,
              feature_columns: Sequence[str] = (), group_column: str | None = None, order_column: str | None = None,
              frame_interval: int = 1, image_root: str | None = None, normalize_target: bool = True,
              on_bad_file: str = "skip",
              cache: str = "auto", cache_dir: str | None = None, mean: Sequence[float] | None = None,
              std: Sequence[float] | None = None, workers: int = 0,
              log: Callable[[str], None] = print) -> DataBundle:
    """Load, split, decode (or read from the cache) and describe the images of ``source``.

    ``source`` is a built-in name, an image folder or a CSV manifest (whose columns the
    ``*_column`` arguments name, and whose relative image paths start at ``image_root``). Splits the
    source does not fix take ``val_ratio`` and
    ``test_ratio`` (seeded by ``split_seed``); ``subset`` caps the training images. Images are
    decoded at ``image_size`` with ``channels`` (default: the source's) through the ``cache``
    (memory, disk or auto, under ``cache_dir``); ``on_bad_file`` skips or refuses unreadable
    files. ``mean``/``std`` default to the training images' own.
    """
    catalog = open_source(source, dir=dir, download=download, task=task, image_column=image_column,
                          label_column=label_column, split_column=split_column, feature_columns=feature_columns,
                          group_column=group_column, order_column=order_column, frame_interval=frame_interval,
                          image_root=image_root, log=log)
    if on_bad_file == "error" and catalog.skipped:
        raise decode.bad_file_error(catalog.skipped[0])
    classify = task == "classification"
    cat, split_of, has_test = _arrange(catalog, classify=classify, val_ratio=val_ratio, test_ratio=test_ratio,
                                       seed=split_seed, subset=subset)
    root = None if cache == "memory" else cache_root(cache_dir)
    if cat.paths is not None:
        identity = files_identity(cat.kind, cat.paths, cat.ids)
    else:  # a built-in: its files, plus which of its images are asked for (a subset is its own entry)
        identity = hashlib.sha256("\n".join([cat.identity, *sorted(cat.ids)]).encode()).hexdigest()
    channels = _channels(cat, channels, identity, root)
    images, cat, split_of, skipped = _decoded(cat, split_of, identity=identity, root=root, image_size=image_size,
                                              channels=channels, cache=cache, workers=workers,
                                              stop_on_bad=on_bad_file == "error", skipped=catalog.skipped, log=log)
    if not (split_of == TRAIN).any():
        why = f" ({len(skipped)} files skipped, first {skipped[0].path}: {skipped[0].reason})" if skipped else ""
        raise UserError(f"data.source {source} has no usable training images{why}; check the files")
    splits, feature_stats, target_stats = _splits(images, cat, split_of, classify=classify, has_test=has_test,
                                                  normalize_target=normalize_target)
    data_hash = _hash(identity, cat, split_of, image_size=image_size, channels=channels, task=task)
    stats_file = None if root is None else root / "stats" / f"{data_hash[:32]}.json"
    mean, std = resolve_mean_std(splits[0].images, channels=channels, mean=mean, std=std,
                                 cache_file=stats_file, log=log)
    bundle = DataBundle(
        train=splits[0], val=splits[1], test=splits[2], class_names=list(cat.class_names) if classify else [],
        channels=channels, image_size=image_size, mean=mean, std=std, skipped=skipped, data_hash=data_hash,
        source=source if cat.kind == "builtin" else cat.name, task=task, target_stats=target_stats,
        feature_stats=feature_stats,
    )
    _log_summary(bundle, log)
    return bundle


def _arrange(catalog: Catalog, *, classify: bool, val_ratio: float, test_ratio: float, seed: int,
             subset: int | None) -> tuple[Catalog, np.ndarray, bool]:
    """The catalog in train/val/test order, each image's split code, and whether there is a test split."""
    strata = catalog.targets if classify else np.zeros(len(catalog.ids), dtype=np.int64)
    assigned = assign_splits(catalog.assigned, strata=strata, groups=catalog.groups, val_ratio=val_ratio,
                             test_ratio=test_ratio, seed=seed)
    parts = [np.flatnonzero(assigned == code) for code in (TRAIN, VAL, TEST)]
    if subset is not None:
        parts[0] = parts[0][subset_index(strata[parts[0]], subset, seed=seed)]
    cat = catalog.select(np.concatenate(parts))
    split_of = np.repeat(np.arange(3, dtype=np.int8), [len(p) for p in parts])
    return cat, split_of, len(parts[2]) > 0


def _decoded(cat: Catalog, split_of: np.ndarray, *, identity: str, root: Path | None, image_size: int,
             channels: int, cache: str, workers: int, stop_on_bad: bool, skipped: list[BadFile],
             log: Callable[[str], None]) -> tuple[np.ndarray, Catalog, np.ndarray, list[BadFile]]:
    """The images decoded (or read from the cache), without the files that could not be read."""
    size = image_size

    def produce(out: np.ndarray) -> dict[int, BadFile]:
        threads = decode.default_workers(workers)
        if cat.paths is not None:
            log(f"decoding {len(cat.ids):,} images at {size}x{size}, {channels} channel(s), {threads} thread(s)")
            return decode.decode_many(cat.paths, out, image_size=size, channels=channels, workers=threads,
                                      stop_on_bad=stop_on_bad, log=log)
        decode.convert_many(cat.read_pixels(), cat.rows, out, image_size=size, channels=channels,
                            workers=threads, log=log)
        return {}

    result = cached_images(key=image_key(identity, image_size=size, channels=channels), ids=cat.ids,
                           shape=(channels, size, size), produce=produce, mode=cache, root=root, log=log)
    if result.hit:
        log(f"read {len(result.images):,} decoded images from the cache in {root}")
    bad_positions = sorted(result.bad)
    if stop_on_bad and bad_positions:
        raise decode.bad_file_error(result.bad[bad_positions[0]])
    skipped = skipped + [result.bad[i] for i in bad_positions]
    if bad_positions:
        keep = np.ones(len(cat.ids), dtype=bool)
        keep[bad_positions] = False
        cat = cat.select(np.flatnonzero(keep))
        split_of = split_of[keep]
    return result.images, cat, split_of, skipped


def _splits(images: np.ndarray, cat: Catalog, split_of: np.ndarray, *, classify: bool, has_test: bool,
            normalize_target: bool) -> tuple[list[Split | None], Any, tuple[float, float] | None]:
    """Train/val/test views of the images; side features and regression targets scaled with training statistics."""
    train_rows = np.flatnonzero(split_of == TRAIN)
    features, feature_stats = None, None
    if cat.features is not None:
        features, f_mean, f_std = _standardize(cat.features, train_rows)
        feature_stats = (f_mean, f_std)
    target_stats = None
    if not classify and normalize_target:
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
    if not has_test:
        splits[2] = None  # the source has no test split and none was asked for (test_ratio)
    return splits, feature_stats, target_stats


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


def check_unseen_classes(bundle: DataBundle, *, allow: bool) -> None:
    """Refuse val/test classes with no training image (the model could never predict them and every
    score on them is zero) unless data.allow_unseen_classes=true."""
    if allow or not bundle.class_names:
        return
    seen = set(np.unique(bundle.train.targets).tolist())
    for name in ("val", "test"):
        part = getattr(bundle, name)
        unseen = [] if part is None else sorted(set(np.unique(part.targets).tolist()) - seen)
        if unseen:
            shown = ", ".join(bundle.class_names[c] for c in unseen[:5]) + (" ..." if len(unseen) > 5 else "")
            raise UserError(f"data.source={bundle.source}: {len(unseen)} class(es) of the {name} split have no "
                            f"training image ({shown}); add training images, or set "
                            "data.allow_unseen_classes=true to train anyway")
