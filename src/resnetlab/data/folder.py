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
from resnetlab.data.decode import IMAGE_EXTENSIONS
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

    ids: list[str] = []
    paths: list[str] = []
    targets: list[int] = []
    assigned: list[int] = []
    skipped: list[BadFile] = []
    for split, tree in trees.items():
        for class_dir in class_dirs[str(tree)]:
            images = 0
            for path in _walk(class_dir):
                if path.suffix.lower() not in IMAGE_EXTENSIONS:
                    skipped.append(BadFile(str(path), "not an image"))
                    continue
                images += 1
                ids.append(path.relative_to(root).as_posix())
                paths.append(str(path))
                targets.append(index[class_dir.name])
                assigned.append(_SPLIT_DIRS.get(split, UNASSIGNED))
            if images == 0:
                raise UserError(f"class folder {class_dir} holds no images; add images or remove the folder")
    return Catalog(kind="folder", name=str(root), ids=ids, targets=np.asarray(targets, dtype=np.int64),
                   assigned=np.asarray(assigned, dtype=np.int8), class_names=class_names, paths=paths,
                   skipped=skipped)
