"""Built-ins: digits, fashion-mnist (IDX), cifar10/100 (pickles in the official format), lookup."""

from __future__ import annotations

import gzip
import os
import pickle
import time
from pathlib import Path

import numpy as np
import pytest

from resnetlab.data import builtin
from resnetlab.data.sources import load_data
from resnetlab.errors import UserError

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
DEFAULT_SYSTEM_DIRS = builtin.SYSTEM_DIRS


@pytest.fixture(autouse=True)
def no_system_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what a test provides is found (and the user's $RESNETLAB_DATA is ignored)."""
    monkeypatch.setattr(builtin, "SYSTEM_DIRS", ())
    monkeypatch.delenv("RESNETLAB_DATA", raising=False)


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_digits(cfg, log) -> None:
    bundle = load_data(**cfg("digits", image_size=16, cache="memory"), log=log)
    assert len(bundle.train) + len(bundle.val) + len(bundle.test) == 1797
    assert bundle.channels == 1 and bundle.train.images.shape[1:] == (1, 16, 16)
    assert bundle.train.images.max() == 255 and bundle.class_names == [str(i) for i in range(10)]
    assert bundle.train.ids[0].startswith("digits/")
    rgb = load_data(**cfg("digits", channels=3, cache="memory"), log=log)
    assert rgb.train.images.shape[1:] == (3, 8, 8)
    assert np.array_equal(rgb.train.images[:, 0], rgb.train.images[:, 2])


@pytest.mark.skipif(not DEBIAN_FASHION.is_dir(), reason=f"{DEBIAN_FASHION} is absent (Debian package not installed)")
def test_fashion_mnist_from_the_debian_folder(cfg, log, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(builtin, "SYSTEM_DIRS", DEFAULT_SYSTEM_DIRS)  # found without data.dir
    start = time.monotonic()
    bundle = load_data(**cfg("fashion-mnist", dir=str(tmp_path / "empty"), download=False, image_size=28,
                           cache="memory"), log=log)
    assert time.monotonic() - start < 10
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (54000, 6000, 10000)
    assert bundle.train.images.shape[1:] == (1, 28, 28) and bundle.channels == 1
    assert bundle.class_names[0] == "T-shirt/top" and bundle.class_names[9] == "Ankle boot"
    assert bundle.summary()["splits"]["test"]["per_class"]["Bag"] == 1000
    assert bundle.mean[0] == pytest.approx(0.286, abs=0.002)  # the published Fashion-MNIST mean


def test_fashion_mnist_idx_files_in_data_dir(tmp_path: Path, cfg, log) -> None:
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (20, 28, 28))
    _write_idx(folder / "train-images-idx3-ubyte.gz", train)
    _write_idx(folder / "train-labels-idx1-ubyte.gz", np.arange(20) % 10)
    _write_idx(folder / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (10, 28, 28)))
    _write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.arange(10))
    bundle = load_data(**cfg("fashion-mnist", dir=str(tmp_path), image_size=28, val_ratio=0.5), log=log)
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (10, 10, 10)
    first = int(bundle.train.ids[0].rsplit("/", 1)[1])
    assert np.array_equal(bundle.train.images[0, 0], train[first])
    assert bundle.train.targets[0] == first % 10
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\0\0\x08\x01\0\0\0\x09" + b"\0" * 3))
    with pytest.raises(UserError, match=r"t10k-labels-idx1-ubyte.gz holds 3 bytes of data but its header says \[9\]"):
        load_data(**cfg("fashion-mnist", dir=str(tmp_path)), log=log)


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_pickles(tmp_path: Path, cfg, log, cifar, name: str) -> None:
    folder = cifar(tmp_path, name)
    bundle = load_data(**cfg(name, dir=str(tmp_path), image_size=32, val_ratio=0.0), log=log)
    n_train = 30 if name == "cifar10" else 6
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (n_train, 0, 6)
    assert len(bundle.class_names) == (10 if name == "cifar10" else 100) and bundle.class_names[3] == "class3"
    label_key = b"labels" if name == "cifar10" else b"fine_labels"
    with open(folder / builtin._CIFAR_FILES[name][2], "rb") as f:
        test = pickle.load(f, encoding="bytes")
    row = 4
    index = bundle.test.ids.index(f"{name}/test/{row}")
    # The first 1024 values are the red plane, row-major.
    assert np.array_equal(bundle.test.images[index, 0], test[b"data"][row, :1024].reshape(32, 32))
    assert np.array_equal(bundle.test.images[index, 2], test[b"data"][row, 2048:].reshape(32, 32))
    assert bundle.test.targets[index] == test[label_key][row]


def test_cifar_unpickler_refuses_code(tmp_path: Path, cfg, log, cifar) -> None:
    folder = cifar(tmp_path, "cifar10")

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": Evil()}, f, protocol=2)
    with pytest.raises(UserError, match=r"test_batch is not a CIFAR batch \(refusing to load (posix|nt)\.system\)"):
        load_data(**cfg("cifar10", dir=str(tmp_path)), log=log)
    assert not (tmp_path / "pwned").exists()


def test_lookup_order_and_not_found(tmp_path: Path, cfg, log, cifar, monkeypatch: pytest.MonkeyPatch) -> None:
    cifar(tmp_path / "env", "cifar10")
    monkeypatch.setenv("RESNETLAB_DATA", str(tmp_path / "env"))
    assert load_data(**cfg("cifar10", cache="memory"), log=log).test is not None
    monkeypatch.delenv("RESNETLAB_DATA")
    with pytest.raises(UserError, match=r"cifar100 not found in .*put the files in .*cifar-100-python or set "
                                        r"data.dir, or set data.download=true"):
        load_data(**cfg("cifar100", dir=str(tmp_path / "none"), download=False), log=log)


@pytest.mark.parametrize("source, message", [
    ("fashion_mnist", (r"data.source: fashion_mnist not found \(did you mean 'fashion-mnist'\?\); give an image "
                      r"folder, a CSV manifest or one of digits, fashion-mnist, cifar10, cifar100")),
    ("CIFAR-10", r"did you mean 'cifar10'\?"),
    ("digts", r"did you mean 'digits'\?"),
    ("/no/such/folder", r"data.source: /no/such/folder not found; give an image folder"),
])
def test_unknown_sources_suggest_builtins(cfg, log, source: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        load_data(**cfg(source), log=log)


def test_builtins_refuse_manifest_settings(cfg, log) -> None:
    with pytest.raises(UserError, match=r"data.feature_columns only applies to a CSV manifest"):
        load_data(**cfg("digits", feature_columns=["age"]), log=log)
