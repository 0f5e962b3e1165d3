"""Download built-in datasets: verified checksums, atomic writes, safe archive extraction.

The URL table `RESOURCES` is data (name -> files with their published checksums); tests and
mirrors replace it or pass their own to `fetch`. A file is streamed to a temporary name in
the target folder, hashed on the way, and renamed into place only when its checksum matches,
so an interrupted or corrupted download never looks like a dataset.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from resnetlab.atomic_write import atomic_write
from resnetlab.errors import UserError

_PROGRESS_SECONDS = 2.0
_BLOCK = 1 << 20


@dataclass(frozen=True)
class Remote:
    """One file to fetch. `extract`: a .tar.gz to unpack into the target folder."""

    url: str
    md5: str | None = None
    sha256: str | None = None
    extract: bool = False

    @property
    def filename(self) -> str:
        return PurePosixPath(urllib.request.urlparse(self.url).path).name


_FASHION = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"

# Published checksums: github.com/zalandoresearch/fashion-mnist (README) and
# www.cs.toronto.edu/~kriz/cifar.html.
RESOURCES: dict[str, tuple[Remote, ...]] = {
    "fashion-mnist": (
        Remote(_FASHION + "train-images-idx3-ubyte.gz", md5="8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
        Remote(_FASHION + "train-labels-idx1-ubyte.gz", md5="25c81989df183df01b3e8a0aad5dffbe"),
        Remote(_FASHION + "t10k-images-idx3-ubyte.gz", md5="bef4ecab320f06d8554ea6380940ec79"),
        Remote(_FASHION + "t10k-labels-idx1-ubyte.gz", md5="bb300cfdad3c16e7a12a480ee83cd310"),
    ),
    "cifar10": (
        Remote("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
               md5="c58f30108f718f92721af3b95e74349a", extract=True),
    ),
    "cifar100": (
        Remote("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
               md5="eb9058c3a382ffc7106e4002c42a8d85", extract=True),
    ),
}


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return " ".join(str(exc).split()) or type(exc).__name__


def download_file(remote: Remote, folder: Path, *, log: Callable[[str], None] = print,
                  timeout: float = 60.0) -> Path:
    """Fetch `remote` into `folder`, verify its checksum and return the final path."""
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / remote.filename
    hint = f"put the files in {folder} or set data.dir"
    md5, sha = hashlib.md5(), hashlib.sha256()

    def fetch(out: IO[bytes]) -> None:
        try:
            request = urllib.request.Request(remote.url, headers={"User-Agent": "resnetlab"})
            with urllib.request.urlopen(request, timeout=timeout) as response:
                total = int(response.headers.get("Content-Length") or 0)
                done, last = 0, time.monotonic()
                log(f"downloading {remote.url}" + (f" ({total / 1e6:.1f} MB)" if total else ""))
                while block := response.read(_BLOCK):
                    out.write(block)
                    md5.update(block)
                    sha.update(block)
                    done += len(block)
                    if time.monotonic() - last >= _PROGRESS_SECONDS:
                        last = time.monotonic()
                        share = f" ({100 * done / total:.0f}%)" if total else ""
                        log(f"  {remote.filename}: {done / 1e6:.1f} MB{share}")
        except (OSError, ValueError, http.client.HTTPException) as exc:  # URLError, timeouts: OSError
            raise UserError(f"could not download {remote.filename} from {remote.url} "
                            f"({_reason(exc)}); {hint}") from None
        # Raised before the rename, so a corrupt download never takes the file's name.
        for name, want, got in (("md5", remote.md5, md5), ("sha256", remote.sha256, sha)):
            if want and got.hexdigest() != want.lower():
                raise UserError(f"downloaded {remote.filename} from {remote.url} but its {name} is "
                                f"{got.hexdigest()}, expected {want}; the download is corrupt or the file "
                                f"changed: retry, or {hint}")

    atomic_write(dest, fetch)
    return dest


def safe_extract(archive: Path, folder: Path) -> None:
    """Unpack a tar archive into `folder`, refusing members that would land outside it.

    Links, devices and absolute or ``..`` paths are rejected before anything is written, and
    the archive is unpacked into a temporary folder first so a failure leaves nothing behind.
    """
    bad = f"archive {archive} holds an unsafe member"
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            for m in members:
                parts = PurePosixPath(m.name).parts
                if m.name.startswith(("/", "\\")) or ".." in parts or not (m.isfile() or m.isdir()):
                    raise UserError(f"{bad} {m.name!r} (a link, device or path outside the folder); "
                                    f"delete it and download again")
            staging = Path(tempfile.mkdtemp(dir=folder, prefix=".extract-"))
            try:
                # The "data" filter (Python >= 3.10.12) re-checks what the loop above checked.
                safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                tar.extractall(staging, members=members, **safe)
                for entry in sorted(staging.iterdir()):
                    target = folder / entry.name
                    if target.exists():
                        shutil.rmtree(target) if target.is_dir() else target.unlink()
                    os.replace(entry, target)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    except (tarfile.TarError, EOFError) as exc:
        raise UserError(f"archive {archive} is damaged ({exc}); delete it and download again") from None


def fetch(name: str, folder: Path, *, log: Callable[[str], None] = print,
          resources: Mapping[str, Sequence[Remote]] | None = None) -> None:
    """Download (and unpack) built-in dataset `name` into `folder`."""
    table = RESOURCES if resources is None else resources
    for remote in table[name]:
        path = folder / remote.filename
        if not path.exists():
            path = download_file(remote, folder, log=log)
        if remote.extract:
            log(f"extracting {path.name} into {folder}")
            safe_extract(path, folder)
            path.unlink()  # the unpacked folder is what gets used; the archive only takes space
