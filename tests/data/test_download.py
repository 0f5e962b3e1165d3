"""download.py against a local http.server in a thread: checksums, failures, safe extraction."""

from __future__ import annotations

import hashlib
import io
import socket
import tarfile
from pathlib import Path

import numpy as np
import pytest

from resnetlab.data import builtin, download
from resnetlab.data.download import Remote
from resnetlab.data.sources import load_data
from resnetlab.errors import UserError


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_good_download_is_verified_and_atomic(http_dir, tmp_path: Path, log) -> None:
    served, url = http_dir
    payload = bytes(range(256)) * 5000
    (served / "blob.bin").write_bytes(payload)
    dest = tmp_path / "dl"
    got = download.download_file(Remote(url + "blob.bin", md5=_md5(payload),
                                        sha256=hashlib.sha256(payload).hexdigest()), dest, log=log)
    assert got == dest / "blob.bin" and got.read_bytes() == payload
    assert sorted(p.name for p in dest.iterdir()) == ["blob.bin"]  # no temporary left behind
    assert f"downloading {url}blob.bin (1.3 MB)" in log.text()


def test_checksum_mismatch_is_a_user_error(http_dir, tmp_path: Path, log) -> None:
    served, url = http_dir
    (served / "blob.bin").write_bytes(b"tampered")
    dest = tmp_path / "dl"
    with pytest.raises(UserError, match=r"downloaded blob.bin from .* but its md5 is [0-9a-f]{32}, expected 0{32}"):
        download.download_file(Remote(url + "blob.bin", md5="0" * 32), dest, log=log)
    assert list(dest.iterdir()) == []


def test_server_down_and_missing_file(http_dir, tmp_path: Path, log) -> None:
    _, url = http_dir
    with pytest.raises(UserError, match=r"could not download nothing.gz from .* \(HTTP 404 .*\); put the files "
                                        r"in .* or set data.dir"):
        download.download_file(Remote(url + "nothing.gz"), tmp_path, log=log)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(UserError, match=r"could not download x.gz from http://127.0.0.1:\d+/x.gz \(.*refused.*\)"):
        download.download_file(Remote(f"http://127.0.0.1:{port}/x.gz"), tmp_path / "dl", log=log, timeout=5)
    assert list((tmp_path / "dl").iterdir()) == []


def _tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_extraction_refuses_path_traversal(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    bad = _tar(tmp_path / "bad.tar.gz", {"ok/a.txt": b"a", "../escaped.txt": b"x"})
    with pytest.raises(UserError, match=r"unsafe member '../escaped.txt'"):
        download.safe_extract(bad, dest)
    assert not (tmp_path / "escaped.txt").exists() and list(dest.iterdir()) == []
    link = tmp_path / "link.tar.gz"
    with tarfile.open(link, "w:gz") as tar:
        info = tarfile.TarInfo("evil")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(UserError, match=r"unsafe member 'evil'"):
        download.safe_extract(link, dest)
    download.safe_extract(_tar(tmp_path / "good.tar.gz", {"ok/a.txt": b"a"}), dest)
    assert (dest / "ok" / "a.txt").read_bytes() == b"a"


def test_cifar10_end_to_end_from_a_local_server(http_dir, tmp_path: Path, cfg, log, cifar,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    served, url = http_dir
    made = cifar(tmp_path / "made", "cifar10", per_batch=4)
    archive = served / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(made, arcname="cifar-10-batches-py")
    monkeypatch.setattr(builtin, "SYSTEM_DIRS", ())
    monkeypatch.delenv("RESNETLAB_DATA", raising=False)
    monkeypatch.setitem(download.RESOURCES, "cifar10",
                        (Remote(url + archive.name, md5=_md5(archive.read_bytes()), extract=True),))
    data_dir = tmp_path / "datasets"
    bundle = load_data(**cfg("cifar10", dir=str(data_dir), val_ratio=0.1), log=log)
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (18, 2, 4)
    assert sorted(p.name for p in data_dir.iterdir()) == ["cifar-10-batches-py"]  # archive removed
    assert bundle.train.images.dtype == np.uint8 and "extracting cifar-10-python.tar.gz" in log.text()
    # A mirror with the wrong file fails with the checksum message, not later while parsing.
    monkeypatch.setitem(download.RESOURCES, "cifar10", (Remote(url + archive.name, md5="f" * 32, extract=True),))
    with pytest.raises(UserError, match=r"md5 is .* expected f{32}"):
        load_data(**cfg("cifar10", dir=str(tmp_path / "other")), log=log)


def test_published_table() -> None:
    assert [r.filename for r in download.RESOURCES["fashion-mnist"]] == [
        "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    assert download.RESOURCES["cifar10"][0].md5 == "c58f30108f718f92721af3b95e74349a"
    assert download.RESOURCES["cifar100"][0].url == "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
