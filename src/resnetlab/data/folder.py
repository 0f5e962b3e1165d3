"""ImageFolder source: one sub-folder per class, optionally under train/ val/ test/.

Layouts::

    root/cat/1.jpg, root/dog/2.png                  one tree, split by ratio
    root/train/cat/1.jpg, root/test/cat/9.jpg ...   fixed splits (val taken from train if absent)

Class names are the sorted union of the class folders. Class folders are walked recursively
(symlinked folders are followed, each real folder once). Hidden files and folders (".DS_Store",
"._x.jpg" from macOS) are ignored; other files without an image extension are reported as
skipped ("not an image") so a stray notes.txt is visible rather than silently dropped.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from resnetlab.data.bundle import TEST, TRAIN, UNASSIGNED, VAL, BadFile, Catalog
from resnetlab.data.decode import IMAGE_EXTENSIONS, file_problem
from resnetlab.errors import UserError

_SPLIT_DIRS = {"train": TRAIN, "val": VAL, "test": TEST}


def _visible_dirs(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except PermissionError:
        raise UserError(f"folder {folder} is not readable (permission denied); fix its permissions") from None


def _walk(folder: Path) -> list[Path]:
    """Every visible file under `folder`, sorted, following each real directory once."""
    found: list[Path] = []
    seen: set[str] = set()

    def onerror(exc: OSError) -> None:
        raise UserError(f"folder {exc.filename} is not readable ({exc.strerror}); fix its permissions")

    for top, dirs, files in os.walk(folder, followlinks=True, onerror=onerror):
        real = os.path.realpath(top)
        if real in seen:  # a symlink loop or a folder linked twice
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(top) / f for f in sorted(files) if not f.startswith(".")]
    return found


def once_per_file(found: list[tuple[Path, int, int]]) -> tuple[list[tuple[Path, int, int]], list[BadFile]]:
    """Each real file once: a file reached through a symlinked folder as well as directly keeps its own
    place (class and split); every other path to it is reported, so a link between class folders (or
    splits) never gives one picture two labels or puts it in two splits."""
    by_real: dict[str, list[int]] = {}
    for i, (path, _, _) in enumerate(found):
        by_real.setdefault(os.path.realpath(path), []).append(i)
    keep: set[int] = set()
    repeats: list[BadFile] = []
    for where in by_real.values():
        direct = [i for i in where if os.path.realpath(found[i][0].parent) == os.path.abspath(found[i][0].parent)]
        kept = (direct or where)[0]
        keep.add(kept)
        repeats += [BadFile(str(found[i][0]), f"the same file as {found[kept][0]} (through a symbolic link): "
                                              "counted once") for i in where if i != kept]
    return [entry for i, entry in enumerate(found) if i in keep], repeats


def scan_folder(root: Path) -> Catalog:
    """List an image folder; raises `UserError` for layouts that hold no usable classes."""
    trees = {name: root / name for name in _SPLIT_DIRS if (root / name).is_dir()}
    if trees and "train" not in trees:
        raise UserError(f"{root} has {'/ and '.join(sorted(trees))}/ but no train/; "
                        f"add {root / 'train'} with one sub-folder per class")
    if not trees:
        trees = {"": root}
    class_dirs: dict[str, list[Path]] = {}
    for tree in trees.values():
        dirs = _visible_dirs(tree)
        if not dirs:
            loose = [p for p in tree.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS]
            what = "holds images but no class sub-folders" if loose else "has no class sub-folders"
            raise UserError(f"{tree} {what}; put each class's images in its own sub-folder, "
                            f"e.g. {tree / 'cat' / '001.jpg'}")
        class_dirs[str(tree)] = dirs
    class_names = sorted({d.name for dirs in class_dirs.values() for d in dirs})
    index = {name: i for i, name in enumerate(class_names)}

    found: list[tuple[Path, int, int]] = []  # path, class, split
    skipped: list[BadFile] = []
    for split, tree in trees.items():
        for class_dir in class_dirs[str(tree)]:
            images = 0
            for path in _walk(class_dir):
                problem = "not an image" if path.suffix.lower() not in IMAGE_EXTENSIONS else None
                problem = file_problem(path) or problem  # a pipe named x.png is a pipe
                if problem and problem != "zero-byte file":  # the decoder reports empty files
                    skipped.append(BadFile(str(path), problem))
                    continue
                images += 1
                found.append((path, index[class_dir.name], _SPLIT_DIRS.get(split, UNASSIGNED)))
            if images == 0:
                raise UserError(f"class folder {class_dir} holds no images; add images or remove the folder")
    found, repeats = once_per_file(found)
    skipped += repeats
    ids = [path.relative_to(root).as_posix() for path, _, _ in found]
    paths = [str(path) for path, _, _ in found]
    targets = [label for _, label, _ in found]
    assigned = [split for _, _, split in found]
    return Catalog(kind="folder", name=str(root), ids=ids, targets=np.asarray(targets, dtype=np.int64),
                   assigned=np.asarray(assigned, dtype=np.int8), class_names=class_names, paths=paths,
                   skipped=skipped)
