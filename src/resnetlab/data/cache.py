"""The decoded-image cache: decode once, then reopen a .npy (memory-mapped when large).

The key is sha256 of the source kind, the sorted file list with sizes and mtimes (or a
built-in's identity), image size, channels and `DECODER_VERSION`, so an edited or touched
file, a new resolution or a decoder change gives a new entry. The split is *not* in the key:
the array is stored in the order the first run asked for (train, val, test, so each split is a
contiguous slice, which keeps memory-mapped splits as views); a later run with another split
reorders the stored array instead of decoding again. The order lives in the sidecar JSON next
to the array, together with the ids and the skipped files, so a cache hit needs no PIL at all.

Modes (``data.cache``):
  memory  decode every run, write nothing to disk.
  disk    always persist; splits are read-only memory maps (the OS pages images in and out).
  auto    always persist too, so reruns skip decoding (a failed write only logs a warning);
          load into RAM when the array is at most 2 GiB, memory-map above that.
Writes go to a temporary name in the same folder and are renamed into place, so a crash or
a concurrent run never sees half an array.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from resnetlab.atomic_write import atomic_write, temp_path, write_json
from resnetlab.data.bundle import BadFile
from resnetlab.data.decode import DECODER_VERSION
from resnetlab.errors import UserError

AUTO_DISK_BYTES = 2 << 30
_FORMAT = 1       # sidecar layout; bump when it changes
_COPY_ROWS = 4096  # rows per chunk when copying memory-mapped arrays

Producer = Callable[[np.ndarray], dict[int, BadFile]]


@dataclass
class CachedImages:
    """`images` in the requested order without the bad ones; `bad` by requested position."""

    images: np.ndarray
    bad: dict[int, BadFile]
    hit: bool


def default_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "resnetlab"


def cache_root(cache_dir: str | None) -> Path:
    """The folder holding ``images/`` and ``stats/``: data.cache_dir or ~/.cache/resnetlab."""
    return Path(cache_dir).expanduser() if cache_dir else default_root()


def files_identity(kind: str, paths: Sequence[str], ids: Sequence[str]) -> str:
    """sha256 of the sorted (id, size, mtime) list: what the pixels are, not where they are."""
    digest = hashlib.sha256(f"{kind}\n".encode())
    for id_, path in sorted(zip(ids, paths)):
        try:
            st = os.stat(path)
            size, mtime = st.st_size, st.st_mtime_ns
        except OSError:
            size, mtime = -1, -1
        digest.update(f"{id_}\0{size}\0{mtime}\n".encode())
    return digest.hexdigest()


def image_key(identity: str, *, image_size: int, channels: int) -> str:
    text = f"{identity}|size={image_size}|channels={channels}|decoder={DECODER_VERSION}"
    return hashlib.sha256(text.encode()).hexdigest()


def read_json(path: Path) -> Any | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _unlink(path: str | Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _order_tag(ids: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:12]


def _tmp_npy(folder: Path, stem: str) -> str:
    return str(temp_path(folder / stem, suffix=".npy"))


def _remove_stale(folder: Path, *, age: float = 86400.0) -> None:
    """Delete temporaries over a day old: what a killed run (SIGKILL, OOM) left behind."""
    cutoff = time.time() - age
    for path in folder.glob("*.tmp*"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
        except OSError:
            pass


def _gather_to_file(src: np.ndarray, index: np.ndarray, folder: Path, stem: str) -> str:
    """A temporary .npy holding src[index], copied in chunks so `src` may be a memmap."""
    tmp = _tmp_npy(folder, stem)
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(index), *src.shape[1:]))
        for a in range(0, len(index), _COPY_ROWS):
            out[a:a + _COPY_ROWS] = src[index[a:a + _COPY_ROWS]]
        out.flush()
        del out
    except BaseException:
        _unlink(tmp)
        raise
    return tmp


class _Store:
    """One cache entry on disk: ``<stem>.json`` naming ``<stem>.<order>.npy``."""

    def __init__(self, folder: Path, key: str, shape: tuple[int, int, int]):
        self.folder, self.stem, self.shape = folder, key[:32], shape
        self.sidecar = folder / f"{self.stem}.json"

    def lookup(self, ids: Sequence[str], *, mmap: bool, log: Callable[[str], None]) -> CachedImages | None:
        meta = read_json(self.sidecar)
        if not isinstance(meta, dict) or meta.get("format") != _FORMAT or meta.get("shape") != list(self.shape):
            return None
        try:
            bad_by_id = {b["id"]: BadFile(b["path"], b["reason"]) for b in meta["bad"]}
            stored: list[str] = list(meta["ids"])
            file = self.folder / Path(meta["file"]).name
        except (KeyError, TypeError):
            return None  # a damaged sidecar is a miss, never an error
        bad = {i: bad_by_id[x] for i, x in enumerate(ids) if x in bad_by_id}
        wanted = [x for x in ids if x not in bad_by_id]
        try:
            images = np.load(file, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (OSError, ValueError):
            return None
        if images.dtype != np.uint8 or images.shape != (len(stored), *self.shape):
            return None
        if stored == wanted:
            return CachedImages(images, bad, hit=True)
        position = {x: k for k, x in enumerate(stored)}
        if any(x not in position for x in wanted):
            return None
        index = np.fromiter((position[x] for x in wanted), dtype=np.int64, count=len(wanted))
        if not mmap:
            return CachedImages(images[index], bad, hit=True)
        # Memory-mapped splits must be contiguous slices: store the array in the new order.
        log(f"image cache: reordering {len(index):,} cached images for the new split")
        try:
            tmp = _gather_to_file(images, index, self.folder, self.stem)
            self._commit(tmp, wanted, meta["bad"], old=file)
        except OSError as exc:
            log(f"warning: could not reorder the image cache ({exc.strerror or exc}); using a copy in memory")
            return CachedImages(images[index], bad, hit=True)
        return CachedImages(np.load(self.folder / self._npy_name(wanted), mmap_mode="r"), bad, hit=True)

    def _npy_name(self, ids: Sequence[str]) -> str:
        return f"{self.stem}.{_order_tag(ids)}.npy"

    def _commit(self, tmp: str, ids: Sequence[str], bad: list[dict[str, str]], *, old: Path | None = None) -> Path:
        """Move a finished temporary array into place, then point the sidecar at it."""
        final = self.folder / self._npy_name(ids)
        os.replace(tmp, final)
        self._point_to(final, ids, bad)
        if old is not None and old != final:
            _unlink(old)  # a run still reading it keeps its open map (POSIX)
        return final

    def _point_to(self, final: Path, ids: Sequence[str], bad: list[dict[str, str]]) -> None:
        write_json(self.sidecar, {"format": _FORMAT, "shape": list(self.shape), "file": final.name,
                                  "ids": list(ids), "bad": bad}, indent=None)

    def build_on_disk(self, ids: Sequence[str], produce: Producer) -> tuple[np.ndarray, dict[int, BadFile]]:
        """Produce straight into a memory-mapped file, so the array never has to fit in RAM."""
        tmp = _tmp_npy(self.folder, self.stem)
        try:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(ids), *self.shape))
            bad = produce(out)
            out.flush()
            if bad:
                keep = np.array([i for i in range(len(ids)) if i not in bad], dtype=np.int64)
                compact = _gather_to_file(out, keep, self.folder, self.stem)
                del out
                _unlink(tmp)
                tmp = compact
            else:
                del out
        except BaseException:
            _unlink(tmp)
            raise
        good = [x for i, x in enumerate(ids) if i not in bad]
        final = self._commit(tmp, good, _bad_records(ids, bad))
        return np.load(final, mmap_mode="r"), bad

    def save(self, ids: Sequence[str], images: np.ndarray, bad: dict[int, BadFile]) -> None:
        good = [x for i, x in enumerate(ids) if i not in bad]
        final = atomic_write(self.folder / self._npy_name(good), lambda f: np.save(f, images, allow_pickle=False))
        self._point_to(final, good, _bad_records(ids, bad))


def _bad_records(ids: Sequence[str], bad: dict[int, BadFile]) -> list[dict[str, str]]:
    return [{"id": ids[i], "path": b.path, "reason": b.reason} for i, b in sorted(bad.items())]


def cached_images(*, key: str, ids: Sequence[str], shape: tuple[int, int, int], produce: Producer,
                  mode: str, root: Path | None, log: Callable[[str], None] = print) -> CachedImages:
    """The images for `ids` (in that order), from the cache or made by `produce`.

    `produce(out)` fills ``out[i]`` for every requested position and returns the bad ones by
    position. ``mode`` is data.cache; `root` the cache root (unused for "memory").
    """
    n = len(ids)
    mmap = mode == "disk" or (mode == "auto" and n * int(np.prod(shape)) > AUTO_DISK_BYTES)
    store = None
    if mode != "memory":
        assert root is not None
        folder = root / "images"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if not os.access(folder, os.W_OK):
                raise PermissionError(13, "permission denied")
            store = _Store(folder, key, shape)
            _remove_stale(folder)
        except OSError as exc:
            if mode == "disk" or mmap:
                raise UserError(f"data.cache_dir: cannot write the image cache in {folder} "
                                f"({exc.strerror or exc}); set data.cache_dir to a writable folder "
                                f"or data.cache=memory") from None
            log(f"warning: image cache not written ({exc.strerror or exc} in {folder}); "
                f"images will be decoded again next run")
    if store is not None:
        hit = store.lookup(ids, mmap=mmap, log=log)
        if hit is not None:
            return hit
    if store is not None and mmap:
        try:
            images, bad = store.build_on_disk(ids, produce)
        except OSError as exc:  # typically a full disk: say where, and what to change
            raise UserError(f"data.cache_dir: writing the image cache in {store.folder} failed "
                            f"({exc.strerror or exc}); free space there, set data.cache_dir elsewhere "
                            f"or data.cache=memory") from None
        return CachedImages(images, bad, hit=False)
    out = np.empty((n, *shape), dtype=np.uint8)
    bad = produce(out)
    images = out if not bad else out[[i for i in range(n) if i not in bad]]
    if store is not None:
        try:
            store.save(ids, images, bad)
        except OSError as exc:
            log(f"warning: image cache not written ({exc.strerror or exc}); images will be decoded again next run")
    return CachedImages(images, bad, hit=False)
