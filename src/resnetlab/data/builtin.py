"""The built-in datasets: digits, fashion-mnist, cifar10 and cifar100, listed as a `Catalog`.

Where files are looked up, in order: data.dir, $RESNETLAB_DATA, then system folders
(`SYSTEM_DIRS`, e.g. Debian's /usr/share/datasets/fashion-mnist); each may hold the dataset's
own folder (``fashion-mnist/``, ``cifar-10-batches-py/``, ``cifar-100-python/``) or be that
folder. When nothing is found and data.download is on, the files are downloaded into data.dir,
else $RESNETLAB_DATA, else ~/.cache/resnetlab/datasets.

digits ships inside scikit-learn (8x8, values 0..16, scaled to 0..255) and has no test split.
CIFAR batches are Python pickles; they are read with an unpickler that only builds numpy
arrays, so a tampered file cannot run code.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import os
import pickle
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from resnetlab.data import download
from resnetlab.data.bundle import TEST, TRAIN, UNASSIGNED, Catalog
from resnetlab.errors import UserError

BUILTINS = ("digits", "fashion-mnist", "cifar10", "cifar100")
SYSTEM_DIRS: tuple[Path, ...] = (Path("/usr/share/datasets"),)

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
_FASHION_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                  "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_CIFAR_FILES = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], "test_batch", "batches.meta"),
    "cifar100": ("cifar-100-python", ["train"], "test", "meta"),
}


def default_download_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "resnetlab" / "datasets"


# ---------------------------------------------------------------- file formats


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (the MNIST format), gzipped or not, as a uint8 array."""
    hint = "delete it so it is downloaded again, or replace it"
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise UserError(f"cannot read {path} ({exc}); {hint}") from None
    if len(data) < 4 or data[:3] != b"\x00\x00\x08":
        raise UserError(f"{path} is not an IDX file of bytes (bad header); {hint}")
    ndim = data[3]
    offset = 4 + 4 * ndim
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    if len(data) != offset + int(np.prod(dims)):
        raise UserError(f"{path} holds {len(data) - offset} bytes of data but its header says {dims}; {hint}")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(dims)


_RECONSTRUCT = np.zeros(1).__reduce__()[0]   # numpy's private array rebuilder, however it is spelt
_SCALAR = np.float64(0).__reduce__()[0]
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.multiarray", "scalar"): _SCALAR,
    ("numpy._core.multiarray", "scalar"): _SCALAR,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,  # how Python 3 pickles bytes at protocol 2
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}") from None


def read_cifar_pickle(path: Path) -> dict[str, Any]:
    """One CIFAR python batch as a dict with str keys (the originals are Python 2 pickles)."""
    try:
        with open(path, "rb") as f:
            data = _ArrayUnpickler(f, encoding="bytes").load()
    except FileNotFoundError:
        raise UserError(f"{path} is missing; delete {path.parent} so it is downloaded again") from None
    except (OSError, EOFError, ValueError, TypeError, pickle.UnpicklingError) as exc:
        raise UserError(f"{path} is not a CIFAR batch ({exc}); delete {path.parent} so it is "
                        f"downloaded again") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} is not a CIFAR batch (no dict inside); delete {path.parent} to download again")
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in data.items()}


def _cifar_part(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    batch = read_cifar_pickle(path)
    images, labels = batch.get("data"), batch.get(label_key)
    if not isinstance(images, np.ndarray) or images.ndim != 2 or images.shape[1] != 3072 or labels is None:
        raise UserError(f"{path} is not a CIFAR batch (needs 'data' N x 3072 and '{label_key}'); "
                        f"delete {path.parent} so it is downloaded again")
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) != len(images):
        raise UserError(f"{path} has {len(images)} images but {len(labels)} labels; delete {path.parent}")
    # Rows are 1024 red, 1024 green, 1024 blue values, each plane row-major: (N, 3, 32, 32).
    return images.astype(np.uint8, copy=False).reshape(-1, 3, 32, 32), labels


# ---------------------------------------------------------------- finding files


def _complete(name: str, folder: Path) -> bool:
    if name == "fashion-mnist":
        return all((folder / f).is_file() or (folder / f"{f}.gz").is_file() for f in _FASHION_FILES)
    _, train, test, meta = _CIFAR_FILES[name]
    return all((folder / f).is_file() for f in [*train, test, meta])


def _dataset_folder(name: str, base: Path) -> Path | None:
    sub = "fashion-mnist" if name == "fashion-mnist" else _CIFAR_FILES[name][0]
    for folder in (base / sub, base):
        if _complete(name, folder):
            return folder
    return None


def search_dirs(data_dir: str | None) -> list[Path]:
    dirs = [Path(d).expanduser() for d in (data_dir, os.environ.get("RESNETLAB_DATA")) if d]
    return list(dict.fromkeys([*dirs, *SYSTEM_DIRS]))


def locate(name: str, *, data_dir: str | None, download_ok: bool, log: Callable[[str], None]) -> Path:
    """The folder holding `name`'s files, downloading them when allowed."""
    searched = search_dirs(data_dir)
    for base in searched:
        folder = _dataset_folder(name, base)
        if folder is not None:
            return folder
    target = Path(data_dir or os.environ.get("RESNETLAB_DATA") or default_download_dir()).expanduser()
    sub = target / ("fashion-mnist" if name == "fashion-mnist" else _CIFAR_FILES[name][0])
    if not download_ok:
        raise UserError(f"{name} not found in {', '.join(map(str, searched))}; put the files in {sub} "
                        f"or set data.dir, or set data.download=true")
    download.fetch(name, target / "fashion-mnist" if name == "fashion-mnist" else target, log=log)
    folder = _dataset_folder(name, target)
    if folder is None:
        raise UserError(f"downloaded {name} into {target} but its files are not all there; "
                        f"delete {sub} and retry, or put the files there yourself")
    return folder


def _identity(name: str, files: list[Path]) -> str:
    # Names and sizes, not paths or mtimes: the same files in another folder are the same data.
    text = name + "".join(f"|{f.name}:{f.stat().st_size}" for f in sorted(files))
    return hashlib.sha256(text.encode()).hexdigest()


# ---------------------------------------------------------------- the datasets


def _catalog(name: str, parts: list[tuple[str, np.ndarray]], class_names: list[str], channels: int,
             read_pixels: Callable[[], np.ndarray], identity: str) -> Catalog:
    ids, assigned = [], []
    for part, labels in parts:
        prefix = f"{name}/" if part == "all" else f"{name}/{part}/"
        ids += [f"{prefix}{i}" for i in range(len(labels))]
        code = {"all": UNASSIGNED, "train": TRAIN, "test": TEST}[part]
        assigned.append(np.full(len(labels), code, dtype=np.int8))
    return Catalog(kind="builtin", name=name, ids=ids, targets=np.concatenate([p[1] for p in parts]),
                   assigned=np.concatenate(assigned), class_names=class_names, read_pixels=read_pixels,
                   rows=np.arange(len(ids)), native_channels=channels, identity=identity)


def _digits() -> Catalog:
    from sklearn.datasets import load_digits

    digits = load_digits()
    # 0..16 counts of set pixels per 4x4 cell become 0..255 intensities.
    pixels = np.rint(digits.images * (255 / 16)).clip(0, 255).astype(np.uint8)[:, None]
    identity = hashlib.sha256(b"digits" + pixels.tobytes()).hexdigest()
    return _catalog("digits", [("all", digits.target.astype(np.int64))], [str(i) for i in range(10)], 1,
                    lambda: pixels, identity)


def _fashion(folder: Path) -> Catalog:
    def path(stem: str) -> Path:
        return folder / stem if (folder / stem).is_file() else folder / f"{stem}.gz"

    train_x, train_y, test_x, test_y = (path(s) for s in _FASHION_FILES)
    train_labels, test_labels = read_idx(train_y).astype(np.int64), read_idx(test_y).astype(np.int64)

    def read_pixels() -> np.ndarray:
        train, test = read_idx(train_x), read_idx(test_x)
        for images, labels, file in ((train, train_labels, train_x), (test, test_labels, test_x)):
            if images.ndim != 3 or len(images) != len(labels):
                raise UserError(f"{file} holds {images.shape} images for {len(labels)} labels; replace it")
        return np.concatenate([train, test])[:, None]

    return _catalog("fashion-mnist", [("train", train_labels), ("test", test_labels)], list(FASHION_CLASSES),
                    1, read_pixels, _identity("fashion-mnist", [train_x, train_y, test_x, test_y]))


def _cifar(name: str, folder: Path) -> Catalog:
    _, train_files, test_file, meta_file = _CIFAR_FILES[name]
    label_key, names_key = ("labels", "label_names") if name == "cifar10" else ("fine_labels", "fine_label_names")
    train = [_cifar_part(folder / f, label_key) for f in train_files]
    test = _cifar_part(folder / test_file, label_key)
    meta = read_cifar_pickle(folder / meta_file)
    class_names = [n.decode() if isinstance(n, bytes) else str(n) for n in meta.get(names_key, [])]
    pixels = np.concatenate([p[0] for p in train] + [test[0]])
    train_labels = np.concatenate([p[1] for p in train])
    labels = np.concatenate([train_labels, test[1]])
    if not class_names or labels.min() < 0 or labels.max() >= len(class_names):
        raise UserError(f"{folder / meta_file} names {len(class_names)} classes but labels go up to "
                        f"{labels.max()}; delete {folder} so it is downloaded again")
    files = [folder / f for f in [*train_files, test_file, meta_file]]
    return _catalog(name, [("train", train_labels), ("test", test[1])], class_names, 3,
                    lambda: pixels, _identity(name, files))


def load_builtin(name: str, *, data_dir: str | None = None, download_ok: bool = True,
                 log: Callable[[str], None] = print) -> Catalog:
    """The catalog of built-in dataset `name` (one of `BUILTINS`)."""
    if name == "digits":
        return _digits()
    folder = locate(name, data_dir=data_dir, download_ok=download_ok, log=log)
    if name == "fashion-mnist":
        return _fashion(folder)
    return _cifar(name, folder)
