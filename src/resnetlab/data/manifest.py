"""CSV manifest source: one row per image, with label, optional split, side features and clips.

Image paths are relative to the image root (the CSV's folder unless data.image_root says
another, as for KonIQ-10k, whose CSV names bare files kept in a sibling folder), or absolute. Labels are class names (any text;
sorted numerically when they are all integers, so "10" follows "9") or, for regression,
numbers. Rows of a clip (group_column) are sorted by order_column (numerically when every value
is a number) and thinned to every frame_interval-th frame. A file that does not exist is
skipped as "missing file"; every malformed cell is a `UserError` naming its line and column.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import numpy as np

from resnetlab.data.bundle import TEST, TRAIN, UNASSIGNED, VAL, BadFile, Catalog
from resnetlab.data.decode import file_problem
from resnetlab.errors import UserError, did_you_mean, shorten

# KonIQ-10k's sets file spells its splits "training", "validation" and "test".
_SPLITS = {"train": TRAIN, "training": TRAIN, "val": VAL, "validation": VAL, "test": TEST}


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _read_rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: Excel writes a BOM
            reader = csv.reader(f)
            header = [h.strip() for h in next(reader, [])]
            rows = [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]
    except UnicodeDecodeError:
        raise UserError(f"manifest {path} is not UTF-8 text; save it as a UTF-8 CSV") from None
    except csv.Error as exc:
        raise UserError(f"manifest {path} is not a readable CSV ({exc}); fix its quoting") from None
    except OSError as exc:
        raise UserError(f"manifest {path} cannot be read ({exc.strerror}); check the path and permissions") from None
    if not header:
        raise UserError(f"manifest {path} is empty; it needs a header row naming its columns, e.g. image,label")
    if not rows:
        raise UserError(f"manifest {path} has a header but no rows; add one row per image")
    return header, rows


def _column(header: list[str], name: str, key: str, path: Path) -> int:
    if name in header:
        return header.index(name)
    hint = did_you_mean(name, header, prefix=" (", suffix=")")
    if len(header) == 1 and ";" in header[0]:
        hint = " (the file seems to use ';' between columns; save it comma-separated)"
    raise UserError(f"manifest {path}: column '{name}' ({key}) not found{hint}; columns: {', '.join(header)}")


def read_manifest(path: Path, *, task: str = "classification", image_column: str = "image",
                  label_column: str = "label", split_column: str | None = None,
                  feature_columns: list[str] | tuple[str, ...] = (), group_column: str | None = None,
                  order_column: str | None = None, frame_interval: int = 1,
                  image_root: Path | None = None) -> Catalog:
    """List a CSV manifest; the keyword arguments are the data.* settings of the same names.

    Relative image paths are resolved against ``image_root``, by default the CSV's folder."""
    if order_column and not group_column:
        raise UserError(f"data.order_column={order_column} needs data.group_column (the clip each frame belongs to)")
    if frame_interval > 1 and not group_column:
        raise UserError(f"data.frame_interval={frame_interval} needs data.group_column: frames are thinned per clip")
    if image_root is not None and not image_root.is_dir():
        raise UserError(f"data.image_root={image_root} is not a folder; give the folder that holds the images "
                        f"the manifest {path.name} lists")
    header, rows = _read_rows(path)
    col_image = _column(header, image_column, "data.image_column", path)
    col_label = _column(header, label_column, "data.label_column", path)
    col_split = _column(header, split_column, "data.split_column", path) if split_column else None
    col_feats = [_column(header, c, "data.feature_columns", path) for c in feature_columns]
    col_group = _column(header, group_column, "data.group_column", path) if group_column else None
    col_order = _column(header, order_column, "data.order_column", path) if order_column else None

    def cell(line: int, row: list[str], col: int) -> str:
        if col >= len(row):
            raise UserError(f"manifest {path} line {line}: {len(row)} cells but column '{header[col]}' is "
                            f"number {col + 1}; fix the row")
        value = row[col].strip()
        if not value:
            raise UserError(f"manifest {path} line {line}: column '{header[col]}' is empty; fill it or remove the row")
        return value

    records = []
    for line, row in rows:
        label = cell(line, row, col_label)
        if task == "regression":
            value = _number(label)
            if value is None:
                raise UserError(f"manifest {path} line {line}: column '{label_column}' value '{label}' is not a "
                                f"number; data.task=regression needs numeric targets")
            label = value
        split = UNASSIGNED
        if col_split is not None:
            text = cell(line, row, col_split)
            if text.lower() not in _SPLITS:
                raise UserError(f"manifest {path} line {line}: column '{split_column}' has '{text}'; "
                                f"use train, val or test")
            split = _SPLITS[text.lower()]
        features = []
        for c in col_feats:
            value = _number(cell(line, row, c))
            if value is None:
                raise UserError(f"manifest {path} line {line}: feature column '{header[c]}' value "
                                f"'{row[c].strip()}' is not a finite number; fix the value")
            features.append(value)
        group = cell(line, row, col_group) if col_group is not None else None
        order = cell(line, row, col_order) if col_order is not None else None
        records.append((cell(line, row, col_image), label, split, features, group, order, line))

    records, repeats = _once_per_path(records, manifest=path, root=path.parent if image_root is None else image_root)
    if group_column:
        records = _thin_clips(records, frame_interval=frame_interval)

    folder = path.parent if image_root is None else image_root
    ids, paths, kept, skipped = _existing(records, folder=folder, manifest=path)
    skipped = [*repeats, *skipped]

    targets, class_names = _targets([r[1] for r in kept], task=task)
    return Catalog(
        kind="manifest", name=str(path), ids=ids, targets=targets,
        assigned=np.asarray([r[2] for r in kept], dtype=np.int8), class_names=class_names, paths=paths,
        features=np.asarray([r[3] for r in kept], dtype=np.float32).reshape(len(kept), -1) if col_feats else None,
        feature_names=list(feature_columns),
        groups=np.asarray([r[4] for r in kept]) if group_column else None,
        skipped=skipped,
    )


def _existing(records: list[tuple], *, folder: Path, manifest: Path) -> tuple[list, list, list, list[BadFile]]:
    """The records whose image file exists (ids as written, full paths), and the skipped files."""
    ids, paths, kept, skipped = [], [], [], []
    for rec in records:
        given = Path(rec[0]).expanduser()
        full = given if given.is_absolute() else folder / given
        problem = file_problem(full)
        if problem and problem != "zero-byte file":  # the decoder reports empty files
            skipped.append(BadFile(str(full), problem))
            continue
        ids.append(given.as_posix())
        paths.append(str(full))
        kept.append(rec)
    if not kept:
        raise UserError(f"manifest {manifest}: none of the {len(records)} listed images exist; paths are relative "
                        f"to {folder} (e.g. first: {records[0][0]}) — set data.image_root=FOLDER to the folder "
                        "that holds them")
    return ids, paths, kept, skipped


def _targets(labels: list, *, task: str) -> tuple[np.ndarray, list[str]]:
    """Scores as float32, or class indices with the class names (numeric names in numeric order)."""
    if task == "regression":
        return np.asarray(labels, dtype=np.float32), []
    unique = set(labels)
    numeric = all(u.lstrip("-").isdigit() for u in unique)
    class_names = sorted(unique, key=(lambda u: (int(u), u)) if numeric else None)
    index = {name: i for i, name in enumerate(class_names)}
    return np.asarray([index[label] for label in labels], dtype=np.int64), class_names


def _once_per_path(records: list[tuple], *, manifest: Path, root: Path) -> tuple[list[tuple], list[BadFile]]:
    """Each image once: a path listed again with the same label and split is counted once and reported;
    with another label or split it is an error naming both lines (one picture, two answers)."""
    first: dict[str, tuple] = {}
    kept, repeats = [], []
    for rec in records:
        given = Path(rec[0]).expanduser()
        key = os.path.realpath(given if given.is_absolute() else root / given)
        before = first.get(key)
        if before is None:
            first[key] = rec
            kept.append(rec)
        elif (before[1], before[2]) != (rec[1], rec[2]):
            names = {UNASSIGNED: "none", TRAIN: "train", VAL: "val", TEST: "test"}
            what, a, b = ("labels", before[1], rec[1]) if before[1] != rec[1] else \
                ("splits", names[before[2]], names[rec[2]])
            raise UserError(f"manifest {manifest} lines {before[6]} and {rec[6]} list the same image "
                            f"{shorten(before[0])} with different {what} ({shorten(a)} and {shorten(b)}); keep "
                            "one row per image")
        else:
            repeats.append(BadFile(key, f"listed again on line {rec[6]} (first on line {before[6]}): counted once"))
    return kept, repeats


def _thin_clips(records: list[tuple], *, frame_interval: int) -> list[tuple]:
    """Clips in order of first appearance, frames sorted by order, every k-th frame kept."""
    clips: dict[str, list[tuple]] = {}
    for rec in records:
        clips.setdefault(rec[4], []).append(rec)
    orders = [rec[5] for rec in records if rec[5] is not None]
    numeric = all(_number(o) is not None for o in orders)
    kept = []
    for frames in clips.values():
        if orders:
            frames = sorted(frames, key=(lambda r: _number(r[5])) if numeric else (lambda r: r[5]))
        kept += frames[::frame_interval]
    return kept
