"""Robust image decoding: any file PIL reads becomes uint8 (C, S, S); anything else a `BadFile`.

Every image goes through the same steps, so a folder, a manifest and a built-in give the same
pixels for the same picture:

1. open lazily; for JPEGs ask the decoder for a reduced-size draft (DCT scaling, several times
   faster on large photos); `load()` so truncated files fail here instead of decoding as grey.
   ``ImageFile.LOAD_TRUNCATED_IMAGES`` is left off on purpose: a half image is a bad sample.
2. apply the EXIF orientation, so phone photos are upright as people see them.
3. convert the mode: 16-bit greyscale is scaled to 8 bits (not clipped: clipping turns most
   16-bit images white); anything with alpha (RGBA, LA, PA, palette with transparency) is
   composited on black, because the colour under transparent pixels is arbitrary and differs
   between editors; CMYK, YCbCr and 1-bit go through PIL's conversions. Then "L" or "RGB".
4. resize the shorter side to S and center-crop a square in one bilinear, antialiased resize
   of the central box (Pillow widens the filter when downscaling, so this is antialiased).

Bump `DECODER_VERSION` whenever the output pixels change: it is part of every cache key.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from resnetlab.data.bundle import BadFile
from resnetlab.errors import UserError

DECODER_VERSION = 1

IMAGE_EXTENSIONS = frozenset({
    ".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp",
    ".ppm", ".pgm", ".pbm", ".pnm",
})

# Signatures of common formats: a file that starts like an image but cannot be identified
# is reported as corrupt, not as "not an image".
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM", b"II*\x00", b"MM\x00*", b"RIFF")

_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
_SIXTEEN_BIT = {"I;16", "I;16L", "I;16B", "I;16N", "I"}

_CHUNK = 32           # images per task: amortizes thread hand-off without hurting balance
_PROGRESS_SECONDS = 5.0


def default_workers(workers: int) -> int:
    """`workers`, or the number of cores this process may use when it is 0."""
    if workers > 0:
        return workers
    try:
        return max(1, len(os.sched_getaffinity(0)))  # respects taskset/cgroup CPU limits
    except AttributeError:
        return os.cpu_count() or 1


def fit_square(img: Image.Image, size: int) -> Image.Image:
    """Resize the shorter side to `size` and center-crop to a square, as one resize."""
    w, h = img.size
    if w == h == size:
        return img
    side = min(w, h)
    left, top = (w - side) / 2, (h - side) / 2
    return img.resize((size, size), Image.Resampling.BILINEAR, box=(left, top, left + side, top + side))


def _to_mode(img: Image.Image, channels: int) -> Image.Image:
    target = "L" if channels == 1 else "RGB"
    mode = img.mode
    if mode in _SIXTEEN_BIT:
        # PIL reads 16-bit PNG/TIFF greyscale as I;16 or I (int32 holding 0..65535).
        wide = np.clip(np.asarray(img).astype(np.int64), 0, 65535)
        img = Image.fromarray(((wide * 255 + 32767) // 65535).astype(np.uint8), "L")
    elif mode == "F":
        # Float images have no standard range: [0, 1] when they fit in it, else 0..255.
        values = np.nan_to_num(np.asarray(img, dtype=np.float64))
        scale = 255.0 if values.size and values.max() <= 1.0 else 1.0
        img = Image.fromarray(np.clip(np.rint(values * scale), 0, 255).astype(np.uint8), "L")
    elif mode in _ALPHA_MODES or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        img = Image.alpha_composite(black, rgba).convert("RGB")
    if img.mode != target:
        img = img.convert(target)
    return img


def _sniff(path: str | os.PathLike) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return False
    return head.startswith(_MAGIC)


def _orientation(img: Image.Image) -> int:
    """The EXIF orientation (1: upright); damaged EXIF must not cost a good picture."""
    try:
        return int(img.getexif().get(0x0112, 1))
    except Exception:  # noqa: BLE001 - a damaged EXIF block: keep the pixels as stored
        return 1


def file_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` is not a regular, non-empty file (a pipe, a device, a dangling link or a loop...),
    or None. Checked before any open: opening a named pipe would block until someone writes to it."""
    try:
        mode = os.stat(path)
    except FileNotFoundError:
        return "dangling symbolic link" if os.path.islink(path) else "missing file"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symbolic link loop"
        return f"unreadable: {(exc.strerror or type(exc).__name__).lower()}"
    kinds = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"),
             (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"))
    kind = next((what for test, what in kinds if test(mode.st_mode)), None)
    if kind:
        return f"not a regular file: {kind}"
    return "zero-byte file" if mode.st_size == 0 else None


def decode_image(path: str | os.PathLike, *, image_size: int, channels: int) -> np.ndarray | BadFile:
    """uint8 (channels, image_size, image_size), or a `BadFile` saying why the file is unusable."""
    name = str(path)
    problem = file_problem(path)
    if problem:
        return BadFile(name, problem)
    try:
        with Image.open(path) as img:
            img.draft("L" if channels == 1 else "RGB", (image_size, image_size))
            img.load()
            if _orientation(img) != 1:
                img = ImageOps.exif_transpose(img)
            img = fit_square(_to_mode(img, channels), image_size)
            pixels = np.asarray(img, dtype=np.uint8)
    except PermissionError:
        return BadFile(name, "unreadable: permission denied")
    except FileNotFoundError:
        return BadFile(name, "missing file")
    except Image.DecompressionBombError as exc:
        return BadFile(name, f"too large for Pillow's decompression-bomb guard ({' '.join(str(exc).split())})")
    except UnidentifiedImageError:
        return BadFile(name, "corrupt image (unreadable header)" if _sniff(path) else "not an image")
    except MemoryError:
        raise
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError... for damaged files  # noqa: BLE001
        text = " ".join(str(exc).split())
        if "truncated" in text.lower():
            return BadFile(name, "truncated image")
        return BadFile(name, f"corrupt image ({type(exc).__name__}: {text})"[:200])
    if pixels.ndim == 2:
        pixels = pixels[None]
    else:
        pixels = pixels.transpose(2, 0, 1)
    return np.ascontiguousarray(pixels)


def bad_file_error(bad: BadFile) -> UserError:
    """The error raised for the first bad file under ``data.on_bad_file=error``."""
    return UserError(f"bad image file {bad.path}: {bad.reason}; fix or remove it, "
                     f"or set data.on_bad_file=skip to skip bad files")


def _run_chunks(n: int, work: Callable[[range], list[tuple[int, BadFile]]], *, workers: int,
                stop_on_bad: bool, what: str, log: Callable[[str], None]) -> dict[int, BadFile]:
    """Run `work` over chunks of range(n) on a thread pool; results are consumed in order."""
    chunks = [range(i, min(i + _CHUNK, n)) for i in range(0, n, _CHUNK)]
    bad: dict[int, BadFile] = {}
    start = last = time.monotonic()
    done = 0
    pool = ThreadPoolExecutor(max_workers=default_workers(workers))
    try:
        for rows, found in zip(chunks, pool.map(work, chunks)):
            for i, b in found:
                if stop_on_bad:
                    raise bad_file_error(b)
                bad[i] = b
            done += len(rows)
            now = time.monotonic()
            if now - last >= _PROGRESS_SECONDS and done < n:
                last = now
                rate = done / (now - start)
                log(f"{what}: {done:,}/{n:,} images ({100 * done / n:.0f}%, {rate:,.0f}/s)")
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return bad


def decode_many(paths: Sequence[str], out: np.ndarray, *, image_size: int, channels: int, workers: int = 0,
                stop_on_bad: bool = False, log: Callable[[str], None] = print) -> dict[int, BadFile]:
    """Decode `paths[i]` into `out[i]` on a thread pool (PIL releases the GIL while decoding).

    Returns the bad files by position; their rows of `out` are left as they were. With
    `stop_on_bad`, the first bad file in list order raises a `UserError` instead.
    """

    def work(rows: range) -> list[tuple[int, BadFile]]:
        found = []
        for i in rows:
            # Looked up through the module at call time, so tests can count decoder calls.
            result = decode_image(paths[i], image_size=image_size, channels=channels)
            if isinstance(result, BadFile):
                found.append((i, result))
            else:
                out[i] = result
        return found

    return _run_chunks(len(paths), work, workers=workers, stop_on_bad=stop_on_bad, what="decoding", log=log)


def convert_many(src: np.ndarray, rows: np.ndarray, out: np.ndarray, *, image_size: int, channels: int,
                 workers: int = 0, log: Callable[[str], None] = print) -> None:
    """`out[i]` = `src[rows[i]]` (uint8 N, C, H, W) at `image_size` with `channels`, as decoding would.

    Built-in datasets come as arrays; they go through the same mode conversion and resize
    as files, so a picture gives the same pixels whichever way it arrives.
    """
    native_c, h, w = src.shape[1:]
    if h == w == image_size and native_c == channels:
        for a in range(0, len(rows), 4096):  # chunked: `src` may be a memmap
            out[a:a + 4096] = src[rows[a:a + 4096]]
        return
    mode = "L" if native_c == 1 else "RGB"

    def work(chunk: range) -> list[tuple[int, BadFile]]:
        for i in chunk:
            pixels = src[rows[i]]
            img = Image.fromarray(pixels[0] if native_c == 1 else pixels.transpose(1, 2, 0), mode)
            img = fit_square(_to_mode(img, channels), image_size)
            arr = np.asarray(img, dtype=np.uint8)
            out[i] = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
        return []

    _run_chunks(len(rows), work, workers=workers, stop_on_bad=False, what="resizing", log=log)


def probe_channels(paths: Sequence[str], *, sample: int = 64) -> int:
    """1 when every sampled image is greyscale (incl. grey palettes), else 3; headers only."""
    if not paths:
        return 3
    step = max(1, len(paths) // sample)
    for path in paths[::step][:sample]:
        if file_problem(path):  # never open a pipe or a device; the decoder reports the file
            continue
        try:
            with Image.open(path) as img:
                mode = img.mode
                if mode == "P":
                    palette = np.asarray(img.getpalette() or [], dtype=np.int64).reshape(-1, 3)
                    if len(palette) and not (palette == palette[:, :1]).all():
                        return 3
                elif mode not in {"1", "L", "LA", "La", "F", "P"} | _SIXTEEN_BIT:
                    return 3
        except Exception:  # noqa: BLE001, S112 - unreadable files are reported by the decoder, not here
            continue
    return 1
