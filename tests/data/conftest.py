"""Fixtures for the data tests: tiny image trees, configs with a private cache, a local web server."""

from __future__ import annotations

import functools
import http.server
import pickle
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from resnetlab.data import builtin

COLOURS = {"red": (200, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 200)}


def save_image(path: Path, colour: tuple[int, int, int] = (120, 60, 30), *, size: tuple[int, int] = (12, 10),
               mode: str = "RGB", seed: int = 0) -> Path:
    """A small image of `colour` plus a little seeded noise, so files differ."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    base = np.asarray(colour, dtype=np.int64)[None, None, :]
    noise = rng.integers(-10, 11, (size[1], size[0], 3))
    img = Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8), "RGB")
    if mode != "RGB":
        img = img.convert(mode)
    img.save(path)
    return path


def make_tree(root: Path, layout: dict[str, int], *, ext: str = ".png", mode: str = "RGB") -> Path:
    """`layout` maps "class" or "split/class" to a number of images."""
    for n_key, (folder, count) in enumerate(layout.items()):
        colour = list(COLOURS.values())[n_key % len(COLOURS)]
        for i in range(count):
            save_image(root / folder / f"img{i:02d}{ext}", colour, mode=mode, seed=n_key * 100 + i)
    return root


def make_cifar(root: Path, name: str, *, per_batch: int = 6, rng_seed: int = 0) -> Path:
    """A tiny CIFAR folder laid out and pickled like the official python version."""
    rng = np.random.default_rng(rng_seed)
    folder_name, train_files, test_file, meta_file = builtin._CIFAR_FILES[name]
    folder = root / folder_name
    folder.mkdir(parents=True)
    label_key = b"labels" if name == "cifar10" else b"fine_labels"
    n_classes = 10 if name == "cifar10" else 100
    for file in [*train_files, test_file]:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        batch = {b"batch_label": file.encode(), label_key: [int(x) for x in rng.integers(0, n_classes, per_batch)],
                 b"data": data, b"filenames": [f"{file}_{i}.png".encode() for i in range(per_batch)]}
        if name == "cifar100":
            batch[b"coarse_labels"] = [0] * per_batch
        with open(folder / file, "wb") as f:
            pickle.dump(batch, f, protocol=2)
    names = [f"class{i}".encode() for i in range(n_classes)]
    meta = {b"label_names": names, b"num_cases_per_batch": per_batch} if name == "cifar10" else \
        {b"fine_label_names": names, b"coarse_label_names": [b"c0"]}
    with open(folder / meta_file, "wb") as f:
        pickle.dump(meta, f, protocol=2)
    return folder


@pytest.fixture
def cifar() -> Callable[..., Path]:
    """`make_cifar` as a fixture."""
    return make_cifar


@pytest.fixture
def cfg(tmp_path: Path) -> Callable[..., dict[str, Any]]:
    """load_data's keyword arguments: small images, a private cache folder, two decoding threads."""

    def build(source: str | Path, **kwargs: Any) -> dict[str, Any]:
        values: dict[str, Any] = {"image_size": 8, "cache_dir": str(tmp_path / "cache"), "workers": 2}
        values.update(kwargs)
        return {"source": str(source), **values}

    return build


@pytest.fixture
def flat_tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "flat", {"red": 10, "green": 10, "blue": 10})


class Log:
    """A `log` callable that keeps its lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        self.lines.append(line)

    def text(self) -> str:
        return "\n".join(self.lines)


@pytest.fixture
def log() -> Log:
    return Log()


@pytest.fixture
def image() -> Callable[..., Path]:
    """`save_image` as a fixture, so test modules need not import conftest."""
    return save_image


@pytest.fixture
def tree() -> Callable[..., Path]:
    """`make_tree` as a fixture."""
    return make_tree


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def http_dir(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served over http://127.0.0.1:<port>/ from a thread: (folder, base URL)."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield folder, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
